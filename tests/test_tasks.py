"""The offline task scorer: items come from held-out text, and accuracies are what a hand count gives."""

from __future__ import annotations

import math

import pytest
import torch

from hfcompress.bench import tasks
from hfcompress.data import calibration_texts, evaluation_texts
from hfcompress.testing import tiny_model

TEXTS = [
    "The quick brown fox jumped over the lazy sleeping dog again.",
    "Paris is the capital city of France and its largest town.",
    "Water boils at one hundred degrees at normal pressure here.",
    "Many people enjoy reading long novels during the cold winter.",
    "The river flows slowly through the green valley every spring.",
    "Students usually study mathematics and history at the school.",
]


class _Engine:
    """An engine whose next-token logits are given by a rule on the ids so far (vocab = the tokenizer's)."""

    name = "rule"

    def __init__(self, tokenizer, knows: list[str] | None) -> None:
        self.tokenizer, self.knows = tokenizer, knows
        self.vocab = len(tokenizer)

    def logits(self, ids):
        ids = list(ids)
        out = torch.zeros(len(ids), self.vocab)
        if self.knows is None:
            return out  # uniform: every continuation is equally likely, greedy picks token 0
        for known in self.knows:
            true = self.tokenizer(known, add_special_tokens=False)["input_ids"]
            for i in range(len(ids) - 1):
                if ids[: i + 2] == true[: i + 2]:
                    out[i, ids[i + 1]] = 50.0  # the oracle puts (almost) all its mass on the true next token
        return out


@pytest.fixture(scope="module")
def tok():
    return tiny_model("llama")[1]


def test_items_come_from_held_out_text_only():
    held_out = " ".join(evaluation_texts())
    train = set(calibration_texts())
    tokenizer = tiny_model("llama")[1]
    for task in tasks.TASKS:
        items = tasks.build_items(task, tokenizer, count=20)
        assert len(items) == 20
        for item in items:
            assert item.context in held_out and not any(item.context in t for t in train if len(item.context) > 40)
            assert 0 <= item.answer < len(item.choices)
        assert tasks.build_items(task, tokenizer, count=20) == items  # deterministic


def test_cloze_items_have_four_different_choices_with_the_true_word_among_them(tok):
    items = tasks.build_items("cloze", tok, count=6, texts=TEXTS * 2)
    for item in items:
        assert len(set(item.choices)) == 4
        assert any(t.startswith(item.context + item.choices[item.answer]) for t in TEXTS)
        assert all(" " not in choice.strip() for choice in item.choices)  # one word each


def test_an_oracle_scores_one_and_a_uniform_model_what_a_hand_count_gives(tok):
    for task in tasks.TASKS:
        items = tasks.build_items(task, tok, count=6, texts=TEXTS * 2)
        oracle = tasks.score(_Engine(tok, TEXTS), tok, task, items)
        assert oracle["value"] == 1.0 and oracle["stderr"] == 0.0 and oracle["samples"] == len(items)
        uniform = tasks.score(_Engine(tok, None), tok, task, items)
        # All choices tie under a uniform model and the first one wins the tie; greedy picks token 0 (never a word).
        expected = sum(item.answer == 0 for item in items) / len(items) if task == "cloze" else 0.0
        assert uniform["value"] == pytest.approx(expected)
        assert uniform["stderr"] == pytest.approx(math.sqrt(expected * (1 - expected) / len(items)))


def test_the_continuation_log_probability_is_the_models_own(tok):
    model, _ = tiny_model("llama")
    context, continuation = "Paris is the capital", " city of France."
    scored, scored_n = tasks._scored_ids(tok, context, continuation)
    got, _ = tasks._continuation_score(model(torch.tensor([scored])).logits[0], scored, scored_n)
    ids = tok(context + continuation, add_special_tokens=False)["input_ids"]
    n = len(ids) - len(tok(context, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    by_hand = sum(float(logp[i - 1, ids[i]]) for i in range(len(ids) - n, len(ids)))
    assert got == pytest.approx(by_hand, abs=1e-4)


def test_an_unknown_task_is_one_clear_error():
    from hfcompress.bench.settings import EvalSettings
    from hfcompress.errors import HFCompressError

    with pytest.raises(HFCompressError, match="unknown task 'lambada'; offline tasks: last_word, cloze"):
        EvalSettings(tasks=["lambada"])


def test_batched_scoring_gives_what_one_by_one_gives(tok):
    from hfcompress.bench.engines import TransformersEngine

    model, _ = tiny_model("llama")
    engine = TransformersEngine(model, tok)
    items = tasks.build_items("cloze", tok, count=12)
    one_by_one = type("E", (), {"logits": engine.logits})()  # no logits_batch: the loop
    assert tasks.score(engine, tok, "cloze", items) == tasks.score(one_by_one, tok, "cloze", items)
    windows = [tok(i.context + i.choices[0], add_special_tokens=False)["input_ids"] for i in items]
    for window, batched in zip(windows, engine.logits_batch(windows, batch_size=5)):
        torch.testing.assert_close(batched, engine.logits(window), atol=1e-4, rtol=1e-4)


def _pairs_file(tmp_path, pairs):
    import json

    path = tmp_path / "task.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    return path


def test_a_task_file_scores_the_share_of_responses_greedy_decoding_gives(tok, tmp_path):
    known = ["Paris is the capital city of France and its largest town.", "Water boils at one hundred degrees."]
    path = _pairs_file(tmp_path, [("Paris is the capital city of", " France and its largest town."),
                                  ("Water boils at one hundred", " degrees."),
                                  ("The river flows slowly through", " the green valley.")])  # the oracle does not know this one
    items = tasks.build_items(str(path), tok, count=10)
    assert [item.choices for item in items] == [[" France and its largest town."], [" degrees."], [" the green valley."]]
    result = tasks.score(_Engine(tok, known), tok, str(path), items)
    assert result["value"] == pytest.approx(2 / 3) and result["samples"] == 3
    metrics = tasks.task_metrics(_Engine(tok, known), tok, [str(path)], count=10)
    assert metrics["task/task/acc"]["value"] == pytest.approx(2 / 3)
    assert "task.jsonl" in metrics["task/task/acc"]["dataset"] and "sha256" in metrics["task/task/acc"]["dataset"]
    assert len(tasks.build_items(str(path), tok, count=2)) == 2  # a seeded sample when the file holds more


def test_task_files_validate_and_reach_the_bench_command(tmp_path):
    from hfcompress.artifacts import bench_command
    from hfcompress.bench.settings import EvalSettings
    from hfcompress.errors import HFCompressError

    path = _pairs_file(tmp_path, [("a", " b")])
    settings = EvalSettings(tasks=[path, "cloze"])
    assert settings.tasks == [str(path), "cloze"]
    assert f"--offline-tasks {path},cloze" in bench_command("out", settings.to_dict())
    with pytest.raises(HFCompressError, match="task file 'missing.jsonl' not found"):
        EvalSettings(tasks=["missing.jsonl"])
    (tmp_path / "texts.jsonl").write_text('{"text": "no pairs here"}\n')
    with pytest.raises(HFCompressError, match="holds no prompt/response pairs"):
        tasks.build_items(str(tmp_path / "texts.jsonl"), None, count=3)


def test_calibration_reads_prompt_response_pairs_as_texts(tok, tmp_path):
    from hfcompress.data import read_texts

    path = _pairs_file(tmp_path, [("The capital of France is", " Paris"), ("Two and two make", "four")])
    texts, what = read_texts(path)
    assert texts == ["The capital of France is Paris", "Two and two make four"] and what == "file task.jsonl"

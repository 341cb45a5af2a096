"""Knowledge distillation on tiny random Llamas: the loss falls, the student moves toward the teacher,
runs resume where they stopped, and bad input fails early with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfcompress as hfc
from hfcompress.methods.distill.losses import distillation_loss, divergence
from hfcompress.methods.distill.models import evenly_spaced, smaller_student
from hfcompress.errors import HFCompressError

from hfcompress.testing import build_tiny_model

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 4,
    "Compression makes language models smaller and faster to run. " * 3,
    "Paris is the capital of France, and Berlin is the capital of Germany. " * 3,
    "A model card tells the truth about what was done and what got worse. " * 3,
] * 6


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A tiny teacher with peaked next-token distributions (a random init is near uniform, nothing to learn)."""
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path_factory.mktemp("teacher") / "teacher", layers=3, seed=0)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    """Another random tiny Llama with the same tokenizer (a student that starts far from the teacher)."""
    return build_tiny_model(tmp_path_factory.mktemp("student") / "student", layers=2, seed=1)


def _config(**kw) -> hfc.DistillConfig:
    base = dict(data=TEXTS, steps=12, batch_size=4, seq_len=48, learning_rate=3e-3, eval_every=6, save_every=6,
                eval_tokens=192, alpha=0.5, temperature=2.0, warmup=0)
    base.update(kw)
    return hfc.DistillConfig(**base)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HFCOMPRESS_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------------------
# The loss


def test_forward_kl_matches_torch_and_scales_with_temperature():
    torch.manual_seed(0)
    s, t = torch.randn(2, 6, 17), torch.randn(2, 6, 17)
    ref = torch.nn.functional.kl_div(torch.log_softmax(s / 2, -1), torch.log_softmax(t / 2, -1), log_target=True, reduction="none").sum(-1)
    assert torch.allclose(divergence(s, t, temperature=2.0), ref, atol=1e-5)
    assert torch.allclose(divergence(s, t, loss="reverse_kl"), divergence(t, s), atol=1e-5)
    jsd = divergence(s, t, loss="jsd", beta=0.5)
    assert torch.allclose(jsd, divergence(t, s, loss="jsd", beta=0.5), atol=1e-5)  # symmetric at beta 0.5
    assert float(jsd.max()) <= torch.log(torch.tensor(2.0)) + 1e-5  # JSD is bounded by ln 2

    labels = torch.randint(0, 17, (2, 6))
    labels[0, :3] = -100  # masked positions count in neither term
    total, parts = distillation_loss(s, t, labels, alpha=0.25, temperature=2.0)
    mask = labels[:, 1:].ne(-100)
    kd = divergence(s[:, :-1][mask], t[:, :-1][mask], temperature=2.0).mean()
    ce = torch.nn.functional.cross_entropy(s[:, :-1][mask], labels[:, 1:][mask])
    assert parts["kd"] == pytest.approx(float(kd), rel=1e-5)
    assert float(total) == pytest.approx(0.25 * float(ce) + 0.75 * 4.0 * float(kd), rel=1e-5)


# ---------------------------------------------------------------------------------------------------------
# Training through the recipe


def test_distillation_lowers_loss_and_kl_and_saves_for_plain_transformers(teacher_dir, student_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    cm = hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher=str(teacher_dir)))
    info = cm.steps[-1].info
    losses = [row["loss"] for row in info["losses"]]
    assert losses[-1] < losses[0]
    assert info["eval_after"]["kl"] < info["eval_before"]["kl"] * 0.9
    assert info["eval_after"]["agreement"] > info["eval_before"]["agreement"]
    assert info["teacher"] == str(teacher_dir) and info["global_step"] == 12
    assert [e["step"] for e in info["evaluations"]] == [0, 6, 12]
    assert info["data"]["eval"] != "none" and info["data"]["sequences"] > 0

    out = cm.save_pretrained(tmp_path / "out")
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["steps"][-1]["info"]["losses"] == info["losses"]
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor([[5, 9, 30, 41, 7]])
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, cm.model(ids).logits, atol=1e-5)
    assert not any((Path(hfc.loading.cache_dir()) / "distill-runs").glob("*"))  # the cache run folder is cleaned up


def test_interrupted_run_resumes_where_it_stopped(teacher_dir, student_dir, monkeypatch):
    import hfcompress.methods.distill.trainer as trainer_module

    config = _config(teacher=str(teacher_dir), steps=6, save_every=3, eval_every=0)
    straight = hfc.CompressedModel.from_pretrained(str(student_dir), recipe=config)

    # Ctrl-C in the middle of step 5 (after the checkpoint of step 3 was written).
    real, calls = trainer_module.distillation_loss, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "distillation_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        hfc.CompressedModel.from_pretrained(str(student_dir), recipe=config)
    monkeypatch.setattr(trainer_module, "distillation_loss", real)

    resumed = hfc.CompressedModel.from_pretrained(str(student_dir), recipe=config)  # same command again
    info = resumed.steps[-1].info
    assert (info["resumed_from_step"], info["steps_run"], info["global_step"]) == (3, 3, 6)
    # Same data order, schedule and RNG as the uninterrupted run: the same weights come out.
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_finished_run_extends_from_its_last_step(teacher_dir, student_dir, tmp_path):
    run_dir = tmp_path / "run"
    first = hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher=str(teacher_dir), steps=4, save_every=4, eval_every=0, run_dir=str(run_dir)))
    assert first.steps[-1].info["global_step"] == 4 and (run_dir / "checkpoint-4").is_dir()
    second = hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher=str(teacher_dir), steps=8, save_every=4, eval_every=0, run_dir=str(run_dir)))
    info = second.steps[-1].info
    assert (info["resumed_from_step"], info["steps_run"], info["global_step"]) == (4, 4, 8)
    assert [row["step"] for row in info["losses"]][0] <= 4  # the history of the first part is kept


def test_smaller_student_copies_evenly_spaced_layers(teacher_dir):
    from transformers import AutoModelForCausalLM

    assert evenly_spaced(30, 12) == [0, 3, 5, 8, 11, 13, 16, 18, 21, 24, 26, 29]
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir)
    student = smaller_student(teacher, {"num_hidden_layers": 2, "intermediate_size": 64})
    assert student.config.num_hidden_layers == 2 and student.config.intermediate_size == 64
    assert torch.equal(student.model.layers[1].self_attn.q_proj.weight, teacher.model.layers[2].self_attn.q_proj.weight)
    assert student.model.layers[0].mlp.down_proj.weight.shape == (64, 64)
    ids = torch.tensor([[3, 4, 5, 6]])
    assert student(ids).logits.shape == teacher(ids).logits.shape


def test_self_distillation_of_a_smaller_copy_and_synthetic_data_cache(teacher_dir):
    config = _config(student={"num_hidden_layers": 1}, data="synthetic", num_synthetic=8, max_new_tokens=24, steps=4,
                     eval_every=0, prompts=["Once upon a time", "The capital of France", "Compression is", "Hello"])
    first = hfc.CompressedModel.from_pretrained(str(teacher_dir), recipe=config)
    info = first.steps[-1].info
    assert first.model.config.num_hidden_layers == 1
    assert info["teacher"].endswith("teacher") and info["data"]["source"] == "synthetic"
    cache = Path(info["data"]["synthetic"]["cache"])
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(rows) == 4 and all(r["response"] for r in rows)
    assert info["data"]["synthetic"]["reused_cache"] is False
    again = hfc.CompressedModel.from_pretrained(str(teacher_dir), recipe=config)
    assert again.steps[-1].info["data"]["synthetic"]["reused_cache"] is True


def test_task_specific_pairs_mask_the_prompt(teacher_dir, student_dir):
    from hfcompress.methods.distill.data import encode_pair
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    row = encode_pair(tok, "Q: capital of France?", " A: Paris.", seq_len=64, mask_prompt=True, chat=False)
    n_prompt = len(tok("Q: capital of France?", add_special_tokens=False)["input_ids"])
    assert row["labels"][:n_prompt] == [-100] * n_prompt and -100 not in row["labels"][n_prompt:]
    pairs = [{"prompt": f"Question {i}: what is {i} plus {i}?", "response": f" It is {2 * i}."} for i in range(12)]
    cm = hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher=str(teacher_dir), data=pairs, task_specific=True, steps=3, eval_every=0))
    assert cm.steps[-1].info["data"]["task_specific"] is True and cm.steps[-1].info["global_step"] == 3


# ---------------------------------------------------------------------------------------------------------
# Bad input


def test_mismatched_tokenizers_fail_before_training(student_dir, tmp_path):
    other = build_tiny_model(tmp_path / "other-vocab", vocab=200, seed=2)
    with pytest.raises(HFCompressError, match="different tokenizers: vocabulary sizes differ"):
        hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher=str(other)))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"alpha": 1.5}, "alpha=1.5 is out of range"),
        ({"temperature": 0}, "temperature=0 must be positive"),
        ({"loss": "kl"}, "loss='kl' is not valid"),
        ({"steps": 0}, "steps=0 must be a positive integer"),
        ({"jsd_beta": 1.0}, "jsd_beta=1.0 is out of range"),
        ({"student": {"hidden_size": 32}}, "student overrides \\['hidden_size'\\] are not supported"),
        ({"student": 3}, "student=3 is not valid"),
        ({"prompts": ["hi"]}, "prompts= is used only with data='synthetic'"),
    ],
)
def test_bad_settings_are_one_clear_line(options, message):
    with pytest.raises(HFCompressError, match=message):
        hfc.DistillConfig(**options)


def test_bad_data_fails_before_the_teacher_loads(student_dir, tmp_path):
    with pytest.raises(HFCompressError, match="not found"):
        hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher="no/such-teacher", data=str(tmp_path / "missing.txt")))
    with pytest.raises(HFCompressError, match="task_specific=True needs prompt/response pairs"):
        hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(teacher="no/such-teacher", task_specific=True))
    with pytest.raises(HFCompressError, match="student num_hidden_layers=5 must be an integer from 1"):
        hfc.CompressedModel.from_pretrained(str(student_dir), recipe=_config(student={"num_hidden_layers": 5}))


def test_cli_distills_and_saves(teacher_dir, student_dir, tmp_path, capsys):
    from hfcompress.cli import main
    from transformers import AutoModelForCausalLM

    data = tmp_path / "train.txt"
    data.write_text("\n\n".join(TEXTS), encoding="utf-8")
    out = tmp_path / "distilled"
    code = main(["distill", str(student_dir), "--teacher", str(teacher_dir), "--data", str(data), "--steps", "3", "--seq-len", "48",
                 "--lr", "3e-3", "--eval-every", "0", "--eval-tokens", "96", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "agreement with teacher" in capsys.readouterr().out
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    assert main(["distill", str(student_dir), "--alpha", "2", "-o", str(tmp_path / "bad")]) == 2
    assert "alpha=2.0 is out of range" in capsys.readouterr().err

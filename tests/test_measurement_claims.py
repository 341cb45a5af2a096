"""The numbers users read are the numbers measured: held-out text is never calibration text, agreement and speeds
equal hand computations, the reproduce command redoes the recipe, and no byte of a token reaches the Hub."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
import torch

import hfcompress as hfc
from hfcompress.bench.perplexity import score_windows
from hfcompress.testing import TINY_TEXTS


def test_evaluation_text_is_never_calibration_text():
    from hfcompress import data
    from hfcompress.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    held_out = set(data.evaluation_texts())
    calibration = data.load_calibration("default", tokenizer, num_samples=64, seq_len=256, seed=0)
    assert held_out and calibration.texts and not held_out & set(calibration.texts)
    assert not held_out & set(data.read_texts("default")[0])  # what distillation trains on by default
    # The evaluation tokens are the held-out texts' tokens, in order.
    ids, _ = data.evaluation_token_ids("default", tokenizer, max_tokens=300)
    first = tokenizer(data.evaluation_texts()[0], add_special_tokens=False)["input_ids"]
    assert ids[: len(first)].tolist() == first[:300]


def test_next_token_agreement_is_the_share_of_equal_greedy_predictions(tiny_llama_dir):
    base = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    variant = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    with torch.no_grad():
        for name, module in variant.model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name:
                module.weight[:, ::3] = 0
    texts = [" ".join(TINY_TEXTS)]
    res = variant.evaluate(base=base, eval_data=[texts], max_tokens=256, context=64, stride=32, speed=False, generations=False, tasks=())
    ids = torch.tensor(variant.tokenizer(texts[0], add_special_tokens=False)["input_ids"][:256])
    a = score_windows(variant.model, ids, context=64, stride=32).predictions
    b = score_windows(base.model, ids, context=64, stride=32).predictions
    assert res.metrics["next_token_agreement"]["value"] == pytest.approx(float((a == b).float().mean()))
    assert res.metrics["next_token_agreement"]["value"] < 1.0


def test_batched_speeds_count_every_sequence_of_the_batch(monkeypatch):
    from hfcompress.bench import speed

    # Each run takes exactly 0.5 s to prefill and 0.25 s to decode, whatever the batch.
    monkeypatch.setattr(speed, "_one_run", lambda model, prompt, new_tokens, sync: (0.5, 0.25))
    model = torch.nn.Linear(2, 2)
    metrics = speed.measure_speed(model, torch.arange(100), prompt_tokens=16, new_tokens=4, batch_sizes=(1, 8), runs=2, warmup=0)
    assert metrics["prefill_tokens_per_s"]["value"] == pytest.approx(16 / 0.5)
    assert metrics["decode_tokens_per_s"]["value"] == pytest.approx(4 / 0.25)
    assert metrics["prefill_tokens_per_s_batch8"]["value"] == pytest.approx(8 * 16 / 0.5)
    assert metrics["decode_tokens_per_s_batch8"]["value"] == pytest.approx(8 * 4 / 0.25)
    assert metrics["time_to_first_token"]["value"] == pytest.approx(500.0)


@pytest.mark.slow  # the command it reruns evaluates with the default settings: minutes
def test_the_reproduce_command_redoes_the_recipe(tiny_llama_dir, tmp_path):
    recipe = [hfc.PruneConfig(method="magnitude", sparsity=0.3), hfc.RTNConfig(bits=8)]
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=recipe)
    cm.evaluate(eval_data=[list(TINY_TEXTS)], max_tokens=128, context=64, stride=32, speed=False, generations=False,
                tasks=(), name="variant")
    cm.save_pretrained(tmp_path / "variant")
    command = json.loads((tmp_path / "variant" / "results.json").read_text())["reproduce"].split(" && ")[0]
    argv = shlex.split(command)
    assert argv[:2] == ["hfcompress", "compress"]
    env = {**os.environ, "HFCOMPRESS_QUIET": "1"}
    done = subprocess.run([sys.executable, "-m", "hfcompress.cli", *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    redone = json.loads((tmp_path / "variant-redo" / "hfcompress.json").read_text())
    assert hfc.recipe_from_yaml((tmp_path / "variant-redo" / "recipe.yaml").read_text()) == recipe
    assert redone["recipe"] == [step.to_dict() for step in recipe]


def test_no_byte_of_the_token_reaches_the_hub_outside_its_header(tiny_llama_dir, tmp_path):
    from hub_server import HubServer

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8))
    folder = cm.save_pretrained(tmp_path / "variant")
    with HubServer() as hub, hub.client_env():
        from hfcompress.publish import push_folder

        push_folder(folder, "tester/leak-check", commit_message="Add the variant")
        traffic = b"\n".join(hub.received)
        assert b"/api/" in traffic and b"Add the variant" in traffic  # the commit (message and description) was seen
        for piece in {hub.token, hub.token[3:], hub.token[-12:]}:
            assert piece.encode() not in traffic

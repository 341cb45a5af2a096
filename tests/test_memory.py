"""Memory: no whole-model copies when saving or evaluating, chunked distillation loss, and a run that cannot fit is
refused before any work with the figure it needs."""

from __future__ import annotations

import copy

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import HFCompressError


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("recipe", [hfc.RTNConfig(bits=4, group_size=32), hfc.GPTQConfig(bits=4, group_size=32)],
                         ids=["rtn", "gptq"])
def test_compressed_save_copies_nothing_and_leaves_the_model_as_it_was(tiny_llama_dir, tiny_texts, tmp_path, monkeypatch, recipe):
    from transformers import AutoModelForCausalLM

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=recipe, calibration=tiny_texts, num_samples=4, seq_len=32)
    ids = torch.tensor([[1, 5, 9, 30, 2, 7, 11, 3]])
    before = _logits(cm.model, ids)
    tensors = {name: p for name, p in cm.model.named_parameters()}

    real_deepcopy = copy.deepcopy

    def no_copies(obj, *args, **kwargs):
        if isinstance(obj, (torch.nn.Module, torch.Tensor)):
            raise AssertionError(f"copy.deepcopy of a {type(obj).__name__} while saving")
        return real_deepcopy(obj, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", no_copies)
    out = cm.save_pretrained(tmp_path / "variant", card=False)
    monkeypatch.undo()

    # The in-memory model keeps its very tensors and still computes what it did.
    assert {name: p for name, p in cm.model.named_parameters()}.keys() == tensors.keys()
    assert all(p is tensors[name] for name, p in cm.model.named_parameters())
    assert torch.equal(_logits(cm.model, ids), before)
    # What was written is compressed, and plain transformers reloads it with the same outputs.
    config = (out / "config.json").read_text()
    assert '"quant_method": "compressed-tensors"' in config and '"format": "pack-quantized"' in config
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(_logits(reloaded, ids), before, rtol=1e-4, atol=1e-4)
    # Saving twice gives the same files (nothing was left compressed in memory).
    again = cm.save_pretrained(tmp_path / "again", card=False)
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize("loss", ["forward_kl", "reverse_kl", "jsd"])
def test_chunked_distillation_loss_equals_the_whole_one_and_keeps_no_vocabulary_sized_tensors(loss):
    from hfcompress.methods.distill.losses import distillation_loss

    torch.manual_seed(0)
    batch, seq, vocab = 3, 37, 1024
    student = torch.randn(batch, seq, vocab, dtype=torch.float64) * 3
    teacher = torch.randn(batch, seq, vocab) * 3
    labels = torch.randint(0, vocab, (batch, seq))
    labels[0, :10] = -100  # a prompt left out
    labels[2, -5:] = -100  # padding
    results = {}
    for chunk in (None, 1, 16, 64, 10_000):
        s = student.clone().float().requires_grad_(True)
        total, parts = distillation_loss(s, teacher, labels, alpha=0.3, temperature=2.0, loss=loss, chunk_tokens=chunk)
        total.backward()
        results[chunk] = (total.detach(), parts, s.grad)
    whole, whole_parts, whole_grad = results[None]
    for chunk, (total, parts, grad) in results.items():
        torch.testing.assert_close(total, whole, rtol=1e-6, atol=1e-6)
        assert parts == pytest.approx(whole_parts, rel=1e-6, abs=1e-6)
        torch.testing.assert_close(grad, whole_grad, rtol=1e-6, atol=1e-6)

    # What autograd keeps for backward: the whole loss keeps several batch x seq x vocab float tensors; the
    # chunked one keeps views of the logits and per-chunk small tensors only.
    def saved_bytes(chunk):
        seen: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            return t

        s = student.clone().float().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            distillation_loss(s, teacher, labels, loss=loss, chunk_tokens=chunk)
        inputs = {s.untyped_storage().data_ptr(), teacher.untyped_storage().data_ptr()}
        return sum(n for ptr, n in seen.items() if ptr not in inputs)

    logits_bytes = batch * seq * vocab * 4
    assert saved_bytes(None) >= 2 * logits_bytes
    assert saved_bytes(16) < 0.05 * logits_bytes


def test_a_run_that_cannot_fit_is_refused_before_loading_with_the_figure_it_needs(tiny_llama_dir, monkeypatch):
    import collections

    import psutil

    import hfcompress.api as api

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the memory check")

    monkeypatch.setattr(api, "load_model", no_load)
    memory = collections.namedtuple("memory", "available total")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(available=100_000, total=10**9))
    from safetensors import safe_open

    with safe_open(str(tiny_llama_dir / "model.safetensors"), framework="pt") as reader:
        params = sum(reader.get_tensor(k).numel() for k in reader.keys())
    with pytest.raises(HFCompressError, match=r"needs about 0\.0 GB of memory .* x 4 bytes x 6 for distill\) but 0\.0 GB is available") as err:
        hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.DistillConfig(steps=1))
    assert "HFCOMPRESS_SKIP_MEMORY_CHECK=1" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(available=10**12, total=10**12))
    assert api._check_fits_in_memory(str(tiny_llama_dir), [hfc.RTNConfig(bits=8)]) == int(params * 4 * 1.2)
    assert api._check_fits_in_memory(str(tiny_llama_dir), [hfc.RTNConfig(bits=8)], dtype="bfloat16") == int(params * 2 * 1.2)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(available=100_000, total=10**9))
    monkeypatch.setenv("HFCOMPRESS_SKIP_MEMORY_CHECK", "1")
    assert api._check_fits_in_memory(str(tiny_llama_dir), [hfc.DistillConfig(steps=1)]) is None


def test_evaluate_keeps_one_model_in_memory_while_it_measures_the_reloaded_variant(tiny_llama_dir, monkeypatch):
    import hfcompress.api as api

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=4, group_size=32))
    ids = torch.tensor([[1, 5, 9, 30, 2, 7, 11, 3]])
    before = _logits(cm.model, ids)
    tensors = dict(cm.model.named_parameters())
    real = api.bench_evaluate
    resident: list[int] = []

    def measuring(*args, **kwargs):
        resident.append(sum(p.numel() for p in cm.model.parameters()))  # what the in-memory variant holds meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "bench_evaluate", measuring)
    result = cm.evaluate(eval_data=[["a held-out sentence to score. " * 20]], max_tokens=128, context=64, stride=32,
                         speed=False, generations=False, tasks=[], kl=False)
    assert resident == [0] and result.metrics["perplexity"]["value"] > 0
    assert result.settings["measured"] == "saved folder, reloaded"
    assert all(p is tensors[name] for name, p in cm.model.named_parameters())  # the same tensors, put back
    assert torch.equal(_logits(cm.model, ids), before)


@pytest.mark.parametrize("recipe", [hfc.GPTQConfig(bits=4, group_size=32), hfc.PruneConfig(method="wanda", sparsity=0.5)],
                         ids=["gptq", "wanda"])
def test_a_model_offloaded_to_disk_compresses_layer_by_layer_to_the_same_variant(tiny_texts, tmp_path, recipe):
    from transformers import AutoModelForCausalLM

    from hfcompress.testing import build_tiny_model

    folder = build_tiny_model(tmp_path / "tiny", hidden=128, intermediate=256, layers=4)
    ids = torch.tensor([[1, 5, 9, 30, 2, 7, 11, 3]])
    options = dict(recipe=recipe, calibration=tiny_texts, num_samples=4, seq_len=32)
    in_memory = hfc.CompressedModel.from_pretrained(str(folder), **options).save_pretrained(tmp_path / "in-memory", card=False)
    offload = tmp_path / "offload"
    # 100 kB of weights in memory: the embeddings and every decoder layer wait on disk until the pipeline needs them.
    cm = hfc.CompressedModel.from_pretrained(str(folder), max_memory={"cpu": 100_000}, offload_folder=offload, **options)
    assert len(list(offload.glob("*.safetensors"))) >= 4 * 7  # at least every decoder Linear was written out
    layer_by_layer = cm.save_pretrained(tmp_path / "layer-by-layer", card=False)
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(layer_by_layer), ids),
                               _logits(AutoModelForCausalLM.from_pretrained(in_memory), ids), rtol=0, atol=1e-5)


def test_a_step_that_needs_the_whole_model_refuses_offloading_in_one_line(tiny_llama_dir):
    with pytest.raises(HFCompressError, match="structured_prune via torch needs the whole model in memory") as err:
        hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.StructuredPruneConfig(ratio=0.25),
                                            max_memory={"cpu": "1GB"})
    assert "\n" not in str(err.value)


def test_the_cli_passes_max_memory_and_a_step_that_cannot_use_it_is_one_line(tiny_llama_dir, tmp_path, capsys):
    from hfcompress.cli import main

    code = main(["compress", str(tiny_llama_dir), "--method", "structured", "--ratio", "0.25", "--max-memory", "1GiB",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs the whole model in memory" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()

"""Quantization adapters on a tiny random Llama: RTN int8/int4, GPTQ and AWQ through llm-compressor.

What a user relies on: the saved folder loads in plain transformers (no hfcompress import) and gives the
logits the compressed model gave; the layers really are stored quantized (packed integers, fewer bytes);
bad input fails at once with one clear line; nothing existing is overwritten.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hfcompress as hfc
from hfcompress.testing import build_tiny_model
from hfcompress.errors import BackendUnavailableError, HFCompressError

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 8,
    "Compression makes language models smaller and faster to run on modest hardware. " * 6,
    "Paris is the capital of France, and Berlin is the capital of Germany. " * 6,
]
IDS = torch.tensor([[1, 5, 9, 40, 41, 42, 77, 100, 101, 3, 17, 200, 201, 202, 64, 65]])

# name -> (config, bits, group size expected in the checkpoint (None = per channel))
METHODS = {
    "rtn-int8": (hfc.RTNConfig(bits=8), 8, None),
    "rtn-int4": (hfc.RTNConfig(bits=4, group_size=32), 4, 32),
    "gptq": (hfc.GPTQConfig(bits=4, group_size=32), 4, 32),
    "awq": (hfc.AWQConfig(bits=4, group_size=32), 4, 32),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _compress(folder: Path, config, **kw) -> hfc.CompressedModel:
    return hfc.CompressedModel.from_pretrained(str(folder), recipe=config, calibration=TEXTS, num_samples=4, seq_len=64, **kw)


_BUILT: dict[str, tuple] = {}


def _variant(name: str, tmp_path_factory) -> tuple:
    """(name, compressed model, its logits on IDS, saved folder), built once per session per method."""
    if "_tiny" not in _BUILT:
        _BUILT["_tiny"] = build_tiny_model(tmp_path_factory.mktemp("tiny-q") / "tiny")
    if name not in _BUILT:
        config, _, _ = METHODS[name]
        cm = _compress(_BUILT["_tiny"], config)
        with torch.no_grad():
            logits = cm.model(IDS).logits
        out = cm.save_pretrained(tmp_path_factory.mktemp("q") / f"tiny-{name}", card=False)
        _BUILT[name] = (name, cm, logits, out)
    return _BUILT[name]


@pytest.fixture(params=list(METHODS))
def variant(request, tmp_path_factory):
    return _variant(request.param, tmp_path_factory)


@pytest.fixture()
def tiny_dir(tmp_path_factory) -> Path:
    """The unquantized tiny Llama the variants were built from (do not modify)."""
    _variant("rtn-int8", tmp_path_factory)
    return _BUILT["_tiny"]


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def test_reload_in_plain_transformers_gives_the_compressed_logits(variant):
    name, _, logits, folder = variant
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        again = reloaded(IDS).logits
    assert torch.isfinite(again).all()
    # Same integers and scales on both sides: only float summation order may differ.
    torch.testing.assert_close(again, logits, atol=1e-4, rtol=1e-4)


def test_checkpoint_is_compressed_tensors_with_packed_weights(variant, tiny_dir):
    name, _, _, folder = variant
    _, bits, group = METHODS[name]
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["format"] == "pack-quantized"
    weights = qc["config_groups"]["group_0"]["weights"]
    assert weights["num_bits"] == bits and weights["type"] == "int"
    assert weights["group_size"] == group
    assert weights["strategy"] == ("group" if group else "channel")
    assert "lm_head" in qc["ignore"]

    tensors = _tensors(folder)
    fp = _tensors(tiny_dir)
    linear_fp_bytes = 0
    for layer in range(2):
        for target in TARGETS:
            part = "self_attn" if target.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            prefix = f"model.layers.{layer}.{part}.{target}"
            assert f"{prefix}.weight" not in tensors, f"{prefix} stored dense"
            packed = tensors[f"{prefix}.weight_packed"]
            assert packed.dtype == torch.int32
            stored = sum(t.numel() * t.element_size() for k, t in tensors.items() if k.startswith(prefix + "."))
            dense = fp[f"{prefix}.weight"].numel() * 4
            linear_fp_bytes += dense
            # int8: 1/4 of fp32 plus scales; int4 g32: 1/8 plus a scale and a zero point per 32 weights.
            assert stored < dense * (0.3 if bits == 8 else 0.2), f"{prefix}: {stored} bytes vs {dense} fp32"
    assert tensors["lm_head.weight"].dtype == torch.float32  # ignored layer stays dense
    # The file shrinks by most of the Linear layers' fp32 bytes (embeddings and lm_head stay fp32).
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    fp_size = sum(p.stat().st_size for p in tiny_dir.glob("*.safetensors"))
    assert fp_size - size > linear_fp_bytes * (0.6 if bits == 8 else 0.75)


def test_reloaded_weights_lie_on_the_quantization_grid(variant):
    name, _, _, folder = variant
    _, bits, group = METHODS[name]
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        reloaded(IDS)  # compressed-tensors decompresses on first use
    layer = reloaded.model.layers[1].mlp.down_proj
    weight = layer.weight.detach()
    rows = weight.reshape(weight.shape[0], -1, group or weight.shape[1])
    distinct = max(len(torch.unique(rows[r, g])) for r in range(rows.shape[0]) for g in range(rows.shape[1]))
    assert distinct <= 2**bits
    assert layer.quantization_scheme.weights.num_bits == bits


def test_manifest_records_backend_and_format(variant):
    name, cm, _, folder = variant
    manifest = json.loads((folder / "hfcompress.json").read_text())
    assert manifest["format"] == "compressed-tensors"
    assert manifest["steps"][0]["backend"] == "llmcompressor"
    assert "llmcompressor" in manifest["steps"][0]["backend_versions"]
    assert "compressed-tensors" in manifest["load"]["requires"]
    assert cm.steps[0].info["group_size"] == METHODS[name][2]


def test_gptq_folder_loads_in_a_process_without_hfcompress(tmp_path_factory, tmp_path):
    _, _, expected, folder = _variant("gptq", tmp_path_factory)
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(folder)!r})
        assert "hfcompress" not in sys.modules, "hfcompress was imported"
        with torch.no_grad():
            logits = model(torch.tensor({IDS.tolist()})).logits
        torch.save(logits, {str(tmp_path / "logits.pt")!r})
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    logits = torch.load(tmp_path / "logits.pt")
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_gptq_actorder_reaches_the_checkpoint(tmp_path_factory, tiny_dir, tmp_path):
    # Left unset, llm-compressor's GPTQModifier applies "static" ordering; ours must reach the file as given.
    def saved_actorder(folder: Path) -> str | None:
        qc = json.loads((folder / "config.json").read_text())["quantization_config"]
        return qc["config_groups"]["group_0"]["weights"]["actorder"]

    default = hfc.GPTQConfig().actorder
    assert saved_actorder(_variant("gptq", tmp_path_factory)[3]) == default
    other = "weight" if default is None else None
    cm = _compress(tiny_dir, hfc.GPTQConfig(bits=4, group_size=32, actorder=other))
    assert saved_actorder(cm.save_pretrained(tmp_path / "other", card=False)) == other


def test_awq_leaves_pin_memory_untouched(tmp_path_factory):
    # The CPU workaround patches IntermediatesCache.pin_memory only while AWQ runs.
    from llmcompressor.pipelines.cache import IntermediatesCache

    _variant("awq", tmp_path_factory)
    method = IntermediatesCache.__dict__["pin_memory"]
    assert method.__qualname__ == "IntermediatesCache.pin_memory" and method.__module__ == "llmcompressor.pipelines.cache"


# ---------------------------------------------------------------------------------------------------
# Bad input: one line, raised before any work


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("make", [lambda: hfc.RTNConfig(bits=3), lambda: hfc.GPTQConfig(bits=3), lambda: hfc.AWQConfig(bits=3)])
def test_three_bits_is_refused(make):
    with pytest.raises(HFCompressError) as err:
        make()
    assert "bits=3" in _one_line(err) and "4" in str(err.value)


def test_group_size_that_does_not_divide_a_layer_is_refused(tiny_llama_dir):
    with pytest.raises(HFCompressError) as err:
        _compress(tiny_llama_dir, hfc.GPTQConfig(bits=4, group_size=48))
    message = _one_line(err)
    assert "group_size=48" in message and "64" in message and "group_size=" in message.split(";")[1]


def test_unknown_backend_is_refused(tiny_llama_dir):
    with pytest.raises(HFCompressError) as err:
        _compress(tiny_llama_dir, hfc.RTNConfig(bits=8), backend="no-such-backend")
    message = _one_line(err)
    assert "no-such-backend" in message and "llmcompressor" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gptqmodel_without_gpu_names_gpu_and_extra(tiny_llama_dir):
    with pytest.raises(BackendUnavailableError) as err:
        _compress(tiny_llama_dir, hfc.GPTQConfig(bits=4, group_size=32), backend="gptqmodel")
    message = _one_line(err)
    assert "gptqmodel" in message and "GPU" in message and "backend='llmcompressor'" in message
    if importlib.util.find_spec("gptqmodel") is None:
        assert "pip install 'hfcompress[gptq]'" in message


def test_auto_backend_picks_llmcompressor_on_cpu():
    from hfcompress.methods.registry import get_adapter

    for config in (hfc.RTNConfig(), hfc.GPTQConfig(), hfc.AWQConfig()):
        assert get_adapter(config, "auto").name == "llmcompressor"


@pytest.mark.parametrize("backend, config", [("autogptq", hfc.GPTQConfig()), ("autoawq", hfc.AWQConfig())])
def test_legacy_backends_explain_why_they_cannot_run(backend, config):
    from hfcompress.methods.registry import get_adapter, list_adapters

    adapter = next(a for a in list_adapters() if a.name == backend)
    reason = adapter.unavailable_reason()
    if reason is None:
        pytest.skip(f"{backend} can run here")
    with pytest.raises(BackendUnavailableError) as err:
        get_adapter(config, backend)
    assert _one_line(err) == reason and backend in reason and ("pip install" in reason or "transformers" in reason or "GPU" in reason)


def test_existing_folder_is_not_overwritten(tmp_path_factory, tmp_path):
    cm = _variant("rtn-int8", tmp_path_factory)[1]
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(HFCompressError) as err:
        cm.save_pretrained(target, card=False)
    assert "overwrite" in _one_line(err)
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "mine"
    cm.save_pretrained(target, overwrite=True, card=False)
    assert (target / "config.json").is_file() and not (target / "keep.txt").exists()


# ---------------------------------------------------------------------------------------------------
# GPTQModel output cleaning (the part of that adapter that runs without gptqmodel)


def test_gptqmodel_temp_paths_are_scrubbed(tmp_path):
    from hfcompress.methods.quantization.gptqmodel import scrub_temp_paths

    config = {
        "model_type": "llama",
        "quantization_config": {"bits": 4, "meta": {"offload_to_disk_path": "/tmp/gptqmodel_ab12cd", "quantizer": ["gptqmodel:7.6.0"]}},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    cleared = scrub_temp_paths(tmp_path)
    text = (tmp_path / "config.json").read_text()
    assert "gptqmodel_ab12cd" not in text and cleared == ["quantization_config.meta.offload_to_disk_path"]
    data = json.loads(text)
    assert data["quantization_config"]["meta"]["quantizer"] == ["gptqmodel:7.6.0"] and data["quantization_config"]["bits"] == 4


def test_gptqmodel_quantize_config_translation():
    pytest.importorskip("gptqmodel")
    from hfcompress.methods.quantization.gptqmodel import quantize_config

    q = quantize_config(hfc.GPTQConfig(bits=4, group_size=64, actorder="static", dampening_frac=0.05), 64)
    assert (q.bits, q.group_size, q.sym, q.desc_act, q.damp_percent) == (4, 64, False, True, 0.05)
    awq = quantize_config(hfc.AWQConfig(bits=4, group_size=64), 64)
    assert str(awq.method.value if hasattr(awq.method, "value") else awq.method) == "awq"


def test_observer_setting_reaches_llmcompressor_and_rtn_with_imatrix_reads_calibration(tiny_llama_dir, tiny_texts):
    from transformers import AutoModelForCausalLM

    from hfcompress.methods.quantization.llmcompressor import LLMCompressorQuantization

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    adapter = LLMCompressorQuantization()
    weights = lambda cfg: adapter.modifiers(model, cfg)[0].config_groups["group_0"].weights  # noqa: E731
    assert weights(hfc.GPTQConfig(group_size=32)).observer == "imatrix_mse"  # the measured default
    assert weights(hfc.GPTQConfig(group_size=32, observer="minmax")).observer in (None, "minmax", "memoryless_minmax")
    assert weights(hfc.RTNConfig(bits=4, group_size=32, observer="mse")).observer == "memoryless_mse"
    assert not hfc.RTNConfig(bits=4).needs_calibration and hfc.RTNConfig(bits=4, observer="imatrix_mse").needs_calibration
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.RTNConfig(bits=4, group_size=32, observer="imatrix_mse"),
                                             calibration=tiny_texts, num_samples=4, seq_len=64)
    assert cm.calibration["num_samples"] == 4
    with pytest.raises(hfc.HFCompressError, match="observer='histogram' is not valid"):
        hfc.GPTQConfig(observer="histogram")


def test_mixture_of_experts_models_prune_and_reload_but_compressed_tensors_quantization_is_refused(tmp_path):
    """llm-compressor turns fused experts into one Linear per expert to calibrate them; saved that way, transformers
    re-initialized the experts at random on reload. Pruning is repacked into the fused layout; quantized experts have
    no layout transformers loads, so quantizing a MoE model is refused in one line before any work."""
    from transformers import AutoModelForCausalLM

    from hfcompress.errors import HFCompressError
    from hfcompress.testing import TINY_TEXTS, build_tiny_model

    ids = torch.randint(3, 200, (1, 16))
    for arch in ("mixtral", "qwen3_moe"):
        folder = build_tiny_model(tmp_path / arch, arch)
        cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.PruneConfig(method="wanda", sparsity=0.5),
                                                 calibration=list(TINY_TEXTS), num_samples=4, seq_len=64)
        out = cm.save_pretrained(tmp_path / f"{arch}-wanda")
        with torch.no_grad():
            reloaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
            torch.testing.assert_close(reloaded(ids).logits, cm.model(ids).logits, rtol=0, atol=1e-5)
        experts = reloaded.model.layers[0].mlp.experts
        assert float((experts.down_proj == 0).float().mean()) == pytest.approx(0.5, abs=0.02)  # pruned experts kept
        for recipe in (hfc.GPTQConfig(bits=4, group_size=32), hfc.RTNConfig(bits=8), hfc.QATConfig(bits=4, group_size=32)):
            with pytest.raises(HFCompressError, match="of a mixture-of-experts model .* is refused: transformers cannot load"):
                hfc.CompressedModel.from_pretrained(str(folder), recipe=recipe, calibration=list(TINY_TEXTS), num_samples=2, seq_len=32)

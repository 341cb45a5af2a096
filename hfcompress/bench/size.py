"""Size, parameter count, bits per weight and sparsity, measured honestly from what is stored.

A packed checkpoint stores 8 int4 weights in one int32; counting its tensors' elements would report an
int4 model as having one eighth of its parameters. So the counts here are *logical* weights: a
compressed-tensors ``weight_packed`` tensor counts as the weight matrix it holds (its ``weight_shape``),
while scales, zero points and other quantization metadata add storage bits but no parameters.
Bits per weight = all stored bits / logical weights.

Example:
    >>> from hfcompress.bench.size import checkpoint_stats
    >>> checkpoint_stats("out/SmolLM2-135M-GPTQ-4bit")["bits_per_weight_linear"]    # doctest: +SKIP
    4.56
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

# Bits per element of each safetensors dtype.
_DTYPE_BITS = {
    "F64": 64, "I64": 64, "U64": 64, "F32": 32, "I32": 32, "U32": 32, "F16": 16, "BF16": 16, "I16": 16, "U16": 16,
    "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "I8": 8, "U8": 8, "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
# compressed-tensors tensors that describe a packed/sparse weight; they cost bits but are not parameters.
_META_SUFFIXES = (
    ".weight_scale", ".weight_zero_point", ".weight_shape", ".weight_g_idx", ".weight_global_scale",
    ".input_scale", ".input_zero_point", ".input_global_scale", ".output_scale", ".output_zero_point",
    ".weight.bitmask", ".weight.row_offsets", ".weight.shape", ".weight.meta",
)


def folder_size_bytes(folder: str | Path) -> int:
    """Bytes of every file under ``folder`` (symlinks followed, as in a Hub cache snapshot).

    Example:
        >>> folder_size_bytes("out/variant") > 0          # doctest: +SKIP
        True
    """
    total = 0
    for path in Path(folder).rglob("*"):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            total += path.stat().st_size
    return total


def _read_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length))


def _read_int_tensor(path: Path, header_len: int, entry: dict[str, Any]) -> list[int]:
    start, end = entry["data_offsets"]
    fmt = {"I64": "q", "I32": "i", "U64": "Q", "U32": "I"}.get(entry["dtype"])
    if fmt is None:
        return []
    with path.open("rb") as handle:
        handle.seek(8 + header_len + start)
        raw = handle.read(end - start)
    return list(struct.unpack(f"<{len(raw) // struct.calcsize(fmt)}{fmt}", raw))


def _num_bits(folder: Path) -> int | None:
    # The packed weight's bit width, from config.json's quantization_config (one scheme for all Linear layers
    # is what hfcompress writes); only used when a packed tensor has no weight_shape beside it.
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        groups = (config.get("quantization_config") or {}).get("config_groups") or {}
        bits = {g.get("weights", {}).get("num_bits") for g in groups.values() if g.get("weights")}
        return bits.pop() if len(bits) == 1 else None
    except (OSError, ValueError, AttributeError):
        return None


def checkpoint_stats(folder: str | Path) -> dict[str, Any] | None:
    """Logical parameters and stored bits of the safetensors checkpoint in ``folder`` (None if it has none).

    Returns ``parameters``, ``storage_bits``, ``bits_per_weight`` (whole checkpoint) and the same for the
    decoder layers' 2-D weights (``parameters_linear``, ``bits_per_weight_linear``), where quantization acts.

    Example:
        >>> checkpoint_stats(tiny_folder)["parameters"]        # doctest: +SKIP
        102464
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    num_bits = _num_bits(folder)
    params = bits = params_linear = bits_linear = 0
    for path in files:
        header = _read_header(path)
        with path.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
        header.pop("__metadata__", None)
        for name, entry in header.items():
            numel = 1
            for dim in entry["shape"]:
                numel *= dim
            stored = numel * _DTYPE_BITS.get(entry["dtype"], 32)
            bits += stored
            layer = ".layers." in name or name.startswith("layers.")
            if name.endswith(_META_SUFFIXES):
                # Quantization/sparsity metadata belongs to a decoder Linear layer: its bits count there.
                bits_linear += stored if layer else 0
                continue
            if name.endswith(".weight_packed"):
                prefix = name[: -len(".weight_packed")]
                shape_entry = header.get(prefix + ".weight_shape")
                shape = _read_int_tensor(path, header_len, shape_entry) if shape_entry else []
                if shape:
                    logical = 1
                    for dim in shape:
                        logical *= dim
                else:
                    logical = numel * _DTYPE_BITS.get(entry["dtype"], 32) // (num_bits or 4)
            elif name.endswith(".weight.compressed"):
                prefix = name[: -len(".compressed")]
                shape_entry = header.get(prefix + ".shape")
                shape = _read_int_tensor(path, header_len, shape_entry) if shape_entry else []
                logical = 1
                for dim in shape or [numel]:
                    logical *= dim
            else:
                logical = numel
            params += logical
            if layer and (len(entry["shape"]) == 2 or name.endswith((".weight_packed", ".weight.compressed"))):
                params_linear += logical
                bits_linear += stored
    return _bits_summary(params, bits, params_linear, bits_linear)


def model_stats(model: Any) -> dict[str, Any]:
    """The same numbers from a model in memory (used when there is no safetensors checkpoint to read).

    Tied weights are counted once. In-memory quantized models may hold full-precision weights, so prefer
    ``checkpoint_stats`` of the saved folder for bits per weight.

    Example:
        >>> model_stats(model)["parameters"]                   # doctest: +SKIP
        134515008
    """
    seen: set[int] = set()
    params = bits = params_linear = bits_linear = 0
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        key = tensor.data_ptr()
        if key in seen or tensor.numel() == 0:
            continue
        seen.add(key)
        stored = tensor.numel() * tensor.element_size() * 8
        bits += stored
        if name in dict(model.named_buffers()):
            continue
        params += tensor.numel()
        if ".layers." in name and tensor.dim() == 2:
            params_linear += tensor.numel()
            bits_linear += stored
    return _bits_summary(params, bits, params_linear, bits_linear)


def linear_sparsity(model: Any) -> float | None:
    """Fraction of exact zeros in the weights of the decoder layers' Linear modules (None if none are dense).

    Example:
        >>> round(linear_sparsity(pruned_model), 3)            # doctest: +SKIP
        0.5
    """
    import torch

    zeros = total = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or ".layers." not in f".{name}.":
            continue
        weight = getattr(module, "weight", None)
        if weight is None or not torch.is_floating_point(weight) or weight.device.type == "meta":
            continue
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total if total else None


def gguf_stats(path: str | Path) -> dict[str, Any]:
    """Parameters and stored bits of a GGUF file (its tensors' element counts and the file's size).

    ``bits_per_weight_linear`` covers the decoder blocks' weight matrices (``blk.*``), where quantization acts.
    """
    from ..methods.backends.llamacpp import read_header

    params = params_linear = bits_linear = 0
    for tensor in read_header(path)[1]:
        params += tensor.n_elements
        if tensor.name.startswith("blk.") and len(tensor.shape) == 2:
            params_linear += tensor.n_elements
            bits_linear += tensor.n_bytes * 8
    bits = Path(path).stat().st_size * 8
    return _bits_summary(params, bits, params_linear, bits_linear)


def _bits_summary(params: int, bits: int, params_linear: int, bits_linear: int) -> dict[str, Any]:
    # One shape for a checkpoint's and a GGUF file's figures: the layers' bits per weight is what "4-bit" means.
    return {
        "parameters": params,
        "storage_bits": bits,
        "bits_per_weight": bits / params if params else None,
        "parameters_linear": params_linear,
        "bits_per_weight_linear": bits_linear / params_linear if params_linear else None,
    }


def kv_cache_bytes_per_token(config: Any, bytes_per_element: int) -> int | None:
    """Bytes the KV cache holds per token: ``num_layers * 2 (K and V) * num_kv_heads * head_dim * bytes per element``.

    ``config`` is a transformers config or config.json as a dict (a multimodal one's text part is used). The figure
    is for full attention: a sliding-window layer stops growing at its window. None when the config lacks the sizes.

    Example:
        >>> kv_cache_bytes_per_token({"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        ...                           "hidden_size": 576}, 2)       # SmolLM2-135M in bf16
        23040
    """
    if not isinstance(config, dict):
        config = (config.get_text_config() if hasattr(config, "get_text_config") else config).to_dict()
    config = config.get("text_config") or config
    try:
        heads = int(config["num_attention_heads"])
        kv = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
        return int(config["num_hidden_layers"]) * 2 * kv * head_dim * int(bytes_per_element)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def gguf_kv_cache_bytes_per_token(path: str | Path, bytes_per_element: int = 2) -> int | None:
    """The same from a GGUF file's metadata (llama.cpp caches K and V as f16 unless told otherwise)."""
    from ..methods.backends.llamacpp import read_header

    meta = read_header(path)[0]
    arch = meta.get("general.architecture")
    try:
        heads = int(meta[f"{arch}.attention.head_count"])
        kv = int(meta.get(f"{arch}.attention.head_count_kv") or heads)
        key = int(meta.get(f"{arch}.attention.key_length") or int(meta[f"{arch}.embedding_length"]) // heads)
        value = int(meta.get(f"{arch}.attention.value_length") or key)
        return int(meta[f"{arch}.block_count"]) * kv * (key + value) * bytes_per_element
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None

"""Where a decoder's attention projections are and how many heads they hold (Llama, Qwen2/3, Mistral, Gemma 3, MoE).

Example:
    >>> from hfcompress.testing import tiny_model
    >>> attention_geometry(tiny_model("qwen3")[0])
    (4, 2, 16)
"""

from __future__ import annotations

from typing import Any

from ...errors import HFCompressError
from ..layers import architecture_name, decoder_layers


def text_config(model: Any) -> Any:
    """The config that holds the decoder's sizes (a multimodal config's text part)."""
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def attention_geometry(model: Any) -> tuple[int, int, int]:
    """``(query heads, KV heads, head_dim)`` from the model's config."""
    cfg = text_config(model)
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return heads, kv, head_dim


def attention_modules(model: Any) -> list[Any]:
    """Every decoder layer's ``self_attn`` with q/k/v/o_proj Linear layers; a one-line error for other layouts."""
    layers = decoder_layers(model)
    names = ("q_proj", "k_proj", "v_proj", "o_proj")
    modules = [getattr(layer, "self_attn", None) for layer in (layers or [])]
    if not modules or any(m is None or not all(hasattr(m, n) for n in names) for m in modules):
        raise HFCompressError(
            f"{architecture_name(model)} has no Llama-style attention (self_attn with q/k/v/o_proj) in every decoder "
            "layer; GQA conversion supports Llama, Qwen2/3, Mistral, Gemma 3, Mixtral, Qwen-MoE and OLMoE"
        )
    return modules

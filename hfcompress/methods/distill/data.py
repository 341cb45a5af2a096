"""Training data for distillation: packed text, prompt/response pairs, and teacher-generated (synthetic) pairs.

Every example is a dict of 1-D lists ``input_ids`` and ``labels`` (labels = input ids, with -100 where the
loss is left out: prompts in task-specific mode). Synthetic data is cached as JSONL under
``hfcompress.loading.cache_dir()/distill-data/<hash>.jsonl``, keyed by teacher, prompts and sampling settings,
so a rerun reads it back instead of generating again.

Example:
    >>> from hfcompress.testing import tiny_tokenizer
    >>> rows = pack_texts(["hello world"] * 50, tiny_tokenizer(), seq_len=32, max_sequences=4, seed=0)
    >>> len(rows), len(rows[0]["input_ids"])
    (4, 32)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from typing import Any, Sequence

from ...data import read_pairs
from ...errors import HFCompressError
from ...loading import cache_dir

logger = logging.getLogger(__name__)


def pack_texts(texts: Sequence[str], tokenizer: Any, *, seq_len: int, max_sequences: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Shuffle ``texts`` with ``seed``, join them with EOS and cut ``seq_len``-token sequences (at most ``max_sequences``).

    Example:
        >>> rows = pack_texts(texts, tok, seq_len=256, max_sequences=800)        # doctest: +SKIP
    """
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    eos = tokenizer.eos_token_id
    rows: list[dict[str, list[int]]] = []
    buffer: list[int] = []
    for index in order:
        buffer.extend(tokenizer(texts[index], add_special_tokens=False)["input_ids"])
        if eos is not None:
            buffer.append(eos)
        while len(buffer) >= seq_len and len(rows) < max_sequences:
            rows.append({"input_ids": buffer[:seq_len], "labels": buffer[:seq_len]})
            buffer = buffer[seq_len:]
        if len(rows) >= max_sequences:
            break
    if not rows and len(buffer) > 1:
        rows.append({"input_ids": buffer, "labels": list(buffer)})
    if not rows:
        raise HFCompressError("the distillation text holds no tokens; pass data= a file, a list of strings or 'synthetic'")
    return rows


def encode_pair(tokenizer: Any, prompt: str, response: str, *, seq_len: int, mask_prompt: bool, chat: bool) -> dict[str, list[int]]:
    """One prompt/response example; with ``mask_prompt`` the loss covers only the response tokens (and EOS).

    With ``chat`` and a tokenizer that has a chat template, the prompt is wrapped as a user turn (as trl's
    SFT does for instruct models); otherwise the response simply continues the prompt.

    Example:
        >>> from hfcompress.testing import tiny_tokenizer
        >>> row = encode_pair(tiny_tokenizer(), "2+2=", " 4", seq_len=64, mask_prompt=True, chat=False)
        >>> row["labels"][:4], len(row["input_ids"])
        ([-100, -100, -100, -100], 7)
    """
    prompt_ids = prompt_token_ids(tokenizer, prompt, chat=chat)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:seq_len]
    labels = ([-100] * len(prompt_ids) if mask_prompt else list(prompt_ids)) + response_ids
    return {"input_ids": ids, "labels": labels[:seq_len]}


def prompt_token_ids(tokenizer: Any, prompt: str, *, chat: bool) -> list[int]:
    """Token ids of a prompt: the chat template's user turn plus generation prompt when ``chat``, else the plain text."""
    if chat and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def synthetic_pairs(teacher: Any, tokenizer: Any, prompts: Sequence[str], *, teacher_id: str, max_new_tokens: int,
                    seed: int, chat: bool, temperature: float = 1.0, top_p: float = 0.95, batch_size: int = 8,
                    progress: bool = True) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Teacher-written continuations of ``prompts`` (sampled with ``seed``), read from the disk cache when present.

    Returns the (prompt, response) pairs and a summary (cache path, whether it was reused, settings).

    Example:
        >>> pairs, info = synthetic_pairs(teacher, tok, ["Once upon a time"], teacher_id="t", max_new_tokens=32,
        ...                               seed=0, chat=False)                                 # doctest: +SKIP
    """
    import torch
    from tqdm.auto import tqdm

    settings = {"teacher": teacher_id, "fingerprint": model_fingerprint(teacher), "prompts": list(prompts),
                "max_new_tokens": max_new_tokens, "seed": seed, "chat": chat, "temperature": temperature, "top_p": top_p}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "distill-data" / f"{key}.jsonl"
    summary = {"cache": str(path), "prompts": len(prompts), "max_new_tokens": max_new_tokens, "seed": seed,
               "temperature": temperature, "top_p": top_p, "chat_template": chat}
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(rows) == len(prompts):
            logger.info("synthetic distillation data read from %s", path)
            return [(r["prompt"], r["response"]) for r in rows], {**summary, "reused_cache": True}

    device = next(teacher.parameters()).device
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    # Left padding so every prompt ends where generation starts.
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pairs: list[tuple[str, str]] = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="synthetic data", unit="batch", disable=not progress):
            chunk = prompts[start:start + batch_size]
            encoded = [prompt_token_ids(tokenizer, p, chat=chat) for p in chunk]
            width = max(len(e) for e in encoded)
            ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
            with torch.inference_mode():
                out = teacher.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                                       top_p=top_p, max_new_tokens=max_new_tokens, pad_token_id=pad)
            for prompt, row in zip(chunk, out[:, width:]):
                pairs.append((prompt, tokenizer.decode(row, skip_special_tokens=True)))
    finally:
        tokenizer.padding_side = side
        torch.random.set_rng_state(generator_state)

    # Written to a temp file and renamed, so an interrupted run never leaves a half cache that looks whole.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        for prompt, response in pairs:
            handle.write(json.dumps({"prompt": prompt, "response": response}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return pairs, {**summary, "reused_cache": False}


def default_prompts(texts: Sequence[str], tokenizer: Any, *, count: int, words: int = 12, seed: int = 0) -> list[str]:
    """Openings (first ``words`` words) of ``count`` texts chosen with ``seed``: prompts the teacher continues.

    Example:
        >>> default_prompts(["The cat sat on the mat and looked around."], tok, count=1, words=3)   # doctest: +SKIP
        ['The cat sat']
    """
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    prompts = [" ".join(texts[i].split()[:words]) for i in order[:count]]
    return [p for p in prompts if p]


def model_fingerprint(model: Any) -> str:
    """A cheap identity of a model's weights (shapes and a few sums), for cache keys and run folders."""
    import torch

    parts = [type(model).__name__]
    with torch.no_grad():
        params = list(model.named_parameters())
        for name, p in params[:2] + params[-2:]:
            parts.append(f"{name}:{tuple(p.shape)}:{float(p.detach().float().sum()):.6e}")
        parts.append(str(sum(p.numel() for _, p in params)))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

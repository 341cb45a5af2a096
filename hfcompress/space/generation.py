"""Side-by-side generation: variants loaded lazily within a memory budget, their outputs streamed in turn.

Example:
    >>> cache = ModelCache(budget_mb=1)
    >>> cache.get("a", lambda: "model a", estimate_bytes=10)
    'model a'
    >>> cache.keys()
    ['a']
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import HFCompressError, one_line
from ..loading import EMBEDDED_PACKAGE, load_model
from ..methods.backends import llamacpp
from .table import median_base
from .variants import Variant, VariantSet

logger = logging.getLogger(__name__)

MEMORY_ENV = "HFCOMPRESS_SPACE_MEMORY_MB"
DEFAULT_MEMORY_MB = 4096
MAX_SLOTS = 4  # side-by-side output columns


class ModelCache:
    """Loaded models kept in least-recently-used order within a memory budget (estimated bytes).

    A model is loaded on first use; before loading, the least recently used models are dropped until the new
    one's estimate fits; after loading, its real size (parameters + buffers) replaces the estimate. The model
    just requested is never dropped, even when it alone exceeds the budget.

    Example:
        >>> cache = ModelCache(budget_mb=2048)
        >>> cache.budget_bytes
        2147483648
    """

    def __init__(self, budget_mb: float = DEFAULT_MEMORY_MB) -> None:
        self.budget_bytes = int(budget_mb * 1024 * 1024)
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def used_bytes(self) -> int:
        """Bytes of all models held now."""
        return sum(size for _, size in self._items.values())

    def keys(self) -> list[str]:
        """Keys held, least recently used first."""
        return list(self._items)

    def get(self, key: str, load: Callable[[], Any], estimate_bytes: int = 0) -> Any:
        """The value for ``key``, calling ``load()`` (after making room for ``estimate_bytes``) when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            self._evict(self.budget_bytes - estimate_bytes)
            value = load()
            self._items[key] = (value, _model_bytes(value) or estimate_bytes)
            self._evict(self.budget_bytes, keep=key)
            return value

    def _evict(self, limit: int, keep: str | None = None) -> None:
        dropped = False
        while self._items and self.used_bytes > limit:
            oldest = next(iter(self._items))
            if oldest == keep:
                break
            self._items.pop(oldest)
            dropped = True
            logger.info("dropped %s from the model cache (budget %d MB)", oldest, self.budget_bytes // 2**20)
        if dropped:
            import gc

            gc.collect()  # free the dropped model's tensors now, before the next one loads


def _model_bytes(value: Any) -> int:
    if isinstance(value, _LlamaCppModel):
        return value.memory_bytes()
    model = getattr(value, "model", value)
    total = 0
    for getter in ("parameters", "buffers"):
        for tensor in getattr(model, getter, lambda: [])():
            total += tensor.numel() * tensor.element_size()
    return total


def _estimate_bytes(variant: Variant | None) -> int:
    # On CPU a model loads in float32: weights files of half or packed precision grow, so estimate 4 bytes/param.
    if variant is not None:
        params = variant.metric("parameters").get("value")
        if isinstance(params, (int, float)):
            return int(params * 4)
        if variant.folder is not None:
            return sum(p.stat().st_size for p in variant.folder.glob("*.safetensors")) * 2
    return 0


class _LlamaCppModel:
    """A GGUF variant loaded by llama.cpp for streamed generation (greedy, or sampled from the shared seed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.llm = llamacpp.load(path, context=2048)

    def stream(self, prompt: str, stats: "GenerationStats", *, max_new_tokens: int, sample: bool, temperature: float,
               top_p: float, seed: int, chat_template: bool) -> Iterator[tuple[str, "GenerationStats"]]:
        options: dict[str, Any] = dict(max_tokens=int(max_new_tokens), stream=True, seed=int(seed),
                                       temperature=float(temperature) if sample else 0.0, top_p=float(top_p) if sample else 1.0,
                                       top_k=0 if sample else 1)
        self.llm.reset()
        stats.started = time.perf_counter()
        if chat_template:
            chunks = (c["choices"][0]["delta"].get("content") or "" for c in
                      self.llm.create_chat_completion([{"role": "user", "content": prompt}], **options))
        else:
            chunks = (c["choices"][0]["text"] for c in self.llm.create_completion(prompt, **options))
        text = ""
        for chunk in chunks:
            if not chunk:
                continue
            now = time.perf_counter()
            stats.first_token = stats.first_token or now
            stats.last_token = now
            stats.tokens += 1
            text += chunk
            yield text, stats
        yield text, stats

    def memory_bytes(self) -> int:
        return self.path.stat().st_size


def _gguf_path(variant: Variant) -> Path:
    name = variant.gguf_file
    if variant.folder is not None and (variant.folder / name).is_file():
        return variant.folder / name
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(variant.repo_id, name))


def _gguf_bytes(variant: Variant) -> int:
    size = variant.metric("size_on_disk").get("value")
    return int(size * 1e6) if isinstance(size, (int, float)) else 0


@dataclass
class GenerationStats:
    """Live numbers of one streamed generation: tokens so far and their rate."""

    tokens: int = 0
    started: float = 0.0
    first_token: float | None = None
    last_token: float | None = None
    load_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate after the first token (prefill excluded), or None before two tokens."""
        if self.tokens < 2 or self.first_token is None or self.last_token is None or self.last_token <= self.first_token:
            return None
        return (self.tokens - 1) / (self.last_token - self.first_token)

    def describe(self) -> str:
        """E.g. ``32 tokens · 41.3 tokens/s · first token 85 ms``."""
        parts = [f"{self.tokens} tokens"]
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        if self.first_token is not None:
            parts.append(f"first token {1000 * (self.first_token - self.started):.0f} ms")
        if self.load_seconds >= 0.05:
            parts.append(f"loaded in {self.load_seconds:.1f} s")
        return " · ".join(parts)


class Generator:
    """Loads variants (and the base model) lazily through a ``ModelCache`` and streams their outputs.

    Example:
        >>> gen = Generator(find_variants("runs/grid"), budget_mb=4096)            # doctest: +SKIP
        >>> for outputs in gen.side_by_side("Paris is", ["gptq-4bit", gen.base_label]):   # doctest: +SKIP
        ...     pass
    """

    def __init__(self, variants: VariantSet, budget_mb: float | None = None) -> None:
        self.variants = variants
        if budget_mb is None:
            budget_mb = float(os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_MB))
        self.cache = ModelCache(budget_mb)
        # One generation at a time: parallel runs on a shared CPU would make every tokens/s number wrong.
        self._run_lock = threading.Lock()

    @property
    def base_label(self) -> str:
        """The base model's name in choices and the table."""
        return f"{self.variants.base_name} (base)"

    def choices(self) -> list[str]:
        """Names that can generate: the base model (when it can be loaded here) and variants with weights."""
        names = [self.base_label] if self._base_loadable() else []
        return names + [v.name for v in self.variants.variants if v.has_weights]

    def _base_loadable(self) -> bool:
        base = self.variants.base
        kind = base.get("kind")
        if kind == "embedded" or kind == "hub":
            return True
        return self._base_folder() is not None

    def _base_folder(self) -> str | None:
        # A folder base records its path as model_id (results.json) or path (hfcompress.json).
        base = self.variants.base
        for key in ("path", "model_id"):
            if base.get(key) and Path(str(base[key])).is_dir():
                return str(base[key])
        return None

    def load(self, name: str) -> Any:
        """The ``LoadedModel`` (model + tokenizer) of ``name``, from the cache or loaded now."""
        if name == self.base_label:
            base = self.variants.base
            kind = base.get("kind")
            if kind == "embedded":
                # The embedded GGUF package cannot be pip-installed on a Space (it needs --no-deps): there the base
                # loads from its upstream Hub repo instead, which the embedded weights were converted from.
                embedded_here = importlib.util.find_spec(EMBEDDED_PACKAGE) is not None
                target = None if embedded_here else base.get("model_id")
                revision = None
            elif kind == "hub":
                target, revision = base.get("model_id"), base.get("revision")
            else:
                target, revision = self._base_folder(), None
                if target is None:
                    raise HFCompressError(f"the base model folder {base.get('model_id')!r} is not on this machine")
            estimate = median_base(self.variants, "parameters")
            return self.cache.get(name, lambda: load_model(target, revision=revision), int((estimate or 0) * 4))
        variant = self.variants.get(name)
        if not variant.has_weights:
            raise HFCompressError(f"{name}: no weights here (only its results were bundled); load it from its Hub repo")
        if variant.gguf_file:
            # A GGUF variant runs where its users run it: llama.cpp, from the file.
            return self.cache.get(name, lambda: _LlamaCppModel(_gguf_path(variant)), _gguf_bytes(variant))
        trust = bool(((variant.manifest or {}).get("load") or {}).get("trust_remote_code"))
        return self.cache.get(name, lambda: load_model(variant.load_id, trust_remote_code=trust), _estimate_bytes(variant))

    def stream(self, name: str, prompt: str, *, max_new_tokens: int = 64, sample: bool = False, temperature: float = 0.7,
               top_p: float = 0.95, seed: int = 0, chat_template: bool = True) -> Iterator[tuple[str, GenerationStats]]:
        """Yield ``(text so far, stats)`` while ``name`` generates a continuation of ``prompt``.

        Greedy by default; with ``sample=True`` the torch seed is reset to ``seed`` before generating, so every
        variant draws from the same random stream and a rerun repeats the output.
        """
        import torch
        from transformers import TextIteratorStreamer, set_seed

        stats = GenerationStats(started=time.perf_counter())
        loaded = self.load(name)
        stats.load_seconds = time.perf_counter() - stats.started
        if isinstance(loaded, _LlamaCppModel):
            yield from loaded.stream(prompt, stats, max_new_tokens=max_new_tokens, sample=sample, temperature=temperature,
                                     top_p=top_p, seed=seed, chat_template=chat_template)
            return
        model, tokenizer = loaded.model, loaded.tokenizer
        if chat_template and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        else:
            inputs = tokenizer(prompt, return_tensors="pt")
        inputs = {k: v.to(model.device) for k, v in inputs.items()}

        class _CountingStreamer(TextIteratorStreamer):
            def put(self, value: Any) -> None:
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    now = time.perf_counter()
                    stats.first_token = stats.first_token or now
                    stats.last_token = now
                    stats.tokens += int(value.numel())
                super().put(value)

        streamer = _CountingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs: dict[str, Any] = dict(inputs, max_new_tokens=int(max_new_tokens), streamer=streamer,
                                      pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        if sample:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    set_seed(int(seed))
                    model.generate(**kwargs)
            except BaseException as err:  # reported in this variant's column, not as a crash of the page
                errors.append(err)
                streamer.end()

        stats.started = time.perf_counter()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text = ""
        for chunk in streamer:
            text += chunk
            yield text, stats
        thread.join()
        if errors:
            raise HFCompressError(f"{name}: generation failed ({one_line(errors[0])})")
        yield text, stats

    def side_by_side(self, prompt: str, names: Sequence[str], **options: Any) -> Iterator[list[tuple[str, str]]]:
        """Yield, per chosen variant, ``(status line, output text)`` while they generate one after another.

        They run in turn, not at once, so each one's tokens/s is measured on an otherwise idle CPU/GPU.
        """
        names = [n for n in names if n][:MAX_SLOTS]
        if not prompt or not prompt.strip():
            raise HFCompressError("the prompt is empty; type a prompt first")
        if not names:
            raise HFCompressError("choose at least one variant to generate with")
        slots = [["waiting…", ""] for _ in names]
        yield [tuple(s) for s in slots]
        with self._run_lock:
            for i, name in enumerate(names):
                slots[i][0] = "loading…" if name not in self.cache.keys() else "generating…"
                yield [tuple(s) for s in slots]
                try:
                    for text, stats in self.stream(name, prompt, **options):
                        slots[i] = [f"generating… {stats.describe()}", text]
                        yield [tuple(s) for s in slots]
                    slots[i][0] = f"done · {stats.describe()}"
                except HFCompressError as err:
                    slots[i] = [f"error: {err}", slots[i][1]]
                except Exception as err:  # a backend failing to load a format: say so, keep the other columns
                    slots[i] = [f"error: {name}: {one_line(err)}", slots[i][1]]
                yield [tuple(s) for s in slots]

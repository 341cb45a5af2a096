"""How a variant and its base are measured (``EvalSettings``), recorded in results.json and the reproduce command."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import HFCompressError
from .quality import DEFAULT_PROMPTS
from .tasks import TASKS, is_task_file


@dataclass
class EvalSettings:
    """How a variant and its base are measured; recorded in results.json (``settings``) and the reproduce command.

    Attributes:
        eval_data: ``"default"`` (held-out offline Wikipedia text), ``"wikitext2"``, ``"c4"`` (through datasets,
            when the Hub is reachable; skipped with the reason otherwise), a text file, a list of strings in a
            list (``[["text", ...]]``), or a list of those. The first set gives ``perplexity``; the others
            ``perplexity/<name>``.
        max_tokens, context, stride: evaluation tokens per set and the sliding window.
        speed: time prefill/decode (batch 1 and ``batch_size``), ``speed_runs`` runs after ``warmup``, prompts of
            ``prompt_tokens`` and ``new_tokens`` generated.
        generations: greedy answers to ``prompts`` (``max_new_tokens`` each), kept for the card and Space.
        lm_eval_tasks: lm-evaluation-harness tasks (e.g. ``["arc_easy"]``), needs ``hfcompress[eval]``;
            ``lm_eval_limit`` samples per task, ``lm_eval_fewshot`` shots, ``lm_eval_include_path`` a folder of
            your own task YAML files.
        interleave_speed: time the variant and its base in alternating runs, so both see the same machine
            (more runs are taken while the spread stays wide; a figure whose spread stays wide is marked unreliable).
        kl: measure the KL divergence of the variant's next-token distribution to the base's (mean, 99th percentile).
        tasks, task_items: offline task accuracies (``hfcompress.bench.tasks``: ``last_word``, ``cloze``) on that many
            items each from the held-out corpus, with standard errors; ``()`` for none. A ``.jsonl``/``.json`` path
            of prompt/response pairs is a task too (your own: the response must be the greedy continuation).

    Example:
        >>> EvalSettings.from_dict({"max_tokens": 2048, "speed_runs": 3}).max_tokens
        2048
        >>> EvalSettings.from_dict({"max_token": 2048})
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: unknown evaluation setting 'max_token'; valid: batch_size, context, eval_data, generations, interleave_speed, kl, lm_eval_fewshot, lm_eval_include_path, lm_eval_limit, lm_eval_tasks, max_new_tokens, max_tokens, new_tokens, prompt_tokens, prompts, speed, speed_runs, stride, task_items, tasks, warmup
    """

    eval_data: Any = "default"
    max_tokens: int = 4096
    context: int = 512
    stride: int = 256
    speed: bool = True
    generations: bool = True
    lm_eval_tasks: Sequence[str] = ()
    lm_eval_limit: int | float | None = None
    lm_eval_fewshot: int | None = None
    lm_eval_include_path: str | None = None
    prompts: Sequence[str] = DEFAULT_PROMPTS
    max_new_tokens: int = 32
    speed_runs: int = 5
    warmup: int = 1
    prompt_tokens: int = 128
    new_tokens: int = 32
    batch_size: int = 8
    interleave_speed: bool = True
    kl: bool = True
    tasks: Sequence[str] = ("last_word", "cloze")
    task_items: int = 100

    def __post_init__(self) -> None:
        self.lm_eval_tasks = [t for t in (self.lm_eval_tasks or []) if t]
        self.tasks = list(self.tasks or [])
        self.tasks = [os.fspath(t) if isinstance(t, os.PathLike) else t for t in self.tasks]
        unknown = [t for t in self.tasks if t not in TASKS and not is_task_file(t)]
        if unknown:
            raise HFCompressError(f"unknown task {unknown[0]!r}; offline tasks: {', '.join(TASKS)} or a prompt/response "
                                  ".jsonl file (lm-eval tasks go in lm_eval_tasks)")
        missing = [t for t in self.tasks if is_task_file(t) and not os.path.isfile(t)]
        if missing:
            raise HFCompressError(f"task file {missing[0]!r} not found; give the path of a prompt/response .jsonl file")
        self.prompts = list(self.prompts)
        if self.lm_eval_include_path is not None:
            self.lm_eval_include_path = str(self.lm_eval_include_path)
        for name in ("max_tokens", "context", "stride", "speed_runs", "prompt_tokens", "new_tokens", "batch_size", "max_new_tokens", "task_items"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise HFCompressError(f"{name}={value!r} must be an integer")
        if self.max_tokens < 2:
            raise HFCompressError(f"max_tokens={self.max_tokens} is too small; use at least 2 (e.g. 4096)")
        if not (0 < self.stride <= self.context):
            raise HFCompressError(f"need 0 < stride <= context, got stride={self.stride}, context={self.context}; e.g. context=512, stride=256")
        if self.speed and (self.speed_runs < 1 or self.prompt_tokens < 1 or self.new_tokens < 1 or self.batch_size < 1):
            raise HFCompressError("speed_runs, prompt_tokens, new_tokens and batch_size must be positive integers")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise HFCompressError(f"warmup={self.warmup!r} must be 0 or a positive integer")
        if not self.data_sets():
            raise HFCompressError("eval_data is empty; use 'default', 'wikitext2', 'c4' or a text file")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "EvalSettings":
        """Settings from a mapping (a grid's ``evaluate:``, CLI flags); an unknown key is a one-line error."""
        data = dict(data or {})
        names = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise HFCompressError(f"unknown evaluation setting {', '.join(map(repr, unknown))}; valid: {', '.join(names)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "EvalSettings":
        """A copy with ``changes`` applied (unknown names are a one-line error)."""
        return EvalSettings.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a plain dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def data_sets(self) -> list[Any]:
        """The evaluation sets: ``eval_data`` as a list."""
        data = self.eval_data
        return [data] if isinstance(data, (str, os.PathLike)) or data is None else list(data)

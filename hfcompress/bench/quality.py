"""Quality beyond perplexity: fixed-prompt greedy generations and lm-evaluation-harness tasks.

lm-evaluation-harness (``pip install 'hfcompress[eval]'``) is what the Open LLM Leaderboard runs; we hand
it the model already in memory (``HFLM(pretrained=model)``) so a compressed model is scored exactly as it
was evaluated for perplexity, and keep its metric names, directions and standard errors.

Example:
    >>> from hfcompress.bench.quality import greedy_generations
    >>> greedy_generations(model, tok, ["The capital of France is"], max_new_tokens=8)   # doctest: +SKIP
    [' Paris. It is the largest city']
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Sequence

from ..errors import HFCompressError

logger = logging.getLogger(__name__)

# Short prompts that show fluency, facts and instruction following; kept in results.json for the card and Space.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Explain in one sentence why the sky is blue.",
    "Write a short poem about the sea.",
)


def _encode_prompt(tokenizer: Any, prompt: str) -> Any:
    # Instruct models answer their chat format; base models continue plain text.
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        return tokenizer(text, return_tensors="pt", add_special_tokens=False)
    return tokenizer(prompt, return_tensors="pt")


def greedy_generations(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 32) -> list[str]:
    """Greedy continuations (new text only) of each prompt, in the chat format when the tokenizer has one.

    Example:
        >>> greedy_generations(model, tok, ["Hello"], max_new_tokens=4)           # doctest: +SKIP
        ['Hello! How can']
    """
    import torch

    device = next(model.parameters()).device
    outputs = []
    for prompt in prompts:
        encoded = _encode_prompt(tokenizer, prompt).to(device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        new = generated[0, encoded["input_ids"].shape[1]:]
        outputs.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    return outputs


def lm_eval_available() -> bool:
    """Whether lm-evaluation-harness is installed."""
    return importlib.util.find_spec("lm_eval") is not None


def check_lm_eval(tasks: Sequence[str] | None) -> None:
    """Fail early, before any model work, when tasks are asked for and lm-eval is missing."""
    if tasks and not lm_eval_available():
        raise HFCompressError("lm-evaluation-harness tasks need lm-eval: pip install 'hfcompress[eval]' (or pip install lm-eval)")


def lm_eval_metrics(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    *,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 1,
    seed: int = 0,
    include_path: str | None = None,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Run lm-evaluation-harness tasks on the in-memory model.

    Returns (metrics, skipped): metrics are named ``lm_eval/<task>/<metric>`` with ``value``, ``stderr``,
    ``higher_is_better`` and the settings; tasks that could not run (e.g. their dataset is not reachable
    offline) are listed in ``skipped`` with the reason instead of failing the whole benchmark.
    ``include_path`` is a folder of your own lm-eval task YAML files (e.g. a task over a local JSONL file).

    Example:
        >>> metrics, skipped = lm_eval_metrics(model, tok, ["arc_easy"], limit=100)   # doctest: +SKIP
    """
    check_lm_eval(tasks)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    device = str(next(model.parameters()).device)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    task_manager = None
    if include_path:
        from lm_eval.tasks import TaskManager

        task_manager = TaskManager(include_path=str(include_path))
    metrics: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []
    for task in tasks:
        # One task at a time: an unreachable dataset skips that task only.
        try:
            out = simple_evaluate(
                model=lm, tasks=[task], limit=limit, num_fewshot=num_fewshot, log_samples=False, task_manager=task_manager,
                random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
            )
        except Exception as err:  # datasets/network/task-config errors come in many types
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            logger.warning("lm-eval task %s skipped: %s", task, first)
            skipped.append({"metric": f"lm_eval/{task}", "reason": f"{type(err).__name__}: {first}"})
            continue
        if not out:
            continue
        directions = out.get("higher_is_better", {})
        n_samples = out.get("n-samples", {})
        for task_name, values in out.get("results", {}).items():
            for key, value in values.items():
                if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                    continue
                metric, filt = key.split(",", 1)
                stderr = values.get(f"{metric}_stderr,{filt}")
                name = f"lm_eval/{task_name}/{metric}" + ("" if filt == "none" else f"/{filt}")
                metrics[name] = {
                    "value": float(value),
                    "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
                    "unit": "fraction" if metric.startswith(("acc", "exact_match", "mc")) else "score",
                    "higher_is_better": bool(directions.get(task_name, {}).get(metric, True)),
                    "num_fewshot": num_fewshot,
                    "limit": limit,
                    "samples": (n_samples.get(task_name) or {}).get("effective"),
                }
    return metrics, skipped

"""What the command groups share: the command registry and the argument groups several commands take."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import HFCompressError
from ..logs import LOG_FILE_NAME, backend_logs

COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int | None]], Callable[[argparse.Namespace], int | None]]:
    """Register the function that runs ``hfcompress NAME``."""

    def wrap(fn: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int | None]:
        COMMANDS[name] = fn
        return fn

    return wrap


@contextlib.contextmanager
def backend_log(args: argparse.Namespace, runs_folder: str | os.PathLike | None = None) -> Iterator[Path]:
    """Run a command's work with the backends' logs in a file (``-v`` shows them too), and say where it is.

    A runs folder keeps its own ``hfcompress.log``; other commands write one per run under
    ``$HFCOMPRESS_LOG_DIR`` (default ``~/.cache/hfcompress/logs``).
    """
    if runs_folder is not None:
        path = Path(runs_folder) / LOG_FILE_NAME
    else:
        folder = Path(os.environ.get("HFCOMPRESS_LOG_DIR") or Path.home() / ".cache" / "hfcompress" / "logs")
        path = folder / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    with backend_logs(path, verbose=args.verbose) as log:
        yield log
    if not args.verbose:
        print(f"backend logs: {log}", file=sys.stderr)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help="Hub id, local folder or .gguf file (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom modeling code from the model repo")


def add_calibration_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", default="default", help="'default' (offline English text), a text file, or a datasets id")
    p.add_argument("--num-samples", type=int, default=128, help="calibration samples (default 128)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per calibration sample (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-data", default=None, help="comma-separated evaluation sets: default, wikitext2, c4, a text file (default: default)")
    p.add_argument("--max-tokens", type=int, default=None, help="evaluation tokens per set (default 4096)")
    p.add_argument("--context", type=int, default=None, help="sliding-window context in tokens (default 512)")
    p.add_argument("--stride", type=int, default=None, help="sliding-window stride in tokens (default 256)")
    p.add_argument("--no-speed", action="store_true", help="skip the prefill/decode timing")
    p.add_argument("--no-generations", action="store_true", help="skip the fixed-prompt generations")
    p.add_argument("--speed-runs", type=int, default=None, help="timed runs per speed number, after one warm-up (default 5)")
    p.add_argument("--offline-tasks", default=None,
                   help="offline task accuracies, comma-separated: last_word, cloze (default both), a prompt/response .jsonl file (your task), or 'none'")
    p.add_argument("--task-items", type=int, default=None, help="items per offline task (default 100)")
    p.add_argument("--tasks", default=None, help="lm-evaluation-harness tasks, comma-separated (e.g. arc_easy,hellaswag; needs hfcompress[eval])")
    p.add_argument("--limit", type=float, default=None, help="lm-eval samples per task (an integer, or a fraction < 1)")
    p.add_argument("--num-fewshot", type=int, default=None, help="lm-eval few-shot examples")


def eval_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``EvalSettings`` fields the evaluation flags set (unset flags keep the defaults)."""
    kw: dict[str, Any] = {}
    if args.eval_data:
        kw["eval_data"] = [s.strip() for s in args.eval_data.split(",") if s.strip()]
    if args.offline_tasks is not None:
        kw["tasks"] = [t.strip() for t in args.offline_tasks.split(",") if t.strip() and t.strip() != "none"]
    for name in ("max_tokens", "context", "stride", "speed_runs", "task_items"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.no_speed:
        kw["speed"] = False
    if args.no_generations:
        kw["generations"] = False
    if args.tasks:
        kw["lm_eval_tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.limit is not None:
        kw["lm_eval_limit"] = int(args.limit) if args.limit >= 1 else args.limit
    if args.num_fewshot is not None:
        kw["lm_eval_fewshot"] = args.num_fewshot
    return kw


def names_list(text: str | None) -> list[str] | None:
    """``--only a,b`` as a list (None when not given)."""
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def parse_group_size(value: str) -> Any:
    """``--group-size``: an integer, ``auto``, or ``channel``/``none``/``-1`` for one scale per output channel."""
    if value == "auto":
        return "auto"
    if value.lower() in ("none", "channel", "-1"):
        return None
    try:
        return int(value)
    except ValueError:
        raise HFCompressError(f"--group-size {value!r} is not valid; use an integer, 'auto' or 'channel'") from None

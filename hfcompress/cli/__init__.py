"""The ``hfcompress`` command: compress, distill, bench, grid, demo, card, push, push-grid, space, push-space.

Every failure the user can fix prints one line (``hfcompress: error: ...``) and exits 2; nothing prints a
token. Each command group (``compress``, ``evaluate``, ``publish``, ``space``) parses its arguments and calls
the public Python API.

Example:
    >>> main(["compress", "-o", "/tmp/x", "--method", "no-such-method"])
    2
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from .._version import __version__
from ..errors import HFCompressError
from . import compress, evaluate, publish, space
from ._common import COMMANDS, backend_log


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hfcompress`` command (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="hfcompress",
        description="Compress Hugging Face causal LMs, benchmark them against their base, and publish them to the Hub.",
    )
    parser.add_argument("--version", action="version", version=f"hfcompress {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show backend logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (compress.add_compress_parser, space.add_space_parser, space.add_push_space_parser, compress.add_distill_parser,
                publish.add_card_parser, publish.add_push_parser, publish.add_push_grid_parser, evaluate.add_bench_parser,
                evaluate.add_grid_parser, evaluate.add_demo_parser):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hfcompress`` command; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_backends()
    try:
        if args.command in _LOGGED_COMMANDS:
            runs_folder = args.output if _LOGGED_COMMANDS[args.command] else None
            with backend_log(args, runs_folder):
                return int(COMMANDS[args.command](args) or 0)
        return int(COMMANDS[args.command](args) or 0)
    except HFCompressError as err:
        print(f"hfcompress: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        # An optional extra is not installed (gradio for the Space, lm-eval, a legacy backend).
        extra = _EXTRA_OF_MODULE.get((err.name or "").split(".")[0])
        hint = f"pip install 'hfcompress[{extra}]'" if extra else f"pip install {err.name}"
        print(f"hfcompress: error: {args.command} needs the {err.name!r} package: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hfcompress: interrupted; finished outputs are kept, partial ones were discarded", file=sys.stderr)
        return 130


# Commands that drive backends, whose logs go to a file: True = into the runs folder (-o), False = the cache's logs.
_LOGGED_COMMANDS = {"compress": False, "distill": False, "grid": True, "demo": True}

_EXTRA_OF_MODULE = {"gradio": "space", "gradio_client": "space", "plotly": "space", "lm_eval": "eval", "gptqmodel": "gptq",
                    "optimum": "gptq", "auto_gptq": "legacy", "awq": "legacy"}


def _quiet_backends() -> None:
    # llm-compressor logs every module at INFO through loguru; keep the terminal to our progress bars. A failure
    # reaches the user as our one line, not as the retry warnings huggingface_hub logs on the way.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        from loguru import logger as loguru_logger

        loguru_logger.remove()
        loguru_logger.add(sys.stderr, level="WARNING")
    except ImportError:
        pass

"""``hfcompress bench``, ``grid`` and ``demo``: measure saved variants, run grids of recipes, the offline demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..artifacts import read_results_json
from ..bench import EvalSettings, evaluate, load_subject, write_results
from ..demo import run_demo
from ..environment import show_progress
from ..errors import HFCompressError
from ..grid import run_grid
from ..publish import rewrite_model_card
from ._common import add_eval_args, command, eval_options, names_list


def add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark saved variants against their base model and update their results.json")
    p.add_argument("models", nargs="+", metavar="DIR_OR_ID", help="saved variant folders (or any model folder / Hub id)")
    p.add_argument("--base", default=None, help="base model to compare with (default: the variant's recorded base; none for other models)")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json and the card as they are")
    add_eval_args(p)


@command("bench")
def _cmd_bench(args: argparse.Namespace) -> int:
    settings = EvalSettings.from_dict(eval_options(args))
    cache: dict[str, Any] = {}
    for where in args.models:
        # A variant of ours is compared with its recorded base; any other model with --base only.
        subject = load_subject(where)
        if subject.folder is not None:
            try:
                read_results_json(subject.folder)
            except HFCompressError as err:
                # Derived data: measuring again is the fix, so a damaged results.json counts as absent.
                what = str(err).split("; re-run")[0]
                print(f"hfcompress: warning: {what}; measuring anew" + ("" if args.no_write else " and writing a fresh one"),
                      file=sys.stderr)
        base = args.base or bool(subject.manifest)
        name = subject.folder.name if subject.folder else str(where).rstrip("/").split("/")[-1]
        result = evaluate(subject, settings, base=base, base_cache=cache, name=name, progress=show_progress())
        print(f"\n== {result.name}")
        print(result.table())
        if subject.manifest and subject.folder is not None and not args.no_write:
            written = write_results(subject.folder, result.to_dict())
            print(f"wrote {written}")
            try:
                rewrite_model_card(subject.folder)
            except HFCompressError as err:  # the card is derived data; the measured results are already safe
                print(f"hfcompress: warning: the card of {subject.folder} was not refreshed: {err}", file=sys.stderr)
    return 0


def add_grid_parser(sub: Any) -> None:
    p = sub.add_parser("grid", help="run named recipes (a grid YAML) over one base model, compare them; resumes")
    p.add_argument("grid", help="grid YAML: variants: {name: [steps]}, optional model/num_samples/evaluate settings")
    p.add_argument("model", nargs="?", default=None, help="base model: Hub id or folder (default: the grid's model:, else the embedded SmolLM2)")
    p.add_argument("-o", "--output", default=None, help="runs folder (default runs/<model name>); finished variants in it are kept")
    p.add_argument("--only", default=None, help="comma-separated variant names to run")
    p.add_argument("--calibration", default=None, help="calibration text: 'default', a text file or a datasets id")
    p.add_argument("--num-samples", type=int, default=None, help="calibration samples (default: the grid's, else 128)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per calibration sample (default: the grid's, else 512)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the grid's, else 0)")
    p.add_argument("--backend", default=None, help="adapter name, or 'auto'")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one variant after another here (default); ray: each variant a Ray task (pip install 'hfcompress[ray]')")
    p.add_argument("--address", default=None,
                   help="with --executor ray: the cluster ('auto', 'ray://head:10001', 'head:6379'); default: a local Ray for this run")
    p.add_argument("--cpus-per-variant", type=float, default=1, help="with --executor ray: CPUs (torch threads) each variant's task asks for (default 1)")
    add_eval_args(p)


def _print_grid(out: Any) -> None:
    print()
    print(out.table())
    if "tradeoffs" in out.files:
        print(Path(out.files["tradeoffs"]).read_text(encoding="utf-8"))
    for key in ("markdown", "csv", "tradeoffs", "size_plot", "speed_plot"):
        if key in out.files:
            print(f"{key:>10}: {out.files[key]}")
    print(f"variants in {out.output_dir}: {len(out.computed)} computed, {len(out.resumed)} kept from before, "
          f"{len(out.skipped)} skipped, {len(out.failed)} failed; {out.seconds / 60:.1f} min")


@command("grid")
def _cmd_grid(args: argparse.Namespace) -> int:
    only = names_list(args.only)
    out = run_grid(args.grid, args.model, args.output, calibration=args.calibration, num_samples=args.num_samples,
                   seq_len=args.seq_len, seed=args.seed, backend=args.backend, evaluate_kwargs=eval_options(args), only=only,
                   executor=args.executor, address=args.address, cpus_per_variant=args.cpus_per_variant)
    _print_grid(out)
    return 1 if out.failed else 0


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="offline demo: compress the embedded SmolLM2 with every available method and compare")
    p.add_argument("-o", "--output", default="runs/demo", help="runs folder (default runs/demo); rerun to resume")
    p.add_argument("--only", default=None, help="comma-separated variant names to run (default: all)")
    # Test-only: the demo on another base model (a tiny folder), so its command can be tested in seconds.
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    add_eval_args(p)


@command("demo")
def _cmd_demo(args: argparse.Namespace) -> int:
    only = names_list(args.only)
    out = run_demo(args.output, only=only, model=args.model, evaluate_kwargs=eval_options(args))
    _print_grid(out)
    return 1 if out.failed else 0

"""The ``hfcompress`` command: compress, bench, grid, demo, distill, card, push, push-grid, space, push-space.

Every failure the user can fix prints one line (``hfcompress: error: ...``) and exits 2; nothing prints a
token. Each subcommand parses its arguments here and calls the public Python API.

Example:
    $ hfcompress compress HuggingFaceTB/SmolLM2-135M --method gptq --bits 4 --group-size 64 -o out/gptq
    $ hfcompress compress --recipe recipe.yaml -o out/variant        # embedded default model
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import HFCompressError

_COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {}


def _command(name: str):
    def wrap(fn: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int | None]:
        _COMMANDS[name] = fn
        return fn

    return wrap


# ----------------------------------------------------------------------------------------------------------
# compress


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help="Hub id, local folder or .gguf file (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom modeling code from the model repo")


def _add_calibration_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", default="default", help="'default' (offline English text), a text file, or a datasets id")
    p.add_argument("--num-samples", type=int, default=128, help="calibration samples (default 128)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per calibration sample (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _recipe_from_args(args: argparse.Namespace) -> list[Any]:
    from .config import CompressionConfig, config_kinds, load_recipe

    if args.recipe and args.method:
        raise HFCompressError("pass either --recipe FILE or --method, not both")
    if args.recipe:
        return load_recipe(args.recipe)
    if not args.method:
        raise HFCompressError("nothing to do: pass --method (e.g. --method gptq) or --recipe recipe.yaml")
    options: dict[str, Any] = {"kind": _METHOD_ALIASES.get(args.method, args.method)}
    if options["kind"] not in config_kinds():
        raise HFCompressError(f"unknown --method {args.method!r}; use one of {', '.join(_CLI_METHODS)}")
    if options["kind"] == "prune" and args.method != "prune":  # plain "prune" keeps PruneConfig's default (wanda)
        options["method"] = args.method
    for name in _METHOD_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = _parse_group_size(value) if name == "group_size" else value
    return [CompressionConfig.from_dict(options)]


# CLI --method names that map onto a config kind (pruning methods are options of PruneConfig).
_METHOD_ALIASES = {"magnitude": "prune", "wanda": "prune", "sparsegpt": "prune", "structured": "structured_prune", "lowrank": "low_rank", "svd": "low_rank"}
_CLI_METHODS = ("rtn", "gptq", "awq", "magnitude", "wanda", "sparsegpt", "structured", "lowrank")
_METHOD_OPTIONS = ("bits", "group_size", "symmetric", "sparsity", "pattern", "target", "ratio", "importance", "rank", "energy")


def _parse_group_size(value: str) -> Any:
    if value in ("auto",):
        return "auto"
    if value.lower() in ("none", "channel", "-1"):
        return None
    try:
        return int(value)
    except ValueError:
        raise HFCompressError(f"--group-size {value!r} is not valid; use an integer, 'auto' or 'channel'") from None


def _add_compress_parser(sub: Any) -> None:
    p = sub.add_parser("compress", help="compress a model with one method or a recipe and save the variant")
    _add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--recipe", help="recipe YAML file (a list of steps)")
    p.add_argument("--method", help="rtn, gptq, awq, magnitude, wanda, sparsegpt, structured, lowrank")
    p.add_argument("--bits", type=int, help="weight bits (quantization)")
    p.add_argument("--group-size", dest="group_size", help="weights per scale: an integer, 'auto' or 'channel'")
    p.add_argument("--symmetric", action="store_true", default=None, help="symmetric quantization (default asymmetric)")
    p.add_argument("--sparsity", type=float, help="fraction of weights pruned")
    p.add_argument("--pattern", help="'unstructured' or N:M such as 2:4")
    p.add_argument("--target", help="structured pruning target: heads, neurons or layers")
    p.add_argument("--ratio", type=float, help="structured pruning ratio")
    p.add_argument("--importance", help="structured pruning importance: magnitude or activation")
    p.add_argument("--rank", type=float, help="low-rank: kept rank (integer) or fraction")
    p.add_argument("--energy", type=float, help="low-rank: fraction of singular-value energy kept")
    p.add_argument("--backend", default="auto", help="adapter name, or 'auto' (default)")
    p.add_argument("--evaluate", action="store_true", help="benchmark against the base model and write results.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    _add_calibration_args(p)


@_command("compress")
def _cmd_compress(args: argparse.Namespace) -> int:
    from .api import CompressedModel
    from .atomic import check_output_dir

    check_output_dir(args.output, args.overwrite)  # fail before minutes of work
    if getattr(args, "rank", None) is not None and float(args.rank).is_integer():
        args.rank = int(args.rank)
    recipe = _recipe_from_args(args)
    cm = CompressedModel.from_pretrained(
        args.model,
        recipe=recipe,
        calibration=args.calibration,
        backend=args.backend,
        revision=args.revision,
        num_samples=args.num_samples,
        seq_len=args.seq_len,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
    )
    return _evaluate_and_save(cm, args)


def _evaluate_and_save(cm: Any, args: argparse.Namespace) -> int:
    # The end of `compress` and `distill`: measure if asked (results.json then lands in the folder), save.
    if args.evaluate:
        cm.evaluate(name=Path(args.output).name)
    out = cm.save_pretrained(args.output, overwrite=args.overwrite)
    print(f"saved {cm!r} to {out}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# space, push-space


def _add_space_parser(sub: Any) -> None:
    p = sub.add_parser("space", help="run the comparison app (Gradio) on a runs folder or a Hub collection")
    p.add_argument("source", nargs="?", default=None, help="runs folder of saved variants, one variant folder, or a Hub collection id (default: ./runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 to share on the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--memory-mb", type=float, default=None, help="memory budget for loaded models in MB (default $HFCOMPRESS_SPACE_MEMORY_MB or 4096)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")


@_command("space")
def _cmd_space(args: argparse.Namespace) -> int:
    from .space import serve

    serve(args.source, host=args.host, port=args.port, memory_mb=args.memory_mb, share=args.share)
    return 0


def _add_push_space_parser(sub: Any) -> None:
    p = sub.add_parser("push-space", help="deploy the comparison app to a Hub Space wired to a collection or bundled results")
    p.add_argument("repo_id", help="Space id, e.g. me/compare-smollm2")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--results", help="runs folder: each variant's results.json, hfcompress.json, README.md, recipe.yaml are bundled (no weights)")
    where.add_argument("--collection", help="Hub collection id whose model repos the Space reads at start")
    p.add_argument("--title", default=None, help="Space title (default: Compare <base> variants)")
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.add_argument("--requirement", default=None, help="pip spec that installs hfcompress in the Space (default: hfcompress[space])")
    p.add_argument("--variants-on", default=None, metavar="NAMESPACE",
                   help="with --results: where push-grid published the variants (same NAMESPACE or prefix), so the Space "
                        "loads their weights from those repos for side-by-side generation")


@_command("push-space")
def _cmd_push_space(args: argparse.Namespace) -> int:
    from .space import push_space

    url = push_space(args.repo_id, results=args.results, collection=args.collection, private=args.private,
                     title=args.title, requirement=args.requirement, variants_on=args.variants_on)
    print(f"deployed the comparison Space to {url}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# distill


# CLI flag -> DistillConfig field, for options passed through unchanged when given.
_DISTILL_OPTIONS = {
    "teacher": "teacher", "alpha": "alpha", "temperature": "temperature", "loss": "loss", "jsd_beta": "jsd_beta",
    "steps": "steps", "lr": "learning_rate", "batch_size": "batch_size", "grad_accum": "gradient_accumulation_steps",
    "train_seq_len": "seq_len", "data": "data", "prompts": "prompts", "num_synthetic": "num_synthetic",
    "max_new_tokens": "max_new_tokens", "warmup": "warmup", "eval_every": "eval_every", "eval_tokens": "eval_tokens",
    "save_every": "save_every", "run_dir": "run_dir",
}


def _add_distill_parser(sub: Any) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a teacher into a student (the model, a pruned or smaller copy of it, or another model) and save it",
        description="Knowledge distillation: loss = alpha * CE + (1 - alpha) * T^2 * KL(teacher || student). "
        "Example: hfcompress distill --prune-neurons 0.25 --steps 300 -o out/pruned-distilled",
    )
    _add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--teacher", help="teacher model id or folder (default: the model given above, before any pruning)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--student", help="student model id or folder, or 'self' (default: the model, after --prune-neurons)")
    who.add_argument("--student-layers", type=int, help="student keeps this many evenly spaced decoder layers of the model")
    p.add_argument("--student-intermediate", type=int, help="student keeps this many MLP neurons per layer (largest weights)")
    p.add_argument("--prune-neurons", type=float, help="first remove this fraction of MLP neurons (structured pruning), then distil to recover")
    p.add_argument("--alpha", type=float, help="weight of the next-token cross-entropy (default 0.5)")
    p.add_argument("--temperature", type=float, help="softmax temperature of the soft targets (default 2.0)")
    p.add_argument("--loss", choices=("forward_kl", "reverse_kl", "jsd"), help="divergence (default forward_kl)")
    p.add_argument("--jsd-beta", type=float, help="teacher weight of the JSD mixture (default 0.5)")
    p.add_argument("--steps", type=int, help="optimizer steps (default 200)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 5e-5; warm-up then cosine)")
    p.add_argument("--batch-size", type=int, help="sequences per micro-batch (default 4)")
    p.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--seq-len", dest="train_seq_len", type=int, help="tokens per training sequence (default 256)")
    p.add_argument("--data", help="training text: a file (.txt, .jsonl of text or prompt/response), a datasets id, or 'synthetic' (default: calibration text)")
    p.add_argument("--task-specific", action="store_true", help="train only on the responses of prompt/response pairs")
    p.add_argument("--prompts", help="prompts the teacher answers for --data synthetic (file or datasets id)")
    p.add_argument("--num-synthetic", type=int, help="synthetic examples the teacher writes (default 256)")
    p.add_argument("--max-new-tokens", type=int, help="tokens per synthetic example (default 128)")
    p.add_argument("--warmup", type=float, help="warm-up: fraction of steps (< 1) or steps (default 0.05)")
    p.add_argument("--freeze-embeddings", action="store_true", help="keep token embeddings (and a tied lm_head) fixed")
    p.add_argument("--eval-every", type=int, help="evaluate perplexity and agreement every N steps (default 50, 0 = off)")
    p.add_argument("--eval-tokens", type=int, help="held-out tokens per evaluation (default 2048)")
    p.add_argument("--save-every", type=int, help="checkpoint every N steps (default 100)")
    p.add_argument("--run-dir", help="checkpoint folder, kept; rerun with the same folder to resume (default: cache, removed at the end)")
    p.add_argument("--no-resume", action="store_true", help="start over even if the run folder holds a checkpoint")
    p.add_argument("--calibration", default="default", help="calibration text for pruning and default training text")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--evaluate", action="store_true", help="benchmark against the base model and write results.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")


@_command("distill")
def _cmd_distill(args: argparse.Namespace) -> int:
    from .api import CompressedModel
    from .atomic import check_output_dir
    from .config import DistillConfig, StructuredPruneConfig

    check_output_dir(args.output, args.overwrite)  # fail before minutes of work
    options: dict[str, Any] = {field: getattr(args, flag) for flag, field in _DISTILL_OPTIONS.items() if getattr(args, flag) is not None}
    if args.student is not None:
        options["student"] = args.student
    overrides = {k: v for k, v in (("num_hidden_layers", args.student_layers), ("intermediate_size", args.student_intermediate)) if v is not None}
    if overrides:
        if args.student is not None:
            raise HFCompressError("--student-intermediate shapes a student copied from the model; drop --student or it")
        options["student"] = overrides
    if args.warmup is not None and float(args.warmup).is_integer() and args.warmup >= 1:
        options["warmup"] = int(args.warmup)
    options.update(task_specific=args.task_specific, freeze_embeddings=args.freeze_embeddings, resume=not args.no_resume, seed=args.seed)
    recipe: list[Any] = []
    if args.prune_neurons is not None:
        recipe.append(StructuredPruneConfig(target="neurons", ratio=args.prune_neurons))
    recipe.append(DistillConfig(**options))
    cm = CompressedModel.from_pretrained(
        args.model, recipe=recipe, calibration=args.calibration, revision=args.revision, seed=args.seed,
        trust_remote_code=args.trust_remote_code,
    )
    info = cm.steps[-1].info
    before, after = info.get("eval_before", {}), info.get("eval_after", {})
    if before and after:
        print(f"student perplexity {before['perplexity']:.2f} -> {after['perplexity']:.2f}, "
              f"agreement with teacher {before['agreement']:.3f} -> {after['agreement']:.3f} "
              f"({info['global_step']} steps, {info['train_seconds']:.0f} s)")
    return _evaluate_and_save(cm, args)


# ----------------------------------------------------------------------------------------------------------
# card, push, push-grid


def _add_card_parser(sub: Any) -> None:
    p = sub.add_parser("card", help="rewrite the model card (README.md) of a saved variant from its hfcompress.json and results.json")
    p.add_argument("folder", help="variant folder saved by hfcompress")
    p.add_argument("--template", help="your own Jinja card template (default: hfcompress's modelcard.md.j2)")
    p.add_argument("--repo-id", help="repo id to show in the load snippets (default: a placeholder path)")
    p.add_argument("--base-model", help="Hub id of the base model when the variant was made from a local folder")
    p.add_argument("--quantized-by", help="name to credit in the card's quantized_by field (default $HFCOMPRESS_QUANTIZED_BY)")


@_command("card")
def _cmd_card(args: argparse.Namespace) -> int:
    from .card import rewrite_model_card

    path = rewrite_model_card(args.folder, template=args.template, repo_id=args.repo_id, base_model=args.base_model,
                              quantized_by=args.quantized_by)
    print(f"wrote {path}")
    return 0


def _add_push_parser(sub: Any) -> None:
    p = sub.add_parser("push", help="upload a saved variant to a Hub model repo in one commit (token: HF_TOKEN or `hf auth login`)")
    p.add_argument("folder", help="variant folder saved by hfcompress")
    p.add_argument("repo_id", help="target repo, e.g. me/SmolLM2-135M-Instruct-GPTQ-4bit (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    p.add_argument("--revision", help="branch to commit to (created from main if missing)")
    p.add_argument("--message", help="commit message (default: 'Add <name> (hfcompress <version>)')")
    p.add_argument("--template", help="re-render the card with this Jinja template before uploading")
    p.add_argument("--quantized-by", help="name to credit in the card's quantized_by field")


@_command("push")
def _cmd_push(args: argparse.Namespace) -> int:
    from .hub import push_folder

    info = push_folder(args.folder, args.repo_id, private=args.private, create_pr=args.create_pr, revision=args.revision,
                       commit_message=args.message, template=args.template, quantized_by=args.quantized_by)
    where = getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or str(info)
    print(f"pushed {args.folder} to {args.repo_id}: {where}")
    return 0


def _add_push_grid_parser(sub: Any) -> None:
    p = sub.add_parser("push-grid", help="publish every variant of a grid run, one repo each, grouped in a collection")
    p.add_argument("runs_dir", help="runs folder of a grid (subfolders holding hfcompress.json)")
    p.add_argument("namespace", help="user or org ('me' -> me/<base>-<variant>), or a repo prefix such as me/SmolLM2-")
    p.add_argument("--private", action="store_true", help="create the repos and the collection private")
    p.add_argument("--create-pr", action="store_true", help="open pull requests instead of committing to main")
    p.add_argument("--no-collection", action="store_true", help="do not create or update a collection")
    p.add_argument("--collection-title", help="collection title (default: '<base> compressed variants')")
    p.add_argument("--template", help="render the cards with this Jinja template")
    p.add_argument("--quantized-by", help="name to credit in the cards' quantized_by field")


@_command("push-grid")
def _cmd_push_grid(args: argparse.Namespace) -> int:
    from .hub import push_grid

    out = push_grid(args.runs_dir, args.namespace, private=args.private, create_pr=args.create_pr,
                    collection=not args.no_collection, collection_title=args.collection_title, template=args.template,
                    quantized_by=args.quantized_by)
    for folder, repo_id in out.repos.items():
        print(f"pushed {folder} to {repo_id}")
    if out.collection_url:
        print(f"collection: {out.collection_url}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# bench, grid, demo (benchmarks and grids: hfcompress.bench, hfcompress.grid, hfcompress.demo)


def _add_eval_args(p: argparse.ArgumentParser, *, defaults: dict[str, Any] | None = None) -> None:
    d = {"max_tokens": 4096, "speed_runs": 5, **(defaults or {})}
    p.add_argument("--eval-data", default=None, help="comma-separated evaluation sets: default, wikitext2, c4, a text file (default: default)")
    p.add_argument("--max-tokens", type=int, default=None, help=f"evaluation tokens per set (default {d['max_tokens']})")
    p.add_argument("--context", type=int, default=None, help="sliding-window context in tokens (default 512)")
    p.add_argument("--stride", type=int, default=None, help="sliding-window stride in tokens (default 256)")
    p.add_argument("--no-speed", action="store_true", help="skip the prefill/decode timing")
    p.add_argument("--no-generations", action="store_true", help="skip the fixed-prompt generations")
    p.add_argument("--speed-runs", type=int, default=None, help=f"timed runs per speed number, after one warm-up (default {d['speed_runs']})")
    p.add_argument("--tasks", default=None, help="lm-evaluation-harness tasks, comma-separated (e.g. arc_easy,hellaswag; needs hfcompress[eval])")
    p.add_argument("--limit", type=float, default=None, help="lm-eval samples per task (an integer, or a fraction < 1)")
    p.add_argument("--num-fewshot", type=int, default=None, help="lm-eval few-shot examples")


def _eval_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if args.eval_data:
        kw["eval_data"] = [s.strip() for s in args.eval_data.split(",") if s.strip()]
    for name in ("max_tokens", "context", "stride", "speed_runs"):
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


def _add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark saved variants against their base model and update their results.json")
    p.add_argument("models", nargs="+", metavar="DIR_OR_ID", help="saved variant folders (or any model folder / Hub id)")
    p.add_argument("--base", default=None, help="base model to compare with (default: the variant's recorded base; none for other models)")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json and the card as they are")
    _add_eval_args(p)


@_command("bench")
def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.saved import bench_saved

    kw = _eval_kwargs(args)
    cache: dict[str, Any] = {}
    for where in args.models:
        result, written = bench_saved(where, base=args.base, update=not args.no_write, base_cache=cache, **kw)
        print(f"\n== {result.name}")
        print(result.table())
        if written:
            print(f"wrote {written}")
    return 0


def _add_grid_parser(sub: Any) -> None:
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
    _add_eval_args(p)


def _print_grid(out: Any) -> None:
    print()
    print(out.table())
    for key in ("markdown", "csv", "size_plot", "speed_plot"):
        if key in out.files:
            print(f"{key:>10}: {out.files[key]}")
    print(f"variants in {out.output_dir}: {len(out.computed)} computed, {len(out.resumed)} kept from before, "
          f"{len(out.skipped)} skipped, {len(out.failed)} failed; {out.seconds / 60:.1f} min")


@_command("grid")
def _cmd_grid(args: argparse.Namespace) -> int:
    from .grid import run_grid

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    out = run_grid(args.grid, args.model, args.output, calibration=args.calibration, num_samples=args.num_samples,
                   seq_len=args.seq_len, seed=args.seed, backend=args.backend, evaluate_kwargs=_eval_kwargs(args), only=only)
    _print_grid(out)
    return 1 if out.failed else 0


def _add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="offline demo: compress the embedded SmolLM2 with every available method and compare")
    p.add_argument("-o", "--output", default="runs/demo", help="runs folder (default runs/demo); rerun to resume")
    p.add_argument("--only", default=None, help="comma-separated variant names to run (default: all)")


@_command("demo")
def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    out = run_demo(args.output, only=only)
    _print_grid(out)
    return 1 if out.failed else 0


# ----------------------------------------------------------------------------------------------------------
# entry point


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hfcompress`` command (exposed for docs and tests)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="hfcompress",
        description="Compress Hugging Face causal LMs, benchmark them against their base, and publish them to the Hub.",
    )
    parser.add_argument("--version", action="version", version=f"hfcompress {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show backend logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_compress_parser(sub)
    _add_space_parser(sub)
    _add_push_space_parser(sub)
    _add_distill_parser(sub)
    _add_card_parser(sub)
    _add_push_parser(sub)
    _add_push_grid_parser(sub)
    _add_bench_parser(sub)
    _add_grid_parser(sub)
    _add_demo_parser(sub)
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
        return int(_COMMANDS[args.command](args) or 0)
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


_EXTRA_OF_MODULE = {"gradio": "space", "gradio_client": "space", "plotly": "space", "lm_eval": "eval", "gptqmodel": "gptq",
                    "optimum": "gptq", "auto_gptq": "legacy", "awq": "legacy"}


def _quiet_backends() -> None:
    # llm-compressor logs every module at INFO through loguru; keep the terminal to our progress bars.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from loguru import logger as loguru_logger

        loguru_logger.remove()
        loguru_logger.add(sys.stderr, level="WARNING")
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())

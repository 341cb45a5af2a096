"""``hfcompress compress`` and ``hfcompress distill``: make one variant and save it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..api import CompressedModel
from ..atomic import check_output_dir
from ..config import CompressionConfig, config_class
from ..errors import HFCompressError
from ..methods.distill import DistillConfig
from ..methods.registry import cli_method, cli_method_names
from ..methods.structured import StructuredPruneConfig
from ..recipe import load_recipe
from ._common import add_calibration_args, add_model_args, command, parse_group_size


def _recipe_from_args(args: argparse.Namespace) -> list[Any]:
    if args.recipe and args.method:
        raise HFCompressError("pass either --recipe FILE or --method, not both")
    if args.recipe:
        recipe = load_recipe(args.recipe)
        if not recipe:
            raise HFCompressError(f"recipe file {args.recipe!r} holds no steps, so there is nothing to compress; "
                                  "add one, e.g. '- rtn: {bits: 8}'")
        return recipe
    if not args.method:
        raise HFCompressError("nothing to do: pass --method (e.g. --method gptq) or --recipe recipe.yaml")
    found = cli_method(args.method)
    if found is None:
        raise HFCompressError(f"unknown --method {args.method!r}; use one of {', '.join(cli_method_names())}")
    kind, fixed = found
    options: dict[str, Any] = {"kind": kind, **fixed}
    fields = {f.name for f in dataclasses.fields(config_class(kind))}
    for name in METHOD_OPTIONS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in fields:
            raise HFCompressError(f"--{name.replace('_', '-')} is not an option of --method {args.method}; "
                                  f"its options: {', '.join(sorted(fields))}")
        options[name] = parse_group_size(value) if name == "group_size" else value
    return [CompressionConfig.from_dict(options)]


# Flags of `compress` that set a method option of the same name (each method takes the ones it has).
METHOD_OPTIONS = ("bits", "group_size", "symmetric", "sparsity", "pattern", "target", "ratio", "importance", "rank", "energy",
                  "quant", "imatrix")


def add_compress_parser(sub: Any) -> None:
    p = sub.add_parser("compress", help="compress a model with one method or a recipe and save the variant")
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--recipe", help="recipe YAML file (a list of steps)")
    p.add_argument("--method", help=f"one of: {', '.join(cli_method_names())}")
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
    p.add_argument("--quant", help="gguf: llama.cpp file type, e.g. Q4_K_M, Q8_0, F16")
    p.add_argument("--imatrix", action=argparse.BooleanOptionalAction, default=None,
                   help="gguf: weight the rounding by an importance matrix of the calibration text (default: on for K/IQ types)")
    p.add_argument("--backend", default="auto", help="adapter name, or 'auto' (default)")
    p.add_argument("--evaluate", action="store_true", help="benchmark against the base model and write results.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--max-memory", help="keep at most this much of the weights in memory, e.g. 4GiB, the rest on disk: "
                   "a model larger than memory is compressed layer by layer (RTN, GPTQ, AWQ, Wanda, SparseGPT)")
    p.add_argument("--offload-folder", help="where --max-memory puts the other weights (default: a temp folder)")
    add_calibration_args(p)


def _check_output(args: argparse.Namespace) -> None:
    """Fail before minutes of work: an output that cannot be written, or that would overwrite what the run reads."""
    inputs = [(getattr(args, "model", None), "the input model"), (getattr(args, "student", None), "the --student model"),
              (getattr(args, "run_dir", None), "the --run-dir checkpoint folder")]
    run_dir = getattr(args, "run_dir", None)
    if run_dir and Path(run_dir).expanduser().resolve() == Path(args.output).expanduser().resolve():
        raise HFCompressError("--run-dir and -o are the same folder: saving the model would replace the training "
                              "checkpoints; give --run-dir a folder of its own")
    check_output_dir(args.output, args.overwrite, inputs=inputs)


@command("compress")
def _cmd_compress(args: argparse.Namespace) -> int:
    _check_output(args)
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
        max_memory={"cpu": args.max_memory} if args.max_memory else None,
        offload_folder=args.offload_folder,
    )
    return _evaluate_and_save(cm, args)


def _evaluate_and_save(cm: Any, args: argparse.Namespace) -> int:
    # The end of `compress` and `distill`: measure if asked (results.json then lands in the folder), save.
    if args.evaluate:
        cm.evaluate(name=Path(args.output).name)
    out = cm.save_pretrained(args.output, overwrite=args.overwrite)
    print(f"saved {cm!r} to {out}")
    return 0


# CLI flag -> DistillConfig field, for options passed through unchanged when given.
_DISTILL_OPTIONS = {
    "teacher": "teacher", "alpha": "alpha", "temperature": "temperature", "loss": "loss", "jsd_beta": "jsd_beta",
    "steps": "steps", "lr": "learning_rate", "batch_size": "batch_size", "grad_accum": "gradient_accumulation_steps",
    "train_seq_len": "seq_len", "data": "data", "prompts": "prompts", "num_synthetic": "num_synthetic",
    "max_new_tokens": "max_new_tokens", "warmup": "warmup", "eval_every": "eval_every", "eval_tokens": "eval_tokens",
    "save_every": "save_every", "run_dir": "run_dir",
}


def add_distill_parser(sub: Any) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a teacher into a student (the model, a pruned or smaller copy of it, or another model) and save it",
        description="Knowledge distillation: loss = alpha * CE + (1 - alpha) * T^2 * KL(teacher || student). "
        "Example: hfcompress distill --prune-neurons 0.25 --steps 300 -o out/pruned-distilled",
    )
    add_model_args(p)
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


@command("distill")
def _cmd_distill(args: argparse.Namespace) -> int:
    _check_output(args)
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

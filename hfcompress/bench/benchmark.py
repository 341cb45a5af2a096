"""``evaluate``: measure a variant and its base model in the same run, on the same data and hardware.

Quality (sliding-window perplexity on held-out text, greedy next-token agreement with the base, fixed-prompt
generations, optional lm-evaluation-harness tasks), speed (prefill, time to first token, decode at batch 1
and 8), memory (peak while generating, and while loading when the model is loaded here) and size (on disk,
logical parameters, bits per weight, sparsity). The base model's numbers can be cached (``base_cache``) so
a grid measures the base once.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8))     # doctest: +SKIP
    >>> from hfcompress.bench import evaluate
    >>> res = evaluate(cm, max_tokens=2048)                                                # doctest: +SKIP
    >>> print(res.table())
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import logging
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..errors import HFCompressError
from .memory import MB, PeakMemory, model_bytes
from .perplexity import score_windows
from .quality import DEFAULT_PROMPTS, check_lm_eval, greedy_generations, lm_eval_metrics
from .results import BenchmarkResult
from .size import checkpoint_stats, folder_size_bytes, linear_sparsity, model_stats
from .speed import measure_speed

logger = logging.getLogger(__name__)

# Public evaluation sets reachable through `datasets` (when the Hub is reachable): name -> how to read it.
PUBLIC_EVAL_SETS = {
    "wikitext2": {"path": "wikitext", "name": "wikitext-2-raw-v1", "split": "test", "join": "\n\n",
                  "description": "WikiText-2 raw, test split"},
    "c4": {"path": "allenai/c4", "data_files": {"validation": "en/c4-validation.00000-of-00008.json.gz"},
           "split": "validation", "join": "\n\n", "description": "C4 en, validation shard 0"},
}


def eval_token_ids(spec: Any, tokenizer: Any, *, max_tokens: int) -> tuple[Any, str]:
    """Token ids (1-D) and a description for one evaluation set: ``"default"``, ``"wikitext2"``, ``"c4"``,
    a text file, a list of strings or a ``datasets`` id. Public sets raise HFCompressError when unreachable.

    Example:
        >>> ids, what = eval_token_ids("default", tok, max_tokens=2048)           # doctest: +SKIP
    """
    import torch

    from ..data import evaluation_token_ids
    from ..loading import hub_reachable

    if isinstance(spec, str) and spec in PUBLIC_EVAL_SETS:
        info = PUBLIC_EVAL_SETS[spec]
        if not hub_reachable():
            raise HFCompressError(f"{spec}: the Hugging Face Hub is not reachable (offline); its perplexity is skipped")
        import datasets

        try:
            kwargs = {"data_files": info["data_files"]} if "data_files" in info else {"name": info["name"]}
            ds = datasets.load_dataset(info["path"], split=info["split"], **kwargs)
        except Exception as err:  # datasets raises many types for offline / not found
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise HFCompressError(f"{spec}: could not read {info['path']}: {first}") from None
        texts: list[str] = []
        chars = 0
        for text in ds["text"]:
            texts.append(text)
            chars += len(text)
            if chars > max_tokens * 8:  # plenty of characters for max_tokens tokens
                break
        ids = tokenizer(info["join"].join(texts), return_tensors="pt", add_special_tokens=False)["input_ids"][0]
        return ids[:max_tokens].to(torch.long), info["description"]
    return evaluation_token_ids(spec, tokenizer, max_tokens=max_tokens)


def _ratio(value: Any, base: Any) -> float | None:
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
        return value / base
    return None


def _load(where: Any) -> Any:
    from ..loading import load_model

    with PeakMemory() as peak:
        loaded = load_model(where)
    return loaded, peak


def _source_arg(source: Any) -> Any:
    """What to pass to ``load_model`` to get the base model back from a ModelSource."""
    if source.kind == "embedded":
        return None
    if source.kind == "gguf" and source.path and source.gguf_file:
        return str(Path(source.path) / source.gguf_file)
    if source.kind == "folder":
        return source.path or source.model_id
    return source.model_id


def _size_metrics(folder: Path | None, model: Any) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    stats = checkpoint_stats(folder) if folder is not None else None
    if folder is not None:
        metrics["size_on_disk"] = {"value": folder_size_bytes(folder) / MB, "unit": "MB", "higher_is_better": False}
    origin = "checkpoint" if stats else "memory"
    stats = stats or model_stats(model)
    metrics["parameters"] = {"value": stats["parameters"], "unit": "count", "higher_is_better": False, "counted_from": origin}
    metrics["bits_per_weight"] = {"value": stats["bits_per_weight"], "unit": "bits", "higher_is_better": False,
                                  "counted_from": origin, "scope": "whole checkpoint"}
    if stats.get("bits_per_weight_linear"):
        metrics["bits_per_weight_linear"] = {"value": stats["bits_per_weight_linear"], "unit": "bits", "higher_is_better": False,
                                             "counted_from": origin, "scope": "decoder-layer weight matrices"}
    sparsity = linear_sparsity(model)
    if sparsity is not None:
        metrics["sparsity"] = {"value": sparsity, "unit": "fraction", "higher_is_better": True, "scope": "decoder-layer Linear weights"}
    return metrics


def _folder_of(model: Any) -> Path | None:
    # A model reloaded from a saved variant (or a local base) knows its folder through name_or_path.
    name = getattr(getattr(model, "config", None), "name_or_path", None)
    if name and Path(name).is_dir() and list(Path(name).glob("*.safetensors")):
        return Path(name)
    return None


def _measure(
    model: Any,
    tokenizer: Any,
    eval_sets: list[tuple[str, Any, str]],
    opts: dict[str, Any],
    *,
    folder: Path | None,
    load_peak: PeakMemory | None,
    progress: bool,
    label: str,
) -> dict[str, Any]:
    """Every measurement of one model; JSON-safe (so a base's numbers can be cached on disk)."""
    from tqdm.auto import tqdm

    stages = ["perplexity"] + (["speed"] if opts["speed"] else []) + (["generations"] if opts["generations"] else [])
    stages += (["lm-eval"] if opts["lm_eval_tasks"] else []) + ["size"]
    bar = tqdm(stages, desc=f"evaluate {label}", unit="stage", disable=not progress, leave=False)
    metrics: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[int]] = {}
    gens: list[str] = []
    skipped: list[dict[str, str]] = []
    weights = model_bytes(model)
    for stage in bar:
        bar.set_postfix_str(stage)
        if stage == "perplexity":
            for i, (key, ids, description) in enumerate(eval_sets):
                scores = score_windows(model, ids, context=opts["context"], stride=opts["stride"], progress=progress)
                metrics["perplexity" if i == 0 else f"perplexity/{key}"] = {
                    "value": scores.perplexity, "unit": "ppl", "higher_is_better": False, "dataset": description,
                    "tokens": int(ids.numel()), "scored_tokens": scores.count, "context": opts["context"], "stride": opts["stride"],
                }
                predictions[key] = scores.predictions.tolist()
        elif stage == "speed":
            with PeakMemory() as peak:
                metrics.update(measure_speed(model, eval_sets[0][1], prompt_tokens=opts["prompt_tokens"], new_tokens=opts["new_tokens"],
                                             batch_sizes=(1, opts["batch_size"]) if opts["batch_size"] > 1 else (1,),
                                             runs=opts["speed_runs"], warmup=opts["warmup"]))
        elif stage == "generations":
            with PeakMemory() as gen_peak:
                gens = greedy_generations(model, tokenizer, opts["prompts"], max_new_tokens=opts["max_new_tokens"])
            if not opts["speed"]:
                peak = gen_peak
        elif stage == "lm-eval":
            found, missing = lm_eval_metrics(model, tokenizer, opts["lm_eval_tasks"], limit=opts["lm_eval_limit"],
                                             num_fewshot=opts["lm_eval_fewshot"], seed=opts["seed"],
                                             include_path=opts["lm_eval_include_path"])
            metrics.update(found)
            skipped.extend(missing)
        elif stage == "size":
            metrics.update(_size_metrics(folder, model))
    metrics["model_memory"] = {"value": weights / MB, "unit": "MB", "higher_is_better": False,
                               "note": "parameters and buffers as held in memory by this process"}
    if opts["speed"] or opts["generations"]:
        # GPU: the allocator's peak. CPU: weights in memory + the largest rise of the process RSS while generating.
        value = peak.peak_mb if peak.device == "cuda" else (weights + peak.rise_bytes) / MB
        metrics["peak_memory"] = {"value": value, "unit": "MB", "higher_is_better": False, "device": peak.device,
                                  "stage": "generating (speed runs)" if opts["speed"] else "generating"}
    if load_peak is not None:
        metrics["load_peak_memory"] = {"value": load_peak.peak_mb if load_peak.device == "cuda" else load_peak.rise_mb,
                                       "unit": "MB", "higher_is_better": False, "device": load_peak.device,
                                       "note": "rise of process memory while loading"}
    return {"metrics": metrics, "predictions": predictions, "generations": gens, "skipped": skipped}


def _agreement(variant: dict[str, Any], base: dict[str, Any], key: str) -> dict[str, Any] | None:
    import torch

    a, b = variant["predictions"].get(key), base["predictions"].get(key)
    if not a or not b or len(a) != len(b):
        return None
    same = float((torch.tensor(a) == torch.tensor(b)).float().mean())
    return {"value": same, "unit": "fraction", "higher_is_better": True, "tokens": len(a),
            "note": "share of positions where the greedy next token equals the base model's"}


def _reproduce(cm: Any, name: str, opts: dict[str, Any], eval_data: Sequence[Any]) -> str:
    source = cm.source
    model_arg = "" if source.kind == "embedded" else shlex.quote(str(source.model_id)) + " "
    bench = [f"hfcompress bench {shlex.quote(name)}", f"--max-tokens {opts['max_tokens']}", f"--context {opts['context']}",
             f"--stride {opts['stride']}"]
    if [str(d) for d in eval_data] != ["default"]:
        bench.append("--eval-data " + shlex.quote(",".join(str(d) for d in eval_data)))
    if not opts["speed"]:
        bench.append("--no-speed")
    if opts["lm_eval_tasks"]:
        bench.append("--tasks " + ",".join(opts["lm_eval_tasks"]))
        if opts["lm_eval_limit"]:
            bench.append(f"--limit {opts['lm_eval_limit']}")
    bench_cmd = " ".join(bench)
    if not cm.recipe:
        return bench_cmd
    calib = cm.calibration or {}
    compress = (f"hfcompress compress {model_arg}--recipe {shlex.quote(name)}/recipe.yaml -o {shlex.quote(name)}-redo "
                f"--seed {cm.seed}")
    if calib:
        compress += f" --num-samples {calib.get('num_samples', 128)} --seq-len {calib.get('seq_len', 512)}"
        if calib.get("source") not in (None, "default", "list"):
            compress += f" --calibration {shlex.quote(str(calib['source']))}"
    return f"{compress} && {bench_cmd.replace(shlex.quote(name), shlex.quote(name) + '-redo', 1)}"


def base_cache_key(cm: Any, opts: dict[str, Any], eval_data: Sequence[Any], base: Any = True) -> str:
    """The key under which a base model's measurements are cached: base id + data + settings + device.

    Example:
        >>> base_cache_key(cm, opts, ["default"])[:20]                 # doctest: +SKIP
    """
    import torch

    if base is True or not hasattr(base, "source"):
        src = cm.source if base is True else None
        ident = {"model_id": src.model_id, "revision": src.revision, "kind": src.kind} if src else {"model_id": str(base)}
    else:
        ident = {"model_id": base.source.model_id, "revision": base.source.revision, "kind": base.source.kind,
                 "recipe": [step.describe() for step in getattr(base, "recipe", [])]}
    key = {**ident, "eval_data": [str(d) for d in eval_data],
           "device": "cuda" if torch.cuda.is_available() else "cpu",
           **{k: v for k, v in opts.items() if k not in ("progress",)}}
    return json.dumps(key, sort_keys=True, default=str)


def evaluate(
    cm: Any,
    *,
    eval_data: str | Sequence[Any] = "default",
    max_tokens: int = 4096,
    context: int = 512,
    stride: int = 256,
    speed: bool = True,
    generations: bool = True,
    lm_eval_tasks: Sequence[str] | None = None,
    lm_eval_limit: int | float | None = None,
    lm_eval_fewshot: int | None = None,
    lm_eval_include_path: str | os.PathLike | None = None,
    base: Any = True,
    base_cache: dict[str, Any] | None = None,
    saved_dir: str | os.PathLike | None = None,
    name: str | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    max_new_tokens: int = 32,
    speed_runs: int = 5,
    warmup: int = 1,
    prompt_tokens: int = 128,
    new_tokens: int = 32,
    batch_size: int = 8,
    reproduce: str | None = None,
    reload: bool = True,
    progress: bool = True,
) -> BenchmarkResult:
    """Benchmark ``cm`` (a CompressedModel or a saved variant folder) against its base model.

    Args:
        cm: the variant; a path is loaded with ``CompressedModel.from_pretrained`` (its loading memory is measured).
        eval_data: ``"default"`` (held-out offline Wikipedia text), ``"wikitext2"``, ``"c4"`` (through datasets, when
            the Hub is reachable; skipped with the reason otherwise), a text file, a list of strings in a list (``[["text", ...]]``), or a list of those. The first
            set gives ``perplexity``; the others ``perplexity/<name>``.
        max_tokens, context, stride: evaluation tokens per set and the sliding window.
        speed: time prefill/decode (batch 1 and ``batch_size``), ``speed_runs`` runs after ``warmup``.
        generations: greedy answers to ``prompts`` (``max_new_tokens`` each), kept for the card and Space.
        lm_eval_tasks: lm-evaluation-harness tasks (e.g. ``["arc_easy", "hellaswag"]``), needs ``hfcompress[eval]``;
            ``lm_eval_limit`` samples per task, ``lm_eval_fewshot`` shots, ``lm_eval_include_path`` a folder of
            your own task YAML files.
        base: True = reload the base from ``cm.source``; False = no base; a CompressedModel or a path = that model.
        base_cache: a dict where the base's measurements are kept by key (base id + data + settings), so a grid
            measures the base once.
        saved_dir: the folder the variant is saved in (for size on disk); without it a temp save is measured.
        name: the variant's name in results (default: the folder name or a name built from the recipe).
        reproduce: the command recorded to redo this result (default: a compress + bench command).
        reload: measure an in-memory variant that has no saved folder by saving it to a temp folder and
            loading that back, as users will (default). In memory, RTN and AWQ may still round inside every
            forward and llm-compressor may leave the model offloaded, which makes speed and memory dishonest.
            The reload holds a second copy of the model in memory; ``reload=False`` measures the in-memory
            model instead and says so in ``settings.measured``.

    Example:
        >>> res = evaluate(cm, max_tokens=2048, speed_runs=3)                      # doctest: +SKIP
        >>> res.metrics["perplexity"]["value"], res.metrics["perplexity"]["base"]
        (13.1, 11.7)
    """
    arguments = {k: v for k, v in locals().items() if k != "cm"}
    from tqdm.auto import tqdm

    from .. import __version__  # noqa: F401  (results record it through BenchmarkResult)
    from ..api import CompressedModel
    from ..config import QUANTIZATION_KINDS, recipe_to_dicts
    from ..environment import environment_info

    # -- check the input before any long work ------------------------------------------------------
    if max_tokens < 2:
        raise HFCompressError(f"max_tokens={max_tokens} is too small; use at least 2 (e.g. 4096)")
    if not (0 < stride <= context):
        raise HFCompressError(f"need 0 < stride <= context, got stride={stride}, context={context}; e.g. context=512, stride=256")
    if speed and (speed_runs < 1 or prompt_tokens < 1 or new_tokens < 1 or batch_size < 1):
        raise HFCompressError("speed_runs, prompt_tokens, new_tokens and batch_size must be positive integers")
    lm_eval_tasks = [t for t in (lm_eval_tasks or []) if t]
    check_lm_eval(lm_eval_tasks)
    sets = [eval_data] if isinstance(eval_data, (str, os.PathLike)) or eval_data is None else list(eval_data)
    if not sets:
        raise HFCompressError("eval_data is empty; use 'default', 'wikitext2', 'c4' or a text file")

    load_peak = None
    if isinstance(cm, (str, os.PathLike)):
        folder = Path(cm).expanduser()
        with PeakMemory() as load_peak:
            cm = CompressedModel.from_pretrained(folder)
        saved_dir = saved_dir or folder
    if not hasattr(cm, "model") or not hasattr(cm, "source"):
        raise HFCompressError(f"evaluate() needs a CompressedModel or a saved variant folder, not {type(cm).__name__}")
    variant_folder = Path(saved_dir) if saved_dir else _folder_of(cm.model)
    if variant_folder is not None and not (variant_folder / "hfcompress.json").is_file() and cm.recipe:
        variant_folder = None  # the model's folder is the base's, not a saved variant
    if reload and variant_folder is None and cm.recipe and load_peak is None:
        with tempfile.TemporaryDirectory(prefix="hfcompress-eval-") as tmp:
            folder = cm.save_pretrained(Path(tmp) / "variant", card=False)
            return evaluate(folder, **{**arguments, "name": name or _default_name(cm), "reload": False})

    opts = {"max_tokens": max_tokens, "context": context, "stride": stride, "speed": speed, "generations": generations,
            "lm_eval_tasks": lm_eval_tasks, "lm_eval_limit": lm_eval_limit, "lm_eval_fewshot": lm_eval_fewshot,
            "lm_eval_include_path": str(lm_eval_include_path) if lm_eval_include_path else None, "prompts": list(prompts), "max_new_tokens": max_new_tokens, "speed_runs": speed_runs, "warmup": warmup,
            "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "batch_size": batch_size, "seed": cm.seed}

    # -- evaluation text (tokenized once; the base shares the tokenizer family) -------------------------
    eval_sets: list[tuple[str, Any, str]] = []
    skipped: list[dict[str, str]] = []
    for spec in sets:
        key = spec if isinstance(spec, str) and len(spec) < 200 else "custom"
        key = Path(key).stem if isinstance(key, str) and os.sep in key else key
        try:
            ids, description = eval_token_ids(spec, cm.tokenizer, max_tokens=max_tokens)
        except HFCompressError as err:
            if not eval_sets and spec is sets[-1]:
                raise
            skipped.append({"metric": f"perplexity/{key}", "reason": str(err)})
            logger.warning("skipped perplexity on %s: %s", key, err)
            continue
        if ids.numel() < 2:
            raise HFCompressError(f"evaluation text {key!r} has fewer than 2 tokens; pass more text")
        eval_sets.append((str(key), ids, description))
    if not eval_sets:
        raise HFCompressError("no evaluation text could be read: " + "; ".join(s["reason"] for s in skipped))

    name = name or (variant_folder.name if variant_folder else None) or _default_name(cm)

    stages = ["base", "variant", "compare"] if base is not False else ["variant", "compare"]
    bar = tqdm(stages, desc=f"benchmark {name}", unit="model", disable=not progress)
    base_meas: dict[str, Any] | None = None
    variant_meas: dict[str, Any] = {}
    for stage in bar:
        bar.set_postfix_str(stage)
        if stage == "base":
            base_meas = _measure_base(cm, base, base_cache, eval_sets, opts, eval_data=sets, progress=progress)
        elif stage == "variant":
            with tempfile.TemporaryDirectory(prefix="hfcompress-size-") as tmp:
                folder = variant_folder
                if folder is None:
                    # No saved folder yet: measure size from a temp save in the variant's real format.
                    folder = cm.save_pretrained(Path(tmp) / "variant", card=False)
                variant_meas = _measure(cm.model, cm.tokenizer, eval_sets, opts, folder=folder, load_peak=load_peak,
                                        progress=progress, label="variant")

    metrics = variant_meas["metrics"]
    if base_meas is not None:
        for metric, m in metrics.items():
            b = base_meas["metrics"].get(metric)
            if b is None:
                continue
            m["base"] = b.get("value")
            m["ratio"] = _ratio(m.get("value"), m["base"])
            for extra in ("stderr", "spread"):
                if b.get(extra) is not None:
                    m[f"base_{extra}"] = b[extra]
        agreement = _agreement(variant_meas, base_meas, eval_sets[0][0])
        if agreement:
            metrics["next_token_agreement"] = agreement
    kinds = {step.kind for step in cm.recipe}
    if "sparsity" in metrics and kinds & set(QUANTIZATION_KINDS) and "prune" not in kinds:
        # 4-bit grids put a value on zero: those zeros are rounding, not pruning, and buy nothing.
        metrics["sparsity"]["note"] = "zeros from rounding to the quantization grid, not pruning"
    seconds = _compress_seconds(cm)
    if seconds is not None:
        metrics["compress_time"] = {"value": seconds, "unit": "s", "higher_is_better": False, "note": "sum of recipe steps"}

    gens = []
    base_gens = (base_meas or {}).get("generations") or []
    for i, prompt in enumerate(opts["prompts"] if generations else []):
        gens.append({"prompt": prompt, "variant": variant_meas["generations"][i],
                     "base": base_gens[i] if i < len(base_gens) else None})
    manifest = cm.manifest() if hasattr(cm, "manifest") else {}
    return BenchmarkResult(
        variant={"name": name, "recipe": recipe_to_dicts(cm.recipe), "format": cm.save_format,
                 "steps": [{k: s.get(k) for k in ("kind", "backend", "seconds")} for s in manifest.get("steps", [])]},
        base_model={k: getattr(cm.source, k, None) for k in ("model_id", "revision", "kind", "note")},
        metrics=metrics,
        environment=environment_info(),
        seed=int(cm.seed),
        data={"eval": {"sets": [{"name": k, "description": d, "tokens": int(i.numel())} for k, i, d in eval_sets],
                       "max_tokens": max_tokens, "context": context, "stride": stride},
              "calibration": cm.calibration},
        reproduce=reproduce or _reproduce(cm, name, opts, sets),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        generations=gens,
        skipped=skipped + variant_meas["skipped"] + [s for s in (base_meas or {}).get("skipped", []) if s not in variant_meas["skipped"]],
        settings={k: v for k, v in opts.items() if k not in ("prompts",)} | {
            "base_measured": base_meas is not None,
            "measured": "saved folder, reloaded" if load_peak is not None else "in-memory model"},
    )


def _measure_base(cm: Any, base: Any, cache: dict[str, Any] | None, eval_sets: list, opts: dict[str, Any], *,
                  eval_data: Sequence[Any], progress: bool) -> dict[str, Any]:
    key = base_cache_key(cm, opts, eval_data, base)
    if cache is not None and key in cache:
        logger.info("base model numbers reused from the cache")
        return cache[key]
    load_peak = None
    if base is True:
        loaded, load_peak = _load(_source_arg(cm.source))
        model, tokenizer = loaded.model, loaded.tokenizer
    elif isinstance(base, (str, os.PathLike)):
        loaded, load_peak = _load(base)
        model, tokenizer = loaded.model, loaded.tokenizer
    elif hasattr(base, "model") and hasattr(base, "tokenizer"):
        model, tokenizer = base.model, base.tokenizer
    else:
        raise HFCompressError(f"base={base!r} is not valid; use True, False, a CompressedModel or a model path")
    with tempfile.TemporaryDirectory(prefix="hfcompress-base-size-") as tmp:
        folder = _folder_of(model)
        if folder is None:
            folder = Path(tmp)
            model.save_pretrained(folder, safe_serialization=True)
        measured = _measure(model, tokenizer, eval_sets, opts, folder=folder, load_peak=load_peak, progress=progress, label="base")
    if base is True or isinstance(base, (str, os.PathLike)):
        del model, loaded
        gc.collect()
    if cache is not None:
        cache[key] = measured
    return measured


def _compress_seconds(cm: Any) -> float | None:
    if getattr(cm, "steps", None):
        return float(sum(s.seconds for s in cm.steps))
    manifest = getattr(cm, "_loaded_manifest", None) or {}
    steps = manifest.get("steps") or []
    if steps and all(isinstance(s.get("seconds"), (int, float)) for s in steps):
        return float(sum(s["seconds"] for s in steps))
    return None


def _default_name(cm: Any) -> str:
    base = str(cm.source.model_id).rstrip("/").split("/")[-1]
    kinds = "-".join(step.kind for step in cm.recipe) or "base"
    return f"{base}-{kinds}"

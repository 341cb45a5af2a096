"""``evaluate``: measure a variant and its base model in the same run, on the same data and hardware.

Quality (sliding-window perplexity on held-out text, greedy next-token agreement with the base, fixed-prompt
generations, optional lm-evaluation-harness tasks), speed (prefill, time to first token, decode at batch 1
and 8), memory (peak while generating, and while loading when the model is loaded here) and size (on disk,
logical parameters, bits per weight, sparsity). The base model's numbers can be cached (``base_cache``) so
a grid measures the base once.

bench measures what it is handed: a saved variant folder (loaded here, as users load it) or a ``Subject``
(a model in memory with what is known of it). Saving an in-memory variant to measure it as saved is the
job of ``CompressedModel.evaluate``.

Example:
    >>> import tempfile
    >>> from hfcompress.testing import build_tiny_model
    >>> folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    >>> settings = EvalSettings(eval_data=[["The quick brown fox jumps over the lazy dog. " * 20]], max_tokens=256,
    ...                         context=64, stride=32, speed=False, generations=False)
    >>> res = evaluate(folder, settings, base=False)
    >>> res.metrics["perplexity"]["unit"], res.metrics["perplexity"]["scored_tokens"]
    ('ppl', 255)
"""

from __future__ import annotations

import datetime as _dt
import gc
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ..artifacts import bench_command, compress_command
from ..data import evaluation_token_ids
from ..environment import environment_info
from ..errors import HFCompressError
from ..loading import hub_reachable, load_model
from ..methods.backends import llamacpp
from ..methods.gguf.convert import dense_folder
from ..methods.registry import recipe_quantizes, recipe_sparsifies
from .engines import LlamaCppEngine, TransformersEngine
from .memory import MB, PeakMemory
from .perplexity import score_windows
from .quality import check_lm_eval, lm_eval_metrics
from .reference import LogProbFile
from .results import BenchmarkResult
from .settings import EvalSettings
from .size import (checkpoint_stats, folder_size_bytes, gguf_kv_cache_bytes_per_token, gguf_stats, kv_cache_bytes_per_token,
                   linear_sparsity, model_stats)
from .speed import speed_metrics, summarize
from .tasks import task_metrics
from .subject import Subject, load_subject

logger = logging.getLogger(__name__)


PUBLIC_EVAL_SETS = {
    "wikitext2": {"path": "wikitext", "name": "wikitext-2-raw-v1", "split": "test", "join": "\n\n",
                  "description": "WikiText-2 raw, test split"},
    "c4": {"path": "allenai/c4", "data_files": {"validation": "en/c4-validation.00000-of-00008.json.gz"},
           "split": "validation", "join": "\n\n", "description": "C4 en, validation shard 0"},
}


def eval_token_ids(spec: Any, tokenizer: Any, *, max_tokens: int) -> tuple[Any, str]:
    """Token ids (1-D) and a description for one evaluation set: ``"default"``, ``"wikitext2"``, ``"c4"``,
    a text file, a list of strings or a ``datasets`` id. Public sets raise HFCompressError when unreachable.

    """
    import torch


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




def _size_metrics(folder: Path | None, model: Any, gguf_file: Path | None = None) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    if gguf_file is not None:
        stats, origin = gguf_stats(gguf_file), "gguf file"
        metrics["size_on_disk"] = {"value": gguf_file.stat().st_size / MB, "unit": "MB", "higher_is_better": False}
    else:
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
    kv = _kv_cache_metric(folder, model, gguf_file)
    if kv is not None:
        metrics["kv_cache_bytes_per_token"] = kv
    sparsity = linear_sparsity(model) if gguf_file is None else None
    if sparsity is not None:
        metrics["sparsity"] = {"value": sparsity, "unit": "fraction", "higher_is_better": True, "scope": "decoder-layer Linear weights"}
    return metrics


def _kv_cache_metric(folder: Path | None, model: Any, gguf_file: Path | None) -> dict[str, Any] | None:
    # K and V per token across layers, in the element type the engine caches them in: llama.cpp's default f16, or
    # the transformers model's compute dtype.
    if gguf_file is not None:
        value, dtype = gguf_kv_cache_bytes_per_token(gguf_file), "f16 (llama.cpp default)"
    elif model is not None and getattr(model, "config", None) is not None:
        element = next((p.element_size() for p in model.parameters() if p.is_floating_point()), 4)
        value, dtype = kv_cache_bytes_per_token(model.config, element), str(getattr(model, "dtype", "")).replace("torch.", "")
    elif folder is not None and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        value, dtype = kv_cache_bytes_per_token(config, 2), "16-bit"
    else:
        return None
    if value is None:
        return None
    return {"value": value, "unit": "bytes", "higher_is_better": False, "dtype": dtype,
            "note": "num_layers x 2 (K, V) x num_kv_heads x head_dim x bytes per element (full attention)"}


def _folder_of(model: Any) -> Path | None:
    # A model reloaded from a saved variant (or a local base) knows its folder through name_or_path.
    name = getattr(getattr(model, "config", None), "name_or_path", None)
    if name and Path(name).is_dir() and list(Path(name).glob("*.safetensors")):
        return Path(name)
    return None


def engine_for(subject: Subject, settings: EvalSettings) -> Any:
    """The engine that runs a variant as its users will: llama.cpp for a GGUF file, transformers otherwise."""
    if subject.gguf_file is not None:
        return LlamaCppEngine(subject.gguf_file, subject.tokenizer, context=settings.context)
    return TransformersEngine(subject.model, subject.tokenizer)


def _measure(engine: Any, eval_sets: list[tuple[str, Any, str]], settings: EvalSettings, *, seed: int, folder: Path | None,
             model: Any, gguf_file: Path | None, load_peak: PeakMemory | None, progress: bool, label: str,
             record: dict[str, Any] | None = None, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The quality, generation and size measurements of one engine; JSON-safe (a base's numbers are cached on disk).

    ``record`` / ``reference`` map an evaluation set's key to a ``LogProbFile`` to write / to measure KL against.
    """
    from tqdm.auto import tqdm

    stages = ["perplexity"] + (["tasks"] if settings.tasks else []) + (["generations"] if settings.generations else [])
    stages += (["lm-eval"] if settings.lm_eval_tasks else []) + ["size"]
    bar = tqdm(stages, desc=f"evaluate {label}", unit="stage", disable=not progress, leave=False)
    metrics: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[int]] = {}
    gens: list[str] = []
    skipped: list[dict[str, str]] = []
    peak: PeakMemory | None = None
    for stage in bar:
        bar.set_postfix_str(stage)
        if stage == "perplexity":
            for i, (key, ids, description) in enumerate(eval_sets):
                scores = score_windows(engine, ids, context=settings.context, stride=settings.stride, progress=progress,
                                       record=(record or {}).get(key), reference=(reference or {}).get(key))
                suffix = "" if i == 0 else f"/{key}"
                metrics[f"perplexity{suffix}"] = {
                    "value": scores.perplexity, "unit": "ppl", "higher_is_better": False, "dataset": description,
                    "tokens": int(ids.numel()), "scored_tokens": scores.count, "context": settings.context,
                    "stride": settings.stride, "engine": engine.name,
                }
                if scores.kl is not None:
                    metrics.update(_kl_metrics(scores.kl, suffix, description, engine.name))
                predictions[key] = scores.predictions.tolist()
        elif stage == "tasks":
            metrics.update(task_metrics(engine, engine.tokenizer, settings.tasks, count=settings.task_items, seed=seed))
        elif stage == "generations":
            with PeakMemory() as peak:
                gens = engine.generate(settings.prompts, settings.max_new_tokens)
        elif stage == "lm-eval":
            if not isinstance(engine, TransformersEngine):
                skipped.append({"metric": "lm_eval", "reason": f"lm-evaluation-harness runs transformers models, not {engine.name}"})
                continue
            found, missing = lm_eval_metrics(engine.model, engine.tokenizer, settings.lm_eval_tasks, limit=settings.lm_eval_limit,
                                             num_fewshot=settings.lm_eval_fewshot, seed=seed,
                                             include_path=settings.lm_eval_include_path)
            metrics.update(found)
            skipped.extend(missing)
        elif stage == "size":
            metrics.update(_size_metrics(folder, model, gguf_file))
    weights = engine.memory_bytes()
    metrics["model_memory"] = {"value": weights / MB, "unit": "MB", "higher_is_better": False, "engine": engine.name,
                               "note": "weights as held in memory by the engine"}
    if peak is not None:
        # GPU: the allocator's peak. CPU: weights in memory + the largest rise of the process RSS while generating.
        value = peak.peak_mb if peak.device == "cuda" else (weights + peak.rise_bytes) / MB
        metrics["peak_memory"] = {"value": value, "unit": "MB", "higher_is_better": False, "device": peak.device,
                                  "stage": "generating", "engine": engine.name}
    if load_peak is not None:
        metrics["load_peak_memory"] = {"value": load_peak.peak_mb if load_peak.device == "cuda" else load_peak.rise_mb,
                                       "unit": "MB", "higher_is_better": False, "device": load_peak.device,
                                       "note": "rise of process memory while loading"}
    return {"metrics": metrics, "predictions": predictions, "generations": gens, "skipped": skipped, "engine": engine.name}


def _kl_metrics(kl: Any, suffix: str, description: str, engine: str) -> dict[str, dict[str, Any]]:
    import torch

    common = {"unit": "nats", "higher_is_better": False, "dataset": description, "tokens": int(kl.numel()), "engine": engine,
              "note": "KL(base || variant) of the next-token distributions, per scored token"}
    return {
        f"kl_divergence{suffix}": {"value": float(kl.mean()), **common},
        f"kl_divergence_p99{suffix}": {"value": float(torch.quantile(kl.float(), 0.99)), **common},
    }


def _agreement(variant: dict[str, Any], base: dict[str, Any], key: str) -> dict[str, Any] | None:
    import torch

    a, b = variant["predictions"].get(key), base["predictions"].get(key)
    if not a or not b or len(a) != len(b):
        return None
    same = float((torch.tensor(a) == torch.tensor(b)).float().mean())
    return {"value": same, "unit": "fraction", "higher_is_better": True, "tokens": len(a), "engine": variant["engine"],
            "note": "share of positions where the greedy next token equals the base model's"}


def reproduce_command(subject: Subject, name: str, settings: EvalSettings) -> str:
    """The command recorded in results.json to redo this result: a compress (for a variant) and a bench."""
    options = {**settings.to_dict()}
    bench = bench_command(name, options, settings.data_sets())
    if not subject.recipe:
        return bench
    redo = f"{name}-redo"
    compress = compress_command(subject.source.to_dict(), redo, recipe_file=f"{name}/recipe.yaml", seed=subject.seed,
                                calibration=subject.calibration, public=False)
    return f"{compress} && {bench_command(redo, options, settings.data_sets())}"


def base_cache_key(subject: Subject, settings: EvalSettings, base: Any = True, engine: str = "transformers") -> str:
    """The key under which a base model's measurements are cached: base id + engine + data + settings + device."""
    import torch

    if base is True:
        src = subject.source
        ident: dict[str, Any] = {"model_id": src.model_id, "revision": src.revision, "kind": src.kind}
        if getattr(src, "adapter", None) is not None:  # base + merged adapter is another base than the bare one
            ident["adapter"] = {"model_id": src.adapter.model_id, "revision": src.adapter.revision}
    elif isinstance(base, Subject):
        ident = {"model_id": base.source.model_id, "revision": base.source.revision, "kind": base.source.kind,
                 "recipe": base.recipe}
    else:
        ident = {"model_id": str(base)}
    speed_keys = ("speed_runs", "warmup", "prompt_tokens", "new_tokens", "batch_size", "interleave_speed")
    options = {k: v for k, v in settings.to_dict().items() if k != "eval_data" and not (settings.interleave_speed and k in speed_keys)}
    key = {**ident, "engine": engine, "eval_data": [str(d) for d in settings.data_sets()],
           "device": "cuda" if torch.cuda.is_available() else "cpu", **options, "seed": subject.seed}
    return json.dumps(key, sort_keys=True, default=str)


def evaluate(
    target: Subject | str | os.PathLike,
    settings: EvalSettings | None = None,
    *,
    base: Any = True,
    base_cache: dict[str, Any] | None = None,
    name: str | None = None,
    reproduce: str | None = None,
    progress: bool = True,
    reference_dir: str | os.PathLike | None = None,
) -> BenchmarkResult:
    """Benchmark ``target`` (a saved variant folder, a model id, or a ``Subject``) against its base model.

    A GGUF variant is measured with llama.cpp against its base converted to F16 and run by llama.cpp too; any other
    with transformers against the base as transformers loads it. Both see the same tokens.

    Args:
        target: a folder is loaded here (its loading memory is measured); a ``Subject`` is measured as it is.
        settings: what to measure and on which data (``EvalSettings()`` if None).
        base: True = reload the base from the recorded source; False = no base; a ``Subject`` or a path = that model.
        base_cache: a dict where the base's measurements are kept by key (base id + engine + data + settings), so a
            grid measures the base once.
        name: the variant's name in results (default: the folder name or a name built from the recipe).
        reproduce: the command recorded to redo this result (default: a compress + bench command).
        reference_dir: where the base's log-probabilities are kept for KL divergence (a grid keeps them for all its
            variants); default: a temp folder removed at the end.
    """
    from tqdm.auto import tqdm

    settings = settings or EvalSettings()
    check_lm_eval(settings.lm_eval_tasks)
    subject = target if isinstance(target, Subject) else load_subject(target)
    engine = engine_for(subject, settings)
    eval_sets, skipped = _evaluation_sets(settings, subject.tokenizer)
    name = name or (subject.folder.name if subject.folder else None) or _default_name(subject)
    stages = (["base"] if base is not False else []) + ["variant"] + (["speed"] if settings.speed else [])
    bar = tqdm(stages, desc=f"benchmark {name}", unit="stage", disable=not progress)
    base_meas: dict[str, Any] | None = None
    variant_meas: dict[str, Any] = {}
    references: dict[str, Any] = {}
    speed: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hfcompress-bench-") as scratch:
        ref_dir = Path(reference_dir) if reference_dir is not None else Path(scratch)
        base_target: Any = None
        for stage in bar:
            bar.set_postfix_str(stage)
            if stage == "base":
                base_meas, references, base_target = _measure_base(subject, base, base_cache, eval_sets, settings, engine.name,
                                                                   ref_dir, Path(scratch), progress=progress)
            elif stage == "variant":
                folder = subject.folder
                if folder is None and subject.save is not None:
                    # No saved folder: measure size from a temp save in the variant's real format.
                    folder = subject.save(Path(scratch) / "variant")
                variant_meas = _measure(engine, eval_sets, settings, seed=subject.seed, folder=folder, model=subject.model,
                                        gguf_file=subject.gguf_file, load_peak=subject.load_peak, progress=progress,
                                        label="variant", reference=references if settings.kl else None)
            elif stage == "speed":
                speed = _speed(engine, base_target, eval_sets[0][1], settings, base_meas, subject.tokenizer)
    metrics = variant_meas["metrics"]
    metrics.update(speed.get("variant", {}))
    if base_meas is not None:
        base_metrics = {**base_meas["metrics"], **speed.get("base", {})}
        for metric, m in metrics.items():
            b = base_metrics.get(metric)
            if b is None:
                continue
            m["base"] = b.get("value")
            m["ratio"] = _ratio(m.get("value"), m["base"])
            for extra in ("stderr", "spread"):
                if b.get(extra) is not None:
                    m[f"base_{extra}"] = b[extra]
            if b.get("reliable") is False:
                m["base_reliable"] = False
        agreement = _agreement(variant_meas, base_meas, eval_sets[0][0])
        if agreement:
            metrics["next_token_agreement"] = agreement
    if "sparsity" in metrics and recipe_quantizes(subject.recipe) and not recipe_sparsifies(subject.recipe):
        # 4-bit grids put a value on zero: those zeros are rounding, not pruning, and buy nothing.
        metrics["sparsity"]["note"] = "zeros from rounding to the quantization grid, not pruning"
    seconds = subject.compress_seconds
    if seconds is not None:
        metrics["compress_time"] = {"value": seconds, "unit": "s", "higher_is_better": False, "note": "sum of recipe steps"}

    gens = []
    base_gens = (base_meas or {}).get("generations") or []
    for i, prompt in enumerate(settings.prompts if settings.generations else []):
        gens.append({"prompt": prompt, "variant": variant_meas["generations"][i],
                     "base": base_gens[i] if i < len(base_gens) else None})
    opts = {**{k: v for k, v in settings.to_dict().items() if k not in ("eval_data", "prompts")}, "seed": subject.seed}
    steps = subject.manifest.get("steps") or []
    return BenchmarkResult(
        variant={"name": name, "recipe": list(subject.recipe), "format": subject.save_format,
                 "steps": [{k: s.get(k) for k in ("kind", "backend", "seconds")} for s in steps]},
        base_model=_base_model_record(subject.source),
        metrics=metrics,
        environment=environment_info(),
        seed=subject.seed,
        data={"eval": {"sets": [{"name": k, "description": d, "tokens": int(i.numel())} for k, i, d in eval_sets],
                       "max_tokens": settings.max_tokens, "context": settings.context, "stride": settings.stride},
              "calibration": subject.calibration},
        reproduce=reproduce or reproduce_command(subject, name, settings),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        generations=gens,
        skipped=skipped + variant_meas["skipped"] + [s for s in (base_meas or {}).get("skipped", []) if s not in variant_meas["skipped"]],
        settings=opts | {"base_measured": base_meas is not None, "engine": engine.name,
                         "base_engine": base_meas.get("engine") if base_meas else None,
                         "measured": ("saved GGUF file, run by llama.cpp" if subject.gguf_file is not None else
                                      "saved folder, reloaded" if subject.load_peak is not None else "in-memory model")},
    )


def _evaluation_sets(settings: EvalSettings, tokenizer: Any) -> tuple[list[tuple[str, Any, str]], list[dict[str, str]]]:
    # Tokenized once; the base shares the tokenizer family.
    sets = settings.data_sets()
    eval_sets: list[tuple[str, Any, str]] = []
    skipped: list[dict[str, str]] = []
    for spec in sets:
        key = spec if isinstance(spec, str) and len(spec) < 200 else "custom"
        key = Path(key).stem if isinstance(key, str) and os.sep in key else key
        try:
            ids, description = eval_token_ids(spec, tokenizer, max_tokens=settings.max_tokens)
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
    return eval_sets, skipped


def _measure_base(subject: Subject, base: Any, cache: dict[str, Any] | None, eval_sets: list, settings: EvalSettings,
                  engine_name: str, ref_dir: Path, scratch: Path, *, progress: bool) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """The base's measurements on the variant's engine (from the cache when they are there), the log-probability
    files KL is measured against, and what the speed runs load the base from."""
    key = base_cache_key(subject, settings, base, engine_name)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    files = {k: ref_dir / f"base-{digest}-{i}.npy" for i, (k, _, _) in enumerate(eval_sets)}
    target = _base_target(subject, base, engine_name, ref_dir / f"base-{digest}-F16.gguf" if engine_name == "llama.cpp" else None, scratch)
    if cache is not None and key in cache and (not settings.kl or all(p.is_file() for p in files.values())):
        logger.info("base model numbers reused from the cache")
        return cache[key], ({k: LogProbFile.open(p) for k, p in files.items()} if settings.kl else {}), target
    base_engine, model, load_peak = _load_base_engine(target, settings, subject.tokenizer)
    records = {}
    if settings.kl:
        records = {k: LogProbFile.create(files[k], rows=int(ids.numel()) - 1, vocab=base_engine.vocab_size) for k, ids, _ in eval_sets}
    gguf_file = target if isinstance(target, Path) and target.suffix == ".gguf" else None
    folder = None if gguf_file is not None or model is None else _folder_of(model)
    if folder is None and gguf_file is None:
        folder = scratch / "base-size"
        model.save_pretrained(folder, safe_serialization=True)
    measured = _measure(base_engine, eval_sets, settings, seed=subject.seed, folder=folder, model=model, gguf_file=gguf_file,
                        load_peak=load_peak, progress=progress, label="base", record=records)
    if not settings.interleave_speed and settings.speed:
        measured["metrics"].update(speed_metrics(_engine_samples(base_engine, eval_sets[0][1], settings), **_speed_settings(settings, base_engine)))
    for store in records.values():
        store.flush()
    if cache is not None:
        cache[key] = measured
    del base_engine, model
    gc.collect()
    return measured, ({k: LogProbFile.open(p) for k, p in files.items()} if settings.kl else {}), target


def _base_target(subject: Subject, base: Any, engine_name: str, gguf_file: Path | None, scratch: Path) -> Any:
    # What the base is loaded from: a Subject in memory, a folder/id for transformers, or its F16 GGUF for llama.cpp.
    if base is not True and not isinstance(base, (str, os.PathLike, Subject)):
        raise HFCompressError(f"base={base!r} is not valid; use True, False, a Subject or a model path")
    where = subject.source.load_argument() if base is True else base
    if engine_name != "llama.cpp":
        return where
    if gguf_file is not None and gguf_file.is_file():
        return gguf_file
    loaded = where if isinstance(where, Subject) else load_model(where)
    dense_folder(loaded.model, loaded.tokenizer, lambda model, out: type(model).save_pretrained(model, out), scratch / "base-hf")
    gguf_file = gguf_file.resolve()
    gguf_file.parent.mkdir(parents=True, exist_ok=True)
    llamacpp.convert(scratch / "base-hf", gguf_file, "f16", name=Path(str(subject.source.model_id)).name)
    return gguf_file


def _load_base_engine(target: Any, settings: EvalSettings, tokenizer: Any = None) -> tuple[Any, Any, PeakMemory | None]:
    if isinstance(target, Subject):
        return TransformersEngine(target.model, target.tokenizer), target.model, None
    if isinstance(target, Path) and target.suffix == ".gguf":
        # The variant's tokenizer: the same ids as the base's (what KL and the tasks compare on).
        return LlamaCppEngine(target, tokenizer, context=settings.context), None, None
    with PeakMemory() as load_peak:
        loaded = load_model(target)
    return TransformersEngine(loaded.model, loaded.tokenizer), loaded.model, load_peak


def _speed_settings(settings: EvalSettings, engine: Any) -> dict[str, Any]:
    return {"prompt_tokens": settings.prompt_tokens, "new_tokens": settings.new_tokens, "warmup": settings.warmup,
            "engine": engine.name, **({"threads": engine.threads} if hasattr(engine, "threads") else {})}


def _engine_samples(engine: Any, text_ids: Any, settings: EvalSettings, *, runs: int | None = None, warmup: int | None = None) -> dict[str, list[float]]:
    # llama.cpp's tokens/s here are batch 1 only (its batched decode needs a server's parallel slots).
    batches = (1, settings.batch_size) if settings.batch_size > 1 and isinstance(engine, TransformersEngine) else (1,)
    return engine.speed_samples(text_ids, prompt_tokens=settings.prompt_tokens, new_tokens=settings.new_tokens,
                                batch_sizes=batches, runs=settings.speed_runs if runs is None else runs,
                                warmup=settings.warmup if warmup is None else warmup)


# Relative spread (IQR / median) beyond which more runs are taken, and beyond which a figure is not a result.
MORE_RUNS_SPREAD = 0.15
UNRELIABLE_SPREAD = 0.25


def _speed(engine: Any, base_target: Any, text_ids: Any, settings: EvalSettings, base_meas: dict[str, Any] | None,
           tokenizer: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Prefill/decode speed of the variant, and of the base in alternating runs when ``interleave_speed``.

    Both see the same machine: a background job that slows one run slows its neighbour of the other model too.
    While the decode spread stays wide, more rounds are run (up to three times ``speed_runs``); a figure whose
    spread stays wide is marked ``reliable: false``.
    """
    base_engine = None
    # base_target None is the embedded model (load_model(None)), not "no base": the base stage ran if base_meas is set.
    if settings.interleave_speed and base_meas is not None:
        base_engine = _load_base_engine(base_target, settings, tokenizer)[0]
    engines = {"variant": engine, **({"base": base_engine} if base_engine is not None else {})}
    if settings.warmup:
        for e in engines.values():
            _engine_samples(e, text_ids, settings, runs=settings.warmup, warmup=0)
    samples: dict[str, dict[str, list[float]]] = {role: {} for role in engines}
    peak_rise = {role: 0 for role in engines}
    rounds = 0
    while True:
        for role, e in engines.items():
            with PeakMemory() as peak:
                got = _engine_samples(e, text_ids, settings, runs=1, warmup=0)
            peak_rise[role] = max(peak_rise[role], peak.rise_bytes)
            for metric, values in got.items():
                samples[role].setdefault(metric, []).extend(values)
        rounds += 1
        decode = samples["variant"].get("decode_tokens_per_s", [])
        spread = _relative_spread(decode)
        if rounds >= settings.speed_runs and (spread <= MORE_RUNS_SPREAD or rounds >= 3 * settings.speed_runs):
            break
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for role, e in engines.items():
        metrics = speed_metrics(samples[role], **_speed_settings(settings, e), interleaved=base_engine is not None)
        for m in metrics.values():
            m["reliable"] = _relative_spread_of(m) <= UNRELIABLE_SPREAD
        # CPU: weights in memory + the largest rise of the process RSS while this model generated.
        metrics["peak_memory"] = {"value": (e.memory_bytes() + peak_rise[role]) / MB, "unit": "MB", "higher_is_better": False,
                                  "device": "cpu", "stage": "generating (speed runs)", "engine": e.name}
        out[role] = metrics
    del base_engine
    gc.collect()
    return out


def _relative_spread(values: list[float]) -> float:
    if len(values) < 2:
        return float("inf")
    s = summarize(values)
    return s["spread"] / s["value"] if s["value"] else float("inf")


def _relative_spread_of(metric: dict[str, Any]) -> float:
    value = metric.get("value")
    return metric["spread"] / value if value else float("inf")


def _default_name(subject: Subject) -> str:
    base = str(subject.source.model_id).rstrip("/").split("/")[-1]
    kinds = "-".join(str(step.get("kind")) for step in subject.recipe) or "base"
    return f"{base}-{kinds}"


def _base_model_record(source: Any) -> dict[str, Any]:
    """The base as results.json names it; a PEFT adapter merged into it is part of it (base + adapter was measured)."""
    record = {k: getattr(source, k, None) for k in ("model_id", "revision", "kind", "note")}
    adapter = getattr(source, "adapter", None)
    if adapter is not None:
        record["adapter"] = {"model_id": adapter.model_id, "revision": adapter.revision, "peft_type": adapter.peft_type}
    return record

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

import dataclasses
import datetime as _dt
import gc
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..artifacts import MANIFEST_NAME, bench_command, compress_command, read_manifest
from ..data import evaluation_token_ids
from ..environment import environment_info
from ..errors import HFCompressError
from ..loading import ModelSource, hub_reachable, load_model
from ..methods.registry import recipe_quantizes, recipe_sparsifies
from .memory import MB, PeakMemory, model_bytes
from .perplexity import score_windows
from .quality import DEFAULT_PROMPTS, check_lm_eval, greedy_generations, lm_eval_metrics
from .results import BenchmarkResult
from .size import checkpoint_stats, folder_size_bytes, linear_sparsity, model_stats
from .speed import measure_speed

logger = logging.getLogger(__name__)


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

    Example:
        >>> EvalSettings.from_dict({"max_tokens": 2048, "speed_runs": 3}).max_tokens
        2048
        >>> EvalSettings.from_dict({"max_token": 2048})
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: unknown evaluation setting 'max_token'; valid: batch_size, context, eval_data, generations, lm_eval_fewshot, lm_eval_include_path, lm_eval_limit, lm_eval_tasks, max_new_tokens, max_tokens, new_tokens, prompt_tokens, prompts, speed, speed_runs, stride, warmup
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

    def __post_init__(self) -> None:
        self.lm_eval_tasks = [t for t in (self.lm_eval_tasks or []) if t]
        self.prompts = list(self.prompts)
        if self.lm_eval_include_path is not None:
            self.lm_eval_include_path = str(self.lm_eval_include_path)
        for name in ("max_tokens", "context", "stride", "speed_runs", "prompt_tokens", "new_tokens", "batch_size", "max_new_tokens"):
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


@dataclass
class Subject:
    """A model to measure and what is known of it (what a saved variant's manifest says).

    Attributes:
        model, tokenizer: the model as it will be measured.
        source: where its base model came from (reloaded to measure the base).
        recipe: the recipe as ``[{kind, ...}]`` dicts (empty for a base model).
        manifest: the hfcompress.json content, when known.
        folder: the saved folder (for size on disk), None for a model only in memory.
        save: writes the model into a folder in its real format (size of an in-memory model); optional.
        load_peak: memory measured while loading it, when it was loaded here.
    """

    model: Any
    tokenizer: Any
    source: ModelSource
    recipe: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    save: Callable[[Path], Path] | None = None
    load_peak: PeakMemory | None = None

    @property
    def seed(self) -> int:
        return int(self.manifest.get("seed") or 0)

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.manifest.get("calibration")

    @property
    def save_format(self) -> str:
        return self.manifest.get("format") or "safetensors"

    @property
    def compress_seconds(self) -> float | None:
        steps = self.manifest.get("steps") or []
        if steps and all(isinstance(s.get("seconds"), (int, float)) for s in steps):
            return float(sum(s["seconds"] for s in steps))
        return None


def load_subject(where: str | os.PathLike) -> Subject:
    """Load a saved variant folder (or any model folder or Hub id) to be measured, as users load it.

    A folder of ours brings its manifest (recipe, base model, how it loads); any other model is measured as it is.

    Example:
        >>> import tempfile
        >>> from hfcompress.testing import build_tiny_model
        >>> load_subject(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")).recipe
        []
    """
    folder = Path(where).expanduser()
    manifest = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else {}
    if folder.exists() and not folder.is_dir():
        raise HFCompressError(f"{str(folder)!r} is a file; pass a saved variant folder or a model id")
    if folder.is_dir() and not (folder / "config.json").is_file() and not manifest:
        raise HFCompressError(f"{str(folder)!r} is not a model folder (no config.json); pass a saved variant or a model id")
    trust = bool((manifest.get("load") or {}).get("trust_remote_code", False))
    with PeakMemory() as peak:
        loaded = load_model(str(folder) if folder.exists() else str(where), trust_remote_code=trust)
    source = ModelSource.from_dict(manifest.get("base_model")) or loaded.source
    recipe = [dict(step) for step in manifest.get("recipe") or [] if isinstance(step, dict)]
    return Subject(loaded.model, loaded.tokenizer, source, recipe, manifest,
                   folder=folder if folder.is_dir() else None, load_peak=peak)


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


def base_cache_key(subject: Subject, settings: EvalSettings, base: Any = True) -> str:
    """The key under which a base model's measurements are cached: base id + data + settings + device."""
    import torch

    if base is True:
        src = subject.source
        ident: dict[str, Any] = {"model_id": src.model_id, "revision": src.revision, "kind": src.kind}
    elif isinstance(base, Subject):
        ident = {"model_id": base.source.model_id, "revision": base.source.revision, "kind": base.source.kind,
                 "recipe": base.recipe}
    else:
        ident = {"model_id": str(base)}
    options = {k: v for k, v in settings.to_dict().items() if k != "eval_data"}
    key = {**ident, "eval_data": [str(d) for d in settings.data_sets()], "device": "cuda" if torch.cuda.is_available() else "cpu",
           **options, "seed": subject.seed}
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
) -> BenchmarkResult:
    """Benchmark ``target`` (a saved variant folder, a model id, or a ``Subject``) against its base model.

    Args:
        target: a folder is loaded here (its loading memory is measured); a ``Subject`` is measured as it is.
        settings: what to measure and on which data (``EvalSettings()`` if None).
        base: True = reload the base from the recorded source; False = no base; a ``Subject`` or a path = that model.
        base_cache: a dict where the base's measurements are kept by key (base id + data + settings), so a grid
            measures the base once.
        name: the variant's name in results (default: the folder name or a name built from the recipe).
        reproduce: the command recorded to redo this result (default: a compress + bench command).
    """
    settings = settings or EvalSettings()
    check_lm_eval(settings.lm_eval_tasks)
    subject = target if isinstance(target, Subject) else load_subject(target)
    opts = {**{k: v for k, v in settings.to_dict().items() if k != "eval_data"}, "seed": subject.seed}
    eval_sets, skipped = _evaluation_sets(settings, subject.tokenizer)
    name = name or (subject.folder.name if subject.folder else None) or _default_name(subject)

    from tqdm.auto import tqdm

    stages = ["base", "variant", "compare"] if base is not False else ["variant", "compare"]
    bar = tqdm(stages, desc=f"benchmark {name}", unit="model", disable=not progress)
    base_meas: dict[str, Any] | None = None
    variant_meas: dict[str, Any] = {}
    for stage in bar:
        bar.set_postfix_str(stage)
        if stage == "base":
            base_meas = _measure_base(subject, base, base_cache, eval_sets, settings, opts, progress=progress)
        elif stage == "variant":
            with tempfile.TemporaryDirectory(prefix="hfcompress-size-") as tmp:
                folder = subject.folder
                if folder is None and subject.save is not None:
                    # No saved folder: measure size from a temp save in the variant's real format.
                    folder = subject.save(Path(tmp) / "variant")
                variant_meas = _measure(subject.model, subject.tokenizer, eval_sets, opts, folder=folder,
                                        load_peak=subject.load_peak, progress=progress, label="variant")

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
    steps = subject.manifest.get("steps") or []
    return BenchmarkResult(
        variant={"name": name, "recipe": list(subject.recipe), "format": subject.save_format,
                 "steps": [{k: s.get(k) for k in ("kind", "backend", "seconds")} for s in steps]},
        base_model={k: getattr(subject.source, k, None) for k in ("model_id", "revision", "kind", "note")},
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
        settings={k: v for k, v in opts.items() if k != "prompts"} | {
            "base_measured": base_meas is not None,
            "measured": "saved folder, reloaded" if subject.load_peak is not None else "in-memory model"},
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
                  opts: dict[str, Any], *, progress: bool) -> dict[str, Any]:
    key = base_cache_key(subject, settings, base)
    if cache is not None and key in cache:
        logger.info("base model numbers reused from the cache")
        return cache[key]
    load_peak = None
    if isinstance(base, Subject):
        model, tokenizer = base.model, base.tokenizer
    elif base is True or isinstance(base, (str, os.PathLike)):
        where = subject.source.load_argument() if base is True else base
        with PeakMemory() as load_peak:
            loaded = load_model(where)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        raise HFCompressError(f"base={base!r} is not valid; use True, False, a Subject or a model path")
    with tempfile.TemporaryDirectory(prefix="hfcompress-base-size-") as tmp:
        folder = _folder_of(model)
        if folder is None:
            folder = Path(tmp)
            model.save_pretrained(folder, safe_serialization=True)
        measured = _measure(model, tokenizer, eval_sets, opts, folder=folder, load_peak=load_peak, progress=progress, label="base")
    if not isinstance(base, Subject):
        del model, loaded
        gc.collect()
    if cache is not None:
        cache[key] = measured
    return measured


def _default_name(subject: Subject) -> str:
    base = str(subject.source.model_id).rstrip("/").split("/")[-1]
    kinds = "-".join(str(step.get("kind")) for step in subject.recipe) or "base"
    return f"{base}-{kinds}"

"""What a model card says, as data: the template's context and the Hub metadata, from a manifest and results.

Kept apart from rendering (``hfcompress.publish.card``), as huggingface_hub keeps ``repocard_data`` apart from
``repocard``: everything here is plain data a template or a test can read.

Example:
    >>> ctx = card_context({"base_model": {"kind": "hub", "model_id": "org/base"},
    ...                     "recipe": [{"kind": "rtn", "bits": 8, "group_size": "auto"}]})
    >>> ctx["relation"], ctx["tags_list"][:4]
    ('quantized', ['hfcompress', 'compressed', 'rtn', '8-bit'])
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from .._version import __version__
from ..artifacts import compress_command, read_manifest, read_results_json
from ..errors import HFCompressError
from ..methods.registry import presentation_for

QUANTIZED_BY_ENV = "HFCOMPRESS_QUANTIZED_BY"

# What the Hub accepts as base_model_relation (hub-docs model-cards: "adapter", "merge", "quantized", "finetune").
BASE_MODEL_RELATIONS = ("adapter", "merge", "quantized", "finetune")
# Licenses of base models we ship without a README to read them from.
_KNOWN_LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0", "HuggingFaceTB/SmolLM2-135M": "apache-2.0"}
# lm-eval task -> (Hub dataset it reads, task id): the only metrics with a real Hub dataset behind them.
_LM_EVAL_DATASETS = {
    "arc_easy": ("allenai/ai2_arc", "arc_easy"),
    "arc_challenge": ("allenai/ai2_arc", "arc_challenge"),
    "hellaswag": ("Rowan/hellaswag", "hellaswag"),
    "winogrande": ("allenai/winogrande", "winogrande"),
    "piqa": ("ybisk/piqa", "piqa"),
    "boolq": ("aps/super_glue", "boolq"),
    "lambada_openai": ("EleutherAI/lambada_openai", "lambada_openai"),
    "gsm8k": ("openai/gsm8k", "gsm8k"),
    "mmlu": ("cais/mmlu", "mmlu"),
}
# The measurements that are evaluation results (what the Hub's model-index is for), by name prefix.
EVALUATION_METRICS = ("perplexity", "kl_divergence", "lm_eval/", "task/")
# Metrics that describe a variant rather than rate it (more sparsity is neither better nor worse by itself).
_DESCRIPTIVE = {"sparsity"}
# hfcompress.bench's public evaluation sets -> the Hub datasets they read.
_EVAL_SET_DATASETS = {"wikitext2": "Salesforce/wikitext", "c4": "allenai/c4"}
_METRIC_LABELS = {
    "perplexity": "Perplexity",
    "size_on_disk": "Size on disk",
    "parameters": "Parameters",
    "bits_per_weight": "Bits per weight",
    "sparsity": "Sparsity",
    "next_token_agreement": "Next-token agreement with base",
    "kl_divergence": "KL divergence to base (mean)",
    "kl_divergence_p99": "KL divergence to base (99th percentile)",
    "task/last_word/acc": "Last-word accuracy (offline, LAMBADA-style)",
    "task/cloze/acc": "4-choice cloze accuracy (offline)",
    "prefill_tokens_per_s": "Prefill speed",
    "decode_tokens_per_s": "Decode speed (batch 1)",
    "time_to_first_token": "Time to first token",
    "peak_memory": "Peak memory",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def eval_result_entries(results: dict[str, Any] | None) -> list[Any]:
    """``EvalResultEntry`` objects for the ``.eval_results/`` files: only metrics measured on a real Hub
    benchmark dataset (lm-eval tasks); perplexity on the offline corpus has no Hub dataset and stays in the card.

    Example:
        >>> eval_result_entries({"metrics": {"lm_eval/arc_easy/acc": {"value": 0.41, "unit": "fraction"}}})[0].dataset_id
        'allenai/ai2_arc'
    """
    try:
        from huggingface_hub import EvalResultEntry
    except ImportError:  # huggingface_hub older than the .eval_results format
        return []
    entries = []
    for name, metric in ((results or {}).get("metrics") or {}).items():
        hub = _lm_eval_dataset(name)
        if hub is None or not isinstance(metric.get("value"), (int, float)):
            continue
        dataset_id, task_id = hub
        entries.append(EvalResultEntry(dataset_id=dataset_id, task_id=task_id, value=metric["value"],
                                       notes=f"{name.split('/')[-1]} via lm-eval, measured by hfcompress"))
    return entries




def card_context(
    manifest: dict[str, Any],
    results: dict[str, Any] | None = None,
    *,
    siblings: Sequence[dict[str, Any]] | None = None,
    repo_id: str | None = None,
    quantized_by: str | None = None,
    base_model: str | None = None,
    folder_name: str | None = None,
) -> dict[str, Any]:
    """Everything a card template can use (documented in ``templates/modelcard.md.j2``), as plain data.

    Example:
        >>> ctx = card_context({"base_model": {"kind": "hub", "model_id": "org/base"}, "recipe": [{"kind": "rtn", "bits": 8}]},
        ...                    {"metrics": {"perplexity": {"value": 12.0, "base": 11.7, "unit": "ppl", "higher_is_better": False}}})
        >>> ctx["relation"], ctx["metrics"][0]["label"], ctx["metrics"][0]["verdict"]
        ('quantized', 'Perplexity', 'worse')
    """
    base = manifest.get("base_model") or {}
    # The Hub id: given now, recorded (a local folder's inferred or given ``hub_id``), or the Hub model itself.
    base_id = base_model or base.get("hub_id") or (base.get("model_id") if base.get("kind") in ("hub", "embedded") else None)
    if base_id is not None and not _HUB_ID.match(base_id):
        raise HFCompressError(f"base_model {base_id!r} is not a Hub model id; pass one such as 'HuggingFaceTB/SmolLM2-135M'")
    recipe = list(manifest.get("recipe") or [])
    kinds = [step.get("kind", "?") for step in recipe]
    name = (repo_id.split("/")[-1] if repo_id else None) or (results or {}).get("variant", {}).get("name") or folder_name or "compressed-model"
    load = manifest.get("load") or {}
    fmt = manifest.get("format") or "safetensors"
    metrics = _metric_rows(results)
    hardware = (results or {}).get("environment", {}).get("hardware") or manifest.get("hardware") or {}
    versions = (results or {}).get("environment", {}).get("versions") or manifest.get("versions") or {}
    calibration = manifest.get("calibration")
    evaluation = ((results or {}).get("data") or {}).get("eval") or None
    quantized_by = quantized_by or os.environ.get(QUANTIZED_BY_ENV) or None
    context = {
        "model_name": name,
        "repo_id": repo_id,
        "model_ref": repo_id or f"path/to/{name}",
        "base_model_id": base_id,
        # A local path says nothing to readers and may leak a home folder: show its last part only.
        "base_model_display": base_id or (f"{Path(str(base.get('model_id'))).name} (a local folder)" if base.get("model_id") else "unknown"),
        "base_model_kind": base.get("kind"),
        "base_model_revision": base.get("revision"),
        "base_model_note": base.get("note"),
        "adapter": _adapter_context(base.get("adapter")),
        # No step at all: the base re-saved (e.g. a grid's reference row) is no derivative to declare.
        "relation": _relation(recipe) if base_id and kinds else None,
        "recipe_steps": [presentation_for(step.get("kind")).sentence(step) for step in recipe],
        "recipe_yaml": _recipe_yaml(recipe),
        "step_details": _step_details(manifest),
        "format": fmt,
        "load_requires": list(load.get("requires") or []),
        "trust_remote_code": bool(load.get("trust_remote_code")),
        "auto_class": load.get("auto_class") or "AutoModelForCausalLM",
        "vllm": fmt in ("compressed-tensors", "safetensors", "gptq", "awq") and not load.get("trust_remote_code"),
        "gguf_file": load.get("gguf_file"),
        "gguf_quant": next((step.get("quant") for step in recipe if step.get("kind") == "gguf"), None),
        "calibration": calibration,
        "calibration_text": _calibration_text(calibration),
        "evaluation": evaluation,
        "evaluation_text": _evaluation_text(evaluation, metrics),
        "has_results": results is not None,
        "metrics": metrics,
        "generations": list((results or {}).get("generations") or [])[:3],
        "skipped": list((results or {}).get("skipped") or []),
        "hardware": hardware,
        "hardware_text": _hardware_text(hardware),
        "versions": dict(sorted(versions.items())),
        "seed": (results or {}).get("seed", manifest.get("seed")),
        "reproduce": (results or {}).get("reproduce") or compress_command(base, name, evaluate=results is not None),
        "limits": _limits(kinds, recipe, metrics, results, base, fmt),
        "siblings": [s for s in (siblings or []) if s.get("repo_id") != repo_id],
        "quantized_by": quantized_by,
        "hfcompress_version": manifest.get("hfcompress_version") or __version__,
        "created": manifest.get("created"),
        "tags_list": _tags(recipe, fmt),
        "license_id": _base_license(base, base_id),
        "hub_datasets": _hub_datasets(calibration, evaluation, results),
    }
    return context


def card_metadata(context: dict[str, Any]) -> Any:
    """The ``ModelCardData`` (the YAML block) built from a ``card_context`` dict.

    ``model-index`` holds evaluation results only (perplexity, KL divergence to the base, task accuracies), each on
    the dataset it was measured on; size, speed, memory and time are not evaluations and stay in the card's table.

    Example:
        >>> ctx = card_context({"base_model": {"kind": "hub", "model_id": "org/base"}, "recipe": [{"kind": "rtn", "bits": 8}]},
        ...                    {"metrics": {"perplexity": {"value": 12.0, "unit": "ppl", "dataset": "held-out text"},
        ...                                 "size_on_disk": {"value": 100.0, "unit": "MB"}}})
        >>> [r.metric_type for r in card_metadata(ctx).eval_results]
        ['perplexity']
    """
    from huggingface_hub import EvalResult, ModelCardData

    extra: dict[str, Any] = {}
    if context["relation"]:
        extra["base_model_relation"] = context["relation"]
    if context["quantized_by"]:
        extra["quantized_by"] = context["quantized_by"]
    eval_results = []
    for row in context["metrics"]:
        if not isinstance(row["value"], (int, float)) or not row["name"].startswith(EVALUATION_METRICS):
            continue
        dataset_type, dataset_name = _model_index_dataset(row, context)
        eval_results.append(EvalResult(
            task_type="text-generation",
            task_name="Text Generation",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            metric_type=row["name"],
            metric_name=f"{row['label']} ({row['unit']})" if row["unit"] else row["label"],
            metric_value=float(f"{row['value']:.6g}") if isinstance(row["value"], float) else row["value"],
            metric_config=row.get("config"),
            verified=False,
        ))
    return ModelCardData(
        base_model=context["base_model_id"],
        license=context["license_id"],
        # A GGUF repo is llama.cpp's; the Hub recognises it from the file (and the gguf tag).
        library_name=None if context.get("gguf_file") else "transformers",
        pipeline_tag="text-generation",
        tags=context["tags_list"],
        datasets=context["hub_datasets"] or None,
        model_name=context["model_name"] if eval_results else None,
        eval_results=eval_results or None,
        **extra,
    )


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _relation(recipe: Sequence[dict[str, Any]]) -> str:
    # The Hub's model tree knows adapter/merge/quantized/finetune. Any quantized step makes the weights a
    # quantization of the base; pruning, low rank and distillation change the weights themselves, which the
    # Hub's vocabulary calls a fine-tune (the tags say which method it really was).
    relations = {presentation_for(step.get("kind")).relation for step in recipe}
    return "quantized" if "quantized" in relations else sorted(relations)[0] if relations else "finetune"


def _adapter_context(adapter: Any) -> dict[str, Any] | None:
    # The PEFT adapter merged into the base before compression: its Hub id (a link) or a local folder's name only.
    if not isinstance(adapter, dict) or not adapter.get("model_id"):
        return None
    link = adapter.get("hub_id") or (adapter.get("model_id") if adapter.get("kind") == "hub" else None)
    link = link if isinstance(link, str) and _HUB_ID.match(link) else None
    return {"display": link or f"{Path(str(adapter['model_id'])).name} (a local folder)", "link": link,
            "revision": adapter.get("revision"), "peft_type": adapter.get("peft_type") or "PEFT"}


def _tags(recipe: Sequence[dict[str, Any]], fmt: str) -> list[str]:
    tags = ["hfcompress", "compressed"]
    for step in recipe:
        tags += presentation_for(step.get("kind")).tags(step)
    if fmt and fmt != "safetensors":
        tags.append(fmt)
    tags.append("safetensors")
    return list(dict.fromkeys(tags))


def _step_details(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step's backend, time, what it removed and, where a training step measured it, what it recovered.

    Example:
        >>> step = {"kind": "distill", "seconds": 9.5, "parameters_before": 2_000_000, "parameters_after": 2_000_000,
        ...         "info": {"eval_before": {"perplexity": 31.0, "kl": 0.9}, "eval_after": {"perplexity": 22.5, "kl": 0.31}}}
        >>> d = _step_details({"steps": [step]})[0]
        >>> d["parameters"], d["quality"]
        ('2.00 M', 'perplexity 31.00 -> 22.50, KL to the base 0.900 -> 0.310')
    """
    out = []
    for step in manifest.get("steps") or []:
        versions = step.get("backend_versions") or {}
        info = {k: v for k, v in (step.get("info") or {}).items() if isinstance(v, (int, float, str, bool))}
        out.append({
            "kind": step.get("kind"),
            "backend": step.get("backend"),
            "backend_versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
            "seconds": step.get("seconds"),
            "parameters": _parameter_change(step.get("parameters_before"), step.get("parameters_after")),
            "quality": _quality_change(step.get("info") or {}),
            "info": info,
        })
    return out


def _parameter_change(before: int | None, after: int | None) -> str:
    if not after:
        return ""
    if not before or before == after:
        return _fmt(after, "count")
    return f"{_fmt(before, 'count')} -> {_fmt(after, 'count')} ({(after - before) / before:+.1%})"


def _quality_change(info: dict[str, Any]) -> str:
    """A training step's own held-out measurement before and after it: the cost of the steps before it, and what it won
    back (KL to the base: the teacher, when the base teaches)."""
    before, after = info.get("eval_before") or {}, info.get("eval_after") or {}
    parts = []
    if isinstance(before.get("perplexity"), (int, float)) and isinstance(after.get("perplexity"), (int, float)):
        parts.append(f"perplexity {before['perplexity']:.2f} -> {after['perplexity']:.2f}")
    if isinstance(before.get("kl"), (int, float)) and isinstance(after.get("kl"), (int, float)):
        parts.append(f"KL to the base {before['kl']:.3f} -> {after['kl']:.3f}")
    return ", ".join(parts)


def _recipe_yaml(recipe: Sequence[dict[str, Any]]) -> str:
    steps = []
    for step in recipe:
        options = dict(step)
        steps.append({options.pop("kind", "?"): options})
    return yaml.safe_dump({"recipe": steps}, sort_keys=False).rstrip()


def _metric_rows(results: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    metrics = (results or {}).get("metrics") or {}
    order = {name: i for i, name in enumerate(_METRIC_LABELS)}
    # Batched decode (any batch size) sits right after batch-1 decode.
    rank = {n: order["decode_tokens_per_s"] + 0.5 for n in metrics if n.startswith("decode_tokens_per_s_batch")}
    for name in sorted(metrics, key=lambda n: (rank.get(n, order.get(n, len(order))), n)):
        metric = metrics[name] or {}
        value, base, ratio = metric.get("value"), metric.get("base"), metric.get("ratio")
        unit = metric.get("unit") or ""
        if ratio is None and isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
            ratio = value / base
        higher = metric.get("higher_is_better")
        if name in _DESCRIPTIVE:
            higher, ratio = None, None  # says what the variant is, not whether it got better
        verdict = ""
        if isinstance(ratio, (int, float)) and higher is not None and abs(ratio - 1) > 0.01:
            verdict = "better" if (ratio > 1) == bool(higher) else "worse"
        label = _METRIC_LABELS.get(name) or _label(name)
        details = []
        if metric.get("tokens"):
            details.append(f"{metric['tokens']} tokens")
        if metric.get("engine"):
            details.append(f"engine {metric['engine']}")
        if metric.get("reliable") is False:
            details.append("spread stayed wide: not a result")
        if metric.get("context"):
            details.append(f"window {metric['context']}")
        if metric.get("stride"):
            details.append(f"stride {metric['stride']}")
        if metric.get("spread") is not None:
            details.append(f"spread {_fmt(metric['spread'], unit)} ({metric.get('spread_kind', 'iqr')})")
        if metric.get("stderr") is not None:
            details.append(f"± {_fmt(metric['stderr'], unit)}")
        rows.append({
            "name": name,
            "label": label,
            "unit": unit,
            "value": value,
            "base": base,
            "ratio": ratio,
            "value_text": _fmt(value, unit),
            "base_text": _fmt(base, unit),
            "ratio_text": f"×{ratio:.3f}" if isinstance(ratio, (int, float)) else "-",
            "direction": "" if higher is None else ("higher is better" if higher else "lower is better"),
            "verdict": verdict,
            "details": ", ".join(details),
            "dataset": metric.get("dataset"),
            "config": ", ".join(details) or None,
        })
    return rows


def _label(name: str) -> str:
    # "perplexity/wikitext2" -> "Perplexity (wikitext2)"; "lm_eval/arc_easy/acc" -> "arc_easy acc (lm-eval)"
    batched = re.fullmatch(r"decode_tokens_per_s_batch(\d+)", name)
    if batched:
        return f"Decode speed (batch {batched.group(1)})"
    head, _, rest = name.partition("/")
    if head == "lm_eval" and rest:
        return f"{rest.replace('/', ' ')} (lm-eval)"
    if head in _METRIC_LABELS and rest:
        return f"{_METRIC_LABELS[head]} ({rest})"
    return name.replace("_", " ")


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if unit == "count" and isinstance(value, (int, float)):
        return f"{value / 1e6:,.2f} M" if value >= 1e5 else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if unit == "fraction":
            return f"{value:.3f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
    return str(value)


def _model_index_dataset(row: dict[str, Any], context: dict[str, Any]) -> tuple[str, str]:
    hub = _lm_eval_dataset(row["name"])
    if hub:
        return hub[0], hub[0]
    if row.get("dataset"):
        # Not a Hub dataset id (no slash): the held-out text the benchmark read, named for people.
        return "held-out-text", str(row["dataset"])
    return "hfcompress-benchmark", f"hfcompress benchmark on {context['hardware_text'] or 'this hardware'}"


def _lm_eval_dataset(name: str) -> tuple[str, str] | None:
    parts = name.split("/")
    if len(parts) >= 2 and parts[0] == "lm_eval":
        return _LM_EVAL_DATASETS.get(parts[1])
    return None


def _hub_dataset_from(description: Any) -> str | None:
    # hfcompress.data describes Hub datasets as "datasets <id>[:config] (<split>)"; everything else
    # (the offline corpus, files, lists of strings) is not a Hub dataset and stays out of the metadata.
    match = re.match(r"^datasets (\S+)", str(description or ""))
    if not match:
        return None
    dataset_id = match.group(1).split(":")[0]
    return dataset_id if re.fullmatch(r"[\w.-]+(/[\w.-]+)?", dataset_id) else None


def _hub_datasets(calibration: Any, evaluation: Any, results: dict[str, Any] | None) -> list[str]:
    found = []
    if isinstance(calibration, dict):
        found.append(_hub_dataset_from(calibration.get("description")))
    if isinstance(evaluation, dict):
        found.append(_hub_dataset_from(evaluation.get("description") or evaluation.get("source")))
        for eval_set in evaluation.get("sets") or []:
            found.append(_EVAL_SET_DATASETS.get(str(eval_set.get("name"))) or _hub_dataset_from(eval_set.get("description")))
    for name in ((results or {}).get("metrics") or {}):
        hub = _lm_eval_dataset(name)
        found.append(hub[0] if hub else None)
    return list(dict.fromkeys(d for d in found if d))


def _calibration_text(calibration: Any) -> str | None:
    if not isinstance(calibration, dict):
        return None
    parts = [str(calibration.get("description") or calibration.get("source") or "unknown text")]
    if calibration.get("num_samples") and calibration.get("seq_len"):
        parts.append(f"{calibration['num_samples']} samples x {calibration['seq_len']} tokens")
    if calibration.get("seed") is not None:
        parts.append(f"seed {calibration['seed']}")
    return ", ".join(parts)


def _evaluation_text(evaluation: Any, metrics: list[dict[str, Any]]) -> str | None:
    if isinstance(evaluation, dict) and evaluation.get("sets"):
        # hfcompress.bench: {"sets": [{"name", "description", "tokens"}], "context", "stride", ...}
        parts = []
        for eval_set in evaluation["sets"]:
            text = str(eval_set.get("description") or eval_set.get("name"))
            if eval_set.get("tokens"):
                text += f" ({eval_set['tokens']} tokens)"
            parts.append(text)
        return "; ".join(parts)
    if isinstance(evaluation, dict):
        text = evaluation.get("description") or evaluation.get("source")
        tokens = evaluation.get("tokens")
        if text:
            return f"{text}{f', {tokens} tokens' if tokens else ''}"
    for row in metrics:
        if row.get("dataset"):
            return str(row["dataset"])
    return None


def _hardware_text(hardware: dict[str, Any]) -> str:
    if not hardware:
        return ""
    if hardware.get("gpu"):
        gpu = hardware["gpu"]
        return f"{gpu.get('name')} ({gpu.get('memory_gb')} GB), {hardware.get('cpu', 'CPU')}"
    threads = f", {hardware['torch_threads']} torch threads" if hardware.get("torch_threads") else ""
    memory = f", {hardware['memory_gb']} GB RAM" if hardware.get("memory_gb") else ""
    return f"CPU only: {hardware.get('cpu_count', '?')} x {hardware.get('cpu', 'CPU')}{threads}{memory}"


def _limits(kinds: Sequence[str], recipe: Sequence[dict[str, Any]], metrics: list[dict[str, Any]],
            results: dict[str, Any] | None, base: dict[str, Any], fmt: str) -> list[str]:
    limits = []
    if results is None:
        limits.append("This variant was not benchmarked: there are no measured numbers for it. Run "
                      "`hfcompress bench` (or `cm.evaluate()`) before trusting it.")
    worse = [f"{row['label']} ({row['value_text']} vs {row['base_text']} {row['unit']}, {row['ratio_text']})"
             for row in metrics if row["verdict"] == "worse"]
    if worse:
        limits.append("Worse than the base model: " + "; ".join(worse) + ".")
    if results is not None:
        limits.append("The numbers cover only the held-out text named above and the hardware named above; "
                      "other text, tasks, prompt lengths or machines can behave differently. Perplexity does not "
                      "measure instruction following, safety or factuality.")
    for skipped in (results or {}).get("skipped") or []:
        limits.append(f"Not measured: {skipped.get('metric')} ({skipped.get('reason')}).")
    if base.get("note"):
        limits.append(f"Base model: {base['note']}. The 'base' numbers are of that model, not of the original upload.")
    for step in recipe:
        limits += presentation_for(step.get("kind")).limits(step, kinds)
    limits = list(dict.fromkeys(limits))
    return limits


def _base_license(base: dict[str, Any], base_id: str | None) -> str | None:
    # Read the license from the base's own card when a copy is on disk (a folder, or the Hub cache).
    candidates = []
    if base.get("path"):
        candidates.append(Path(str(base["path"])) / "README.md")
    if base_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base_id, "README.md", revision=base.get("revision"))
            if isinstance(cached, str):
                candidates.append(Path(cached))
        except Exception:
            pass
    for path in candidates:
        if path.is_file():
            license_id = _license_from_readme(path)
            if license_id:
                return license_id
    return _KNOWN_LICENSES.get(base_id or "")


def _license_from_readme(path: Path) -> str | None:
    from huggingface_hub import metadata_load

    try:
        meta = metadata_load(path) or {}
    except Exception:
        return None
    license_id = meta.get("license")
    return str(license_id) if isinstance(license_id, str) else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def sibling_entry(folder: str | os.PathLike, repo_id: str) -> dict[str, Any]:
    """A ``siblings`` item for a card: the repo id, the variant name, its recipe in short, and key numbers.

    Example:
        >>> sibling_entry("runs/demo/gptq-4bit", "me/SmolLM2-135M-Instruct-gptq-4bit")["repo_id"]   # doctest: +SKIP
        'me/SmolLM2-135M-Instruct-gptq-4bit'
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    results = read_results_json(folder)
    recipe = manifest.get("recipe") or []
    summary = " + ".join(presentation_for(step.get("kind")).summary(step) for step in recipe) or "no compression"
    numbers = []
    for row in _metric_rows(results):
        if row["name"] in ("perplexity", "size_on_disk") and row["value"] is not None:
            numbers.append(f"{row['label'].lower()} {row['value_text']} {row['unit']}, {row['ratio_text']} of base")
    return {"repo_id": repo_id, "name": repo_id.split("/")[-1], "summary": summary, "numbers": "; ".join(numbers)}

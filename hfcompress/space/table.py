"""What the app shows of a ``VariantSet``: the comparison table, the trade-off plots, and each variant's page.

Example:
    >>> vs = VariantSet("runs/x", [Variant("tiny-rtn8", {"variant": {"recipe": [{"kind": "rtn", "bits": 8}]},
    ...     "metrics": {"perplexity": {"value": 12.0, "base": 11.0, "unit": "ppl"}}})])
    >>> [(r["variant"], r["method"], r["perplexity"]) for r in table_rows(vs)]
    [('base model (base)', 'none', 11.0), ('tiny-rtn8', 'RTN 8-bit', 12.0)]
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any, Callable, Sequence

import yaml

from ..bench.report import pareto_front
from ..errors import HFCompressError
from ..methods.registry import families
from ..recipe import compact_steps
from .variants import BASE_FAMILY, Variant, VariantSet

# Table columns: (value header, metric name in results.json, ratio header or None where a ratio means nothing:
# KL is already a comparison with the base, and accuracies read better side by side than as quotients).
_METRIC_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("size (MB)", "size_on_disk", "size ×"),
    ("params (M)", "parameters", "params ×"),
    ("perplexity", "perplexity", "ppl ×"),
    ("KL (nats)", "kl_divergence", None),
    ("last-word acc", "task/last_word/acc", None),
    ("cloze acc", "task/cloze/acc", None),
    ("decode tok/s", "decode_tokens_per_s", "speed ×"),
    ("memory (MB)", "peak_memory", "memory ×"),
    # What GQA conversion shrinks (and nothing else does): the cache grows with every token of context.
    ("KV cache (KB/token)", "kv_cache_bytes_per_token", "KV ×"),
)
TABLE_COLUMNS = ("variant", "method", "family", "engine", "bits", "sparsity") + tuple(
    name for header, _, ratio in _METRIC_COLUMNS for name in (header, ratio) if name is not None
)


def _to_display(metric: str, value: Any, unit: str | None) -> float | None:
    """Convert a measurement to the table's unit (MB, millions of parameters)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(float(value)):
        return None
    value = float(value)
    unit = (unit or "").lower()
    if metric in ("size_on_disk", "peak_memory"):
        scale = {"b": 1e-6, "bytes": 1e-6, "kb": 1e-3, "mb": 1.0, "gb": 1e3, "mib": 1.048576, "gib": 1073.741824}
        return value * scale.get(unit, 1.0)
    if metric == "parameters":
        return value / 1e6
    if metric == "kv_cache_bytes_per_token":
        return value / 1e3
    return value


def _ratio(entry: dict[str, Any]) -> float | None:
    ratio = entry.get("ratio")
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio):
        return float(ratio)
    value, base = entry.get("value"), entry.get("base")
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
        return float(value) / float(base)
    return None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_DIGITS = {"size_on_disk": 1, "parameters": 2, "perplexity": 2, "kl_divergence": 4, "decode_tokens_per_s": 1, "peak_memory": 1,
           "task/last_word/acc": 3, "task/cloze/acc": 3, "kv_cache_bytes_per_token": 2}


def base_label(variants: VariantSet, engine: str = "transformers") -> str:
    """The base model's row name: ``<name> (base)``, or ``<name> F16 (base, llama.cpp)`` for GGUF variants' base."""
    if engine == "llama.cpp" and any(v.engine != "llama.cpp" for v in variants.variants):
        return f"{variants.base_name} F16 (base, llama.cpp)"
    return f"{variants.base_name} (base)"


def table_rows(variants: VariantSet) -> list[dict[str, Any]]:
    """One dict per row, keyed by ``TABLE_COLUMNS``: per engine its base model first, then the variants it measured.

    A base row takes each metric's ``base`` value (the median over that engine's variants, since each variant's run
    measured the base again); a variant's ratio is the one measured in its own run. GGUF variants are measured by
    llama.cpp against the base converted to F16, so they get their own base row: engines are never mixed.

    Example:
        >>> table_rows(VariantSet("runs/x"))[0]["family"]
        'base'
    """
    engines = list(dict.fromkeys(v.engine for v in variants.variants)) or ["transformers"]
    rows: list[dict[str, Any]] = []
    for engine in sorted(engines, key=lambda e: e != "transformers"):
        measured = [v for v in variants.variants if v.engine == engine]
        rows.append(_base_row(measured, base_label(variants, engine), engine))
        rows += [_variant_row(v) for v in measured]
    return rows


def _base_row(measured: list[Variant], label: str, engine: str) -> dict[str, Any]:
    subset = VariantSet("", measured)
    bits = median_base(subset, "bits_per_weight_linear") or median_base(subset, "bits_per_weight")
    base: dict[str, Any] = {"variant": label, "method": "none", "family": BASE_FAMILY, "engine": engine,
                            "bits": round(bits, 2) if bits is not None else None,
                            "sparsity": _round(median_base(subset, "sparsity"), 3)}
    for header, metric, ratio_header in _METRIC_COLUMNS:
        unit = next((v.metric(metric).get("unit") for v in measured if v.metric(metric)), None)
        base[header] = _round(_to_display(metric, median_base(subset, metric), unit), _DIGITS[metric])
        if ratio_header:
            base[ratio_header] = 1.0 if base[header] is not None else None
    return base


def _variant_row(variant: Variant) -> dict[str, Any]:
    # Bits of the Linear weights (what "4-bit" means); the whole-model figure also counts embeddings.
    bits = variant.metric("bits_per_weight_linear").get("value")
    if bits is None:
        bits = variant.metric("bits_per_weight").get("value")
    if bits is None:
        bits = next((s.get("bits") for s in variant.recipe if s.get("bits") is not None), None)
    sparsity = variant.metric("sparsity").get("value")
    row: dict[str, Any] = {
        "variant": variant.name,
        "method": variant.method,
        "family": ", ".join(variant.families),
        "engine": variant.engine,
        "bits": round(float(bits), 2) if isinstance(bits, (int, float)) else None,
        "sparsity": round(float(sparsity), 3) if isinstance(sparsity, (int, float)) else None,
    }
    for header, metric, ratio_header in _METRIC_COLUMNS:
        entry = variant.metric(metric)
        row[header] = _round(_to_display(metric, entry.get("value"), entry.get("unit")), _DIGITS[metric])
        if ratio_header:
            row[ratio_header] = _round(_ratio(entry), 3)
        if entry.get("reliable") is False and row[header] is not None:
            row.setdefault("_unreliable", []).append(header)
    return row


def median_base(variants: VariantSet, metric: str) -> float | None:
    """The median over variants of a metric's base value (each variant's run measured the base again)."""
    values = [v.metric(metric).get("base") for v in variants.variants]
    values = [float(x) for x in values if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)]
    return statistics.median(values) if values else None


def variant_table(variants: VariantSet, families: Sequence[str] | None = None, sort_by: str | None = None,
                  descending: bool = False) -> Any:
    """The comparison table as a pandas DataFrame: base model first, then the variants of ``families``.

    ``sort_by`` names a column; the base row stays on top and missing values sort last.

    Example:
        >>> variant_table(vs, families=["quantization"], sort_by="perplexity")   # doctest: +SKIP
    """
    import pandas as pd

    rows = table_rows(variants)
    bases = [r for r in rows if r["family"] == BASE_FAMILY]
    rest = [r for r in rows if r["family"] != BASE_FAMILY]
    if families is not None:
        wanted = set(families)
        rest = [r for r in rest if wanted & set(r["family"].split(", "))]
    if sort_by:
        if sort_by not in TABLE_COLUMNS:
            raise HFCompressError(f"cannot sort by {sort_by!r}; use one of {', '.join(TABLE_COLUMNS)}")
        present = [r for r in rest if r[sort_by] is not None]
        missing = [r for r in rest if r[sort_by] is None]
        present.sort(key=lambda r: r[sort_by], reverse=descending)
        rest = present + missing
    return pd.DataFrame([*bases, *rest], columns=list(TABLE_COLUMNS))


# Which way each ratio column is good: True = a higher ratio is better.
_HIGHER_IS_BETTER = {"size ×": False, "params ×": False, "ppl ×": False, "speed ×": True, "memory ×": False, "KV ×": False}


def styled_table(table: Any) -> Any:
    """``table`` (from ``variant_table``) as a pandas Styler: units kept in headers, ratios as ``0.42×``
    in green when better than the base and red when worse (by more than 2%), the base row in bold.

    Example:
        >>> gr.Dataframe(styled_table(variant_table(vs)))          # doctest: +SKIP
    """
    def ratio_color(column: str) -> Callable[[Any], str]:
        def color(value: Any) -> str:
            if not _finite(value) or abs(value - 1) <= 0.02:
                return ""
            better = (value > 1) == _HIGHER_IS_BETTER[column]
            return "color: #15803d; font-weight: 600" if better else "color: #b91c1c"
        return color

    formats: dict[str, Any] = {c: "{:.2f}×" for c in _HIGHER_IS_BETTER}
    formats.update({"bits": "{:g}", "sparsity": "{:.0%}", "size (MB)": "{:,.1f}", "params (M)": "{:,.2f}",
                    "perplexity": "{:,.2f}", "KL (nats)": "{:.4f}", "last-word acc": "{:.2f}", "cloze acc": "{:.2f}",
                    "decode tok/s": "{:,.1f}", "memory (MB)": "{:,.1f}", "KV cache (KB/token)": "{:,.2f}"})
    styler = table.style.format({k: v for k, v in formats.items() if k in table.columns}, na_rep="–")
    for column in _HIGHER_IS_BETTER:
        if column in table.columns:
            styler = styler.map(ratio_color(column), subset=[column])
    if len(table):
        styler = styler.apply(lambda row: ["font-weight: 700" if row["family"] == BASE_FAMILY else "" for _ in row], axis=1)
    return styler


_FAMILY_COLORS = {BASE_FAMILY: "#111827", "other": "#6b7280"}
# Families take these colours in registration order (a new family gets the next one, never a crash).
_PALETTE = ("#f59e0b", "#3b82f6", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9", "#d946ef", "#84cc16", "#f97316", "#14b8a6")


def family_color(family: str) -> str:
    """The plot colour of a method family."""
    if family in _FAMILY_COLORS:
        return _FAMILY_COLORS[family]
    known = families()
    return _PALETTE[known.index(family) % len(_PALETTE)] if family in known else _FAMILY_COLORS["other"]


def tradeoff_figure(table: Any, x: str, y: str = "perplexity", *, minimize_x: bool = True, title: str = "") -> Any:
    """A plotly scatter of ``table`` (from ``variant_table``) with the Pareto front drawn; hover names the variant.

    Example:
        >>> fig = tradeoff_figure(variant_table(vs), "size (MB)", title="Size vs perplexity")   # doctest: +SKIP
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    rows = [r for r in table.to_dict("records") if _finite(r.get(x)) and _finite(r.get(y))]
    if not rows:
        fig.add_annotation(text=f"no variant has both {x} and {y} measured", showarrow=False, font={"size": 15})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    front = pareto_front([(r[x], r[y]) for r in rows], maximize_x=not minimize_x)
    on_front = set(front)
    by_family: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        family = row["family"].split(", ")[0]
        by_family.setdefault(family, []).append(i)
    if len(front) > 1:
        fig.add_trace(go.Scatter(
            x=[rows[i][x] for i in front], y=[rows[i][y] for i in front], mode="lines",
            line={"shape": "hv" if minimize_x else "vh", "dash": "dot", "color": "#9ca3af", "width": 2},
            name="Pareto front", hoverinfo="skip",
        ))
    for family in [BASE_FAMILY, *families(), "other"]:
        idx = by_family.get(family)
        if not idx:
            continue
        fig.add_trace(go.Scatter(
            x=[rows[i][x] for i in idx], y=[rows[i][y] for i in idx], mode="markers+text",
            # Names printed only for the Pareto-optimal points (the ones worth choosing); hover names every point.
            name=family, text=[_short(rows[i]["variant"]) if i in on_front else "" for i in idx], textposition="top center",
            cliponaxis=False,
            textfont={"size": 11, "color": "#374151"},
            marker={
                "size": [16 if i in on_front else 11 for i in idx],
                "color": family_color(family),
                # Each engine its shape (the hover names it): a llama.cpp figure is never read as a transformers one.
                "symbol": [("star" if family == BASE_FAMILY else "circle") + ("-open-dot" if rows[i].get("engine") == "llama.cpp" else "")
                           for i in idx],
                "line": {"width": [2.5 if i in on_front else 0 for i in idx], "color": "#111827"},
            },
            customdata=[[rows[i]["variant"], rows[i]["method"], "yes" if i in on_front else "no", rows[i].get("engine") or "transformers"]
                        for i in idx],
            hovertemplate=(f"<b>%{{customdata[0]}}</b><br>%{{customdata[1]}}<br>{x}: %{{x}}<br>{y}: %{{y}}"
                           "<br>measured by %{customdata[3]}<br>on the Pareto front: %{customdata[2]}<extra></extra>"),
        ))
    ys = [rows[i][y] for i in range(len(rows))]
    log_y = bool(ys) and min(ys) > 0 and max(ys) / min(ys) > 20
    fig.update_layout(
        title={"text": title, "x": 0.02}, template="plotly_white", height=430, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.18}, hoverlabel={"bgcolor": "white"},
    )
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=f"{y} (lower is better{', log scale' if log_y else ''})", type="log" if log_y else "linear")
    return fig


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def strip_yaml_header(card: str) -> str:
    """The card's Markdown body without its ``---`` YAML metadata block.

    Example:
        >>> strip_yaml_header("---\\nlicense: mit\\n---\\n# Title\\n")
        '# Title\\n'
    """
    match = re.match(r"\A---\s*\n.*?\n---\s*\n", card, flags=re.S)
    return card[match.end():].lstrip("\n") if match else card


def load_snippet(variant: Variant) -> str:
    """Python that loads ``variant`` with plain transformers (what a user copies).

    Example:
        >>> print(load_snippet(Variant("x", repo_id="me/x")).splitlines()[-1])
        model = AutoModelForCausalLM.from_pretrained("me/x")
    """
    requires = [r for r in ((variant.manifest or {}).get("load") or {}).get("requires", []) if r != "transformers"]
    trust = bool(((variant.manifest or {}).get("load") or {}).get("trust_remote_code"))
    where = variant.repo_id or (str(variant.folder) if variant.folder else variant.name)
    extra = ", trust_remote_code=True" if trust else ""
    lines = [f"# pip install transformers {' '.join(requires)}".rstrip()]
    lines += [
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
        f'model = AutoModelForCausalLM.from_pretrained("{where}"{extra})',
    ]
    return "\n".join(lines)


def variant_page(variants: VariantSet, name: str) -> tuple[str, str, str, str]:
    """(card Markdown without YAML, recipe YAML, load snippet, measurements Markdown) of one variant.

    Example:
        >>> card, recipe, snippet, numbers = variant_page(vs, "gptq-4bit")   # doctest: +SKIP
    """
    if not name:
        return "Choose a variant above.", "", "", ""
    base_label = f"{variants.base_name} (base)"
    if name == base_label:
        base = variants.base
        body = (f"# {variants.base_name}\n\nThe uncompressed base model every variant is compared with"
                f" (`{base.get('model_id', '?')}`, loaded as {base.get('kind', '?')}).")
        snippet = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                   f'model = AutoModelForCausalLM.from_pretrained("{base.get("model_id", "?")}")')
        return body, "# no compression", snippet, ""
    variant = variants.get(name)
    card = strip_yaml_header(variant.card) if variant.card else f"# {variant.name}\n\n*This variant has no README.md card.*"
    recipe = variant.recipe_yaml or _recipe_yaml(variant.recipe)
    return card, recipe, load_snippet(variant), _measurements_markdown(variant)


def _recipe_yaml(recipe: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(compact_steps(recipe), sort_keys=False)


def _measurements_markdown(variant: Variant) -> str:
    metrics = (variant.results or {}).get("metrics") or {}
    if not metrics:
        return "*No measurements.*"
    lines = ["| metric | variant | base | ratio |", "|---|---:|---:|---:|"]
    for name, entry in metrics.items():
        if not isinstance(entry, dict):
            continue
        unit = entry.get("unit") or ""
        unit = "" if unit in ("count", "ppl", "fraction", "score") else f" {unit}"
        ratio = _ratio(entry)
        lines.append(f"| {name} | {_fmt(entry.get('value'))}{unit} | {_fmt(entry.get('base'))}{unit if entry.get('base') is not None else ''} "
                     f"| {'' if ratio is None else f'{ratio:.3g}×'} |")
    env = ((variant.results or {}).get("environment") or {}).get("hardware") or {}
    if env:
        lines.append("")
        lines.append("Measured on: " + ", ".join(f"{k}: {v}" for k, v in list(env.items())[:4]))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)

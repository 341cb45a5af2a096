"""One comparison of many variants of one base model: a table (Markdown and CSV, base first) and plots.

Reads results.json dicts (see ``load_results``); a missing metric shows as an empty cell, never an error.

Example:
    >>> comparison_rows([])
    []
"""

from __future__ import annotations

import csv
import io
import os
import re
import uuid
from pathlib import Path
from typing import Any, Sequence

from ..atomic import write_text_atomic
from ..methods.registry import presentation_for, recipe_label

# (column title, metric, field, format); field "value" or "ratio".
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("size (MB)", "size_on_disk", "value", "{:.1f}"),
    ("size ratio", "size_on_disk", "ratio", "{:.3f}"),
    ("params (M)", "parameters", "value", "{:.1f}"),
    ("bits/weight", "bits_per_weight", "value", "{:.2f}"),
    ("bits/weight (layers)", "bits_per_weight_linear", "value", "{:.2f}"),
    ("sparsity", "sparsity", "value", "{:.3f}"),
    ("perplexity", "perplexity", "value", "{:.2f}"),
    ("ppl ratio", "perplexity", "ratio", "{:.3f}"),
    ("KL (nats)", "kl_divergence", "value", "{:.4f}"),
    ("KL p99", "kl_divergence_p99", "value", "{:.3f}"),
    ("next-token agreement", "next_token_agreement", "value", "{:.3f}"),
    ("last-word acc", "task/last_word/acc", "value", "{:.3f}"),
    ("cloze acc", "task/cloze/acc", "value", "{:.3f}"),
    ("prefill (tok/s)", "prefill_tokens_per_s", "value", "{:.0f}"),
    ("decode (tok/s)", "decode_tokens_per_s", "value", "{:.1f}"),
    ("decode b8 (tok/s)", "decode_tokens_per_s_batch8", "value", "{:.1f}"),
    ("TTFT (ms)", "time_to_first_token", "value", "{:.0f}"),
    ("peak mem (MB)", "peak_memory", "value", "{:.0f}"),
    ("compress (s)", "compress_time", "value", "{:.0f}"),
)
_BATCHED_DECODE = re.compile(r"decode_tokens_per_s_batch(\d+)")
_FORMATS = {c[0]: c[3] for c in COLUMNS}


def columns_for(results: Sequence[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """``COLUMNS`` with the batched-decode column for each batch size the results hold (batch 8 if none).

    Example:
        >>> [c[0] for c in columns_for([{"metrics": {"decode_tokens_per_s_batch4": {"value": 9.0}}}]) if "b4" in c[0]]
        ['decode b4 (tok/s)']
    """
    sizes = sorted({int(m.group(1)) for res in results for name in res.get("metrics", {})
                    if (m := _BATCHED_DECODE.fullmatch(name))}) or [8]
    columns: list[tuple[str, str, str, str]] = []
    for column in COLUMNS:
        if _BATCHED_DECODE.fullmatch(column[1]):
            columns += [(f"decode b{n} (tok/s)", f"decode_tokens_per_s_batch{n}", "value", column[3]) for n in sizes]
        else:
            columns.append(column)
    return columns


def _recipe_text(results: dict[str, Any]) -> str:
    return recipe_label(results.get("variant", {}).get("recipe", []))


def _engine(res: dict[str, Any]) -> str:
    return (res.get("settings") or {}).get("engine") or "transformers"


def comparison_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (dicts of raw numbers) for the table: per engine, its base model first, then the variants it measured.

    A base row takes each metric's ``base`` value from the variants measured on that engine (all on the same data):
    a GGUF variant's base is the base converted to F16 and run by llama.cpp, never the transformers one, so an
    engine's figures are only ever compared with the same engine's. ``_unreliable`` lists a row's speed columns
    whose spread stayed wide.

    Example:
        >>> comparison_rows([])
        []
    """
    rows: list[dict[str, Any]] = []
    if not results:
        return rows
    columns = columns_for(results)
    engines = list(dict.fromkeys(_engine(res) for res in results))
    base_id = results[0].get("base_model", {}).get("model_id", "base")
    for engine in engines:
        measured = [res for res in results if _engine(res) == engine]
        base_metrics: dict[str, Any] = {}
        for res in measured:
            for metric, m in res.get("metrics", {}).items():
                if m.get("base") is not None and metric not in base_metrics:
                    base_metrics[metric] = m["base"]
        if base_metrics:
            label = f"base: {base_id}" if len(engines) == 1 else (
                f"base F16: {base_id}" if engine == "llama.cpp" else f"base: {base_id}")
            base_row: dict[str, Any] = {"variant": label, "recipe": "none", "engine": engine}
            for title, metric, fld, _ in columns:
                base_row[title] = base_metrics.get(metric) if fld == "value" else (1.0 if metric in base_metrics else None)
            rows.append(base_row)
        for res in measured:
            row: dict[str, Any] = {"variant": res["variant"]["name"], "recipe": _recipe_text(res), "engine": engine}
            metrics = res.get("metrics", {})
            for title, metric, fld, _ in columns:
                row[title] = metrics.get(metric, {}).get(fld)
            row["_unreliable"] = [title for title, metric, _, _ in columns if metrics.get(metric, {}).get("reliable") is False]
            rows.append(row)
    return rows


def _titles(rows: Sequence[dict[str, Any]]) -> list[str]:
    # Rows carry their columns in order (comparison_rows); with no rows, the default columns.
    titles = list(rows[0]) if rows else ["variant", "recipe", "engine"] + [c[0] for c in COLUMNS]
    return [t for t in titles if not t.startswith("_")]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if fmt == "{:.1f}" and isinstance(value, (int, float)) and abs(value) >= 1e5:
        return f"{value:,.0f}"
    return fmt.format(value) if isinstance(value, (int, float)) else str(value)


def comparison_markdown(rows: Sequence[dict[str, Any]], *, extra: Sequence[str] = ()) -> str:
    """A Markdown table of ``comparison_rows`` (parameters in millions, sizes in MB)."""
    titles = _titles(rows)
    text = ("variant", "recipe", "engine")
    present = [t for t in titles if t in text or any(r.get(t) is not None for r in rows)]
    lines = ["| " + " | ".join(present) + " |", "|" + "|".join("---" if t in text else "---:" for t in present) + "|"]
    noisy = False
    for row in rows:
        cells = []
        for title in present:
            value = row.get(title)
            if title == "params (M)" and isinstance(value, (int, float)):
                value = value / 1e6
            cell = str(value) if title in text else _cell(value, _FORMATS.get(title, "{:.1f}"))
            if title in row.get("_unreliable", ()):
                cell, noisy = cell + " †", True
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "† the runs' spread stayed wide (a busy machine): not a result; measure again on a quiet one"] if noisy else []
    return "\n".join([*lines, *notes, *extra]) + "\n"


def _steps_run(recipe: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps a recorded recipe ran: a gradual pruning counts as its stages and their fine-tuning steps."""
    from ..errors import HFCompressError
    from ..recipe import as_recipe, expand_recipe

    try:
        return [step.to_dict() for step in expand_recipe(as_recipe(list(recipe)))]
    except (HFCompressError, TypeError, ValueError):  # a recipe of an older or unknown kind: as recorded
        return list(recipe)


def _trained_tokens(recipe: Sequence[dict[str, Any]]) -> int:
    # Tokens a training step goes through: steps x batch x sequence length (an upper bound: rows may be shorter).
    return sum(int(step.get("steps") or 0) * int(step.get("batch_size") or 0) * int(step.get("seq_len") or 0)
               for step in recipe if presentation_for(step.get("kind")).trains)


def tradeoff_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trade-off table: one row per technique family (the families a variant's recipe combines), from the
    variant of that family that kept the most quality; quality kept = base perplexity / perplexity.

    Example:
        >>> res = {"variant": {"name": "q", "recipe": [{"kind": "rtn", "bits": 8}]}, "metrics": {
        ...     "perplexity": {"value": 10.0, "base": 9.0}, "size_on_disk": {"ratio": 0.4}}}
        >>> row = tradeoff_rows([res])[0]
        >>> row["technique"], row["quality kept (%)"], row["size ×"]
        ('quantization', 90.0, 0.4)
    """
    from ..methods.registry import step_families

    best: dict[str, dict[str, Any]] = {}
    for res in results:
        metrics = res.get("metrics", {})
        ppl = metrics.get("perplexity", {})
        if not ppl.get("value") or not ppl.get("base"):
            continue
        recipe = _steps_run(res.get("variant", {}).get("recipe", []))
        family = " + ".join(step_families(recipe))
        row = {"technique": family, "best variant": res["variant"]["name"], "engine": _engine(res),
               "size ×": metrics.get("size_on_disk", {}).get("ratio"),
               "decode speed ×": metrics.get("decode_tokens_per_s", {}).get("ratio"),
               "quality kept (%)": round(100.0 * ppl["base"] / ppl["value"], 1),
               "compress (s)": metrics.get("compress_time", {}).get("value"),
               "trained tokens": _trained_tokens(recipe) or None}
        if family not in best or row["quality kept (%)"] > best[family]["quality kept (%)"]:
            best[family] = row
    return list(best.values())


def tradeoff_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """``tradeoff_rows`` as Markdown, with what each column means."""
    titles = ["technique", "best variant", "engine", "size ×", "decode speed ×", "quality kept (%)", "compress (s)", "trained tokens"]
    formats = {"size ×": "{:.3f}", "decode speed ×": "{:.2f}", "quality kept (%)": "{:.1f}", "compress (s)": "{:.0f}", "trained tokens": "{:,}"}
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" if t in ("technique", "best variant", "engine") else "---:" for t in titles) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(t), formats[t]) if t in formats else str(row.get(t, "")) for t in titles) + " |")
    lines += ["", "Per technique, the variant that kept the most quality. size × and decode speed × are ratios to the base "
              "measured by the same engine; quality kept = base perplexity / variant perplexity; trained tokens = "
              "steps × batch × sequence length of the training steps."]
    return "\n".join(lines) + "\n"


def comparison_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text of ``comparison_rows``: raw numbers (parameters as a count, sizes in MB), one header line."""
    titles = _titles(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=titles, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({t: ("" if row.get(t) is None else row.get(t)) for t in titles})
    return buffer.getvalue()


def pareto_front(points: Sequence[tuple[float, float]], *, maximize_x: bool = False) -> list[int]:
    """Indices of the points no other point beats on both axes (y is always minimized), sorted by x ascending.

    The comparison plots here and the Space's plots both draw it.

    Example:
        >>> pareto_front([(1, 5), (2, 3), (3, 4), (4, 1)])
        [0, 1, 3]
    """
    order = sorted(range(len(points)), key=lambda i: (-points[i][0] if maximize_x else points[i][0], points[i][1]))
    front, best_y = [], float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return sorted(front, key=lambda i: points[i][0])


def _scatter(rows: Sequence[dict[str, Any]], x_col: str, path: Path, *, title: str, xlabel: str, maximize_x: bool,
             note: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r[x_col], r["perplexity"], r["variant"], r.get("recipe") == "none" and r["variant"].startswith("base"),
            r.get("engine") or "transformers")
           for r in rows if isinstance(r.get(x_col), (int, float)) and isinstance(r.get("perplexity"), (int, float))]
    if not pts:
        return None
    front = set(pareto_front([(p[0], p[1]) for p in pts], maximize_x=maximize_x))
    # Each engine its marker, named in the legend: a llama.cpp figure is never mistaken for a transformers one.
    engines = list(dict.fromkeys(p[4] for p in pts))
    markers = {engine: marker for engine, marker in zip(engines, ("o", "s", "^", "D"))}
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for i, (x, y, label, is_base, engine) in enumerate(pts):
        if is_base:
            ax.scatter(x, y, marker="*", s=320, color="#d62728", edgecolor="black", zorder=4)
        else:
            ax.scatter(x, y, s=80, marker=markers[engine], color="#1f77b4" if i in front else "#9e9e9e", edgecolor="black", zorder=3)
        short = f"{label.split(':')[0]} ({label.split(':', 1)[1].strip().rstrip('/').split('/')[-1]})" if is_base else label
        if is_base and len(engines) > 1:
            short += f", {engine}"
        ax.annotate(short, (x, y), textcoords="offset points", xytext=(7, 6), fontsize=8)
    ax.scatter([], [], marker="*", s=200, color="#d62728", edgecolor="black", label="base model")
    if len(engines) > 1:
        for engine in engines:
            ax.scatter([], [], marker=markers[engine], s=60, color="white", edgecolor="black", label=f"measured by {engine}")
    line = sorted((pts[i][0], pts[i][1]) for i in front)
    if len(line) > 1:
        ax.step([p[0] for p in line], [p[1] for p in line], where="post" if not maximize_x else "pre",
                color="#1f77b4", linestyle="--", linewidth=1.5, zorder=2, label="Pareto front")
    ax.scatter([], [], s=80, color="#1f77b4", edgecolor="black", label="on the Pareto front")
    ax.scatter([], [], s=80, color="#9e9e9e", edgecolor="black", label="dominated")
    ys = [p[1] for p in pts]
    if max(ys) / max(min(ys), 1e-9) > 20:
        ax.set_yscale("log")  # one broken variant would otherwise flatten all others
    ax.set_xlabel(xlabel)
    ax.set_ylabel("perplexity (lower is better)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.text(0.01, 0.01, note, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_plots(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike, *, note: str = "") -> list[Path]:
    """``size_vs_perplexity.png`` (Pareto front: smaller and better) and ``speed_vs_perplexity.png`` (faster and better).

    Example:
        >>> write_plots(comparison_rows(load_results("runs/demo")), "runs/demo")    # doctest: +SKIP
    """
    out = Path(out_dir)
    made = [
        _scatter(rows, "size (MB)", out / "size_vs_perplexity.png", title="Size on disk vs perplexity",
                 xlabel="size on disk (MB, lower is better)", maximize_x=False, note=note),
        _scatter(rows, "decode (tok/s)", out / "speed_vs_perplexity.png", title="Decode speed (batch 1) vs perplexity",
                 xlabel="decode tokens/s at batch 1 (higher is better)", maximize_x=True, note=note),
    ]
    return [p for p in made if p is not None]


def write_comparison(results: Sequence[dict[str, Any]], out_dir: str | os.PathLike, *, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and the two plots into ``out_dir``; returns their paths.

    Example:
        >>> import tempfile
        >>> sorted(write_comparison([], tempfile.mkdtemp()))
        ['csv', 'markdown']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(results)
    paths: dict[str, Path] = {}
    paths["markdown"] = write_text_atomic(out / "comparison.md", comparison_markdown(rows, extra=[""] + [f"- {n}" for n in notes] if notes else ()))
    paths["csv"] = write_text_atomic(out / "comparison.csv", comparison_csv(rows))
    tradeoffs = tradeoff_rows(results)
    if tradeoffs:
        paths["tradeoffs"] = write_text_atomic(out / "tradeoffs.md", tradeoff_markdown(tradeoffs))
    first = results[0] if results else {}
    hw = first.get("environment", {}).get("hardware", {})
    ev = first.get("data", {}).get("eval", {})
    note = (f"{first.get('base_model', {}).get('model_id', '')}; perplexity on {ev.get('max_tokens', '?')} tokens "
            f"(context {ev.get('context', '?')}, stride {ev.get('stride', '?')}); {hw.get('cpu_count', '?')} x {hw.get('cpu', '?')}"
            + (f", GPU {hw['gpu']['name']}" if hw.get("gpu") else ""))
    for path in write_plots(rows, out, note=note):
        paths["size_plot" if path.name.startswith("size") else "speed_plot"] = path
    return paths

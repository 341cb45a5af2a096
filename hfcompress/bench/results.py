"""results.json: the versioned record of one variant's measurements against its base (schema in ``hfcompress/schemas``).

Every dict is validated against ``results.schema.json`` (JSON Schema 2020-12) before it is written, and
written atomically. ``load_results`` is what the card, the Space and the grid table read.

Example:
    >>> from hfcompress.bench import load_results
    >>> import tempfile
    >>> load_results(tempfile.mkdtemp())
    []
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._version import __version__
from ..artifacts import RESULTS_NAME, iter_variant_folders
from ..atomic import write_json_atomic
from ..errors import HFCompressError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "results.schema.json"


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The results JSON Schema (draft 2020-12) as a dict.

    Example:
        >>> results_schema()["properties"]["schema_version"]["const"]
        '1.0'
    """
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validation_errors(results: dict[str, Any]) -> list[str]:
    """Every way ``results`` breaks the schema, as ``'path: message'`` lines (empty when valid).

    Example:
        >>> validation_errors({"schema_version": "1.0"})[0]
        "(root): 'hfcompress_version' is a required property"
    """
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(results_schema())
    errors = sorted(validator.iter_errors(results), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def validate_results(results: dict[str, Any]) -> dict[str, Any]:
    """Return ``results`` unchanged if it matches the schema, else raise a one-line HFCompressError.

    Example:
        >>> validate_results({"schema_version": "0.9"})
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: results do not match results.schema.json: (root): 'hfcompress_version' is a required property (and 9 more)
    """
    errors = validation_errors(results)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise HFCompressError(f"results do not match results.schema.json: {errors[0][:300]}{more}")
    return results


def write_results(folder: str | os.PathLike, results: dict[str, Any]) -> Path:
    """Validate and write ``folder/results.json`` atomically (a crash never leaves half a file).

    Example:
        >>> write_results("out/variant", result.to_dict())        # doctest: +SKIP
    """
    validate_results(results)
    path = Path(folder) / RESULTS_NAME
    write_json_atomic(path, results)
    return path


def read_results(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The valid results.json of ``folder``, or None when it is missing, unreadable or does not match the schema."""
    path = Path(folder) / RESULTS_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or validation_errors(data):
        return None
    return data


def load_results(folder_or_runs_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Read results: of one variant folder, or of every variant folder inside a runs directory.

    Each returned dict is a valid results.json (invalid or unreadable files are skipped with a warning) plus
    one key, ``"_folder"``: the folder it was read from. Variants come sorted by folder name. This is what
    the Space and cards use; metrics are ``row["metrics"][name]["value" | "base" | "ratio" | "unit"]``.

    Example:
        >>> [r["variant"]["name"] for r in load_results("runs/demo")]     # doctest: +SKIP
        ['awq-4bit-g64', 'gptq-4bit-g64', 'rtn-int8']
    """
    root = Path(folder_or_runs_dir).expanduser()
    if not root.is_dir():
        raise HFCompressError(f"{str(root)!r} is not a folder; pass a variant folder or a runs directory")
    out = []
    for folder in iter_variant_folders(root):
        if not (folder / RESULTS_NAME).is_file():
            continue
        data = read_results(folder)
        if data is None:
            logger.warning("skipping %s: missing or invalid results.json", folder)
            continue
        out.append({**data, "_folder": str(folder)})
    return out


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if unit == "count":
            return f"{value / 1e6:.1f} M"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, int) and unit == "count":
        return f"{value / 1e6:.1f} M"
    return str(value)


@dataclass
class BenchmarkResult:
    """What ``evaluate`` measured: a variant and its base, on the same data and hardware.

    ``to_dict()`` is the results.json content (validated against the schema); ``table()`` a text table.

    Example:
        >>> res = cm.evaluate(max_tokens=2048)                     # doctest: +SKIP
    """

    variant: dict[str, Any]
    base_model: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    environment: dict[str, Any]
    seed: int
    data: dict[str, Any]
    reproduce: str
    created: str
    generations: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The variant's name."""
        return self.variant["name"]

    def to_dict(self) -> dict[str, Any]:
        """The results.json dict (schema 1.0), validated."""
        data = {
            "schema_version": SCHEMA_VERSION,
            "hfcompress_version": __version__,
            "created": self.created,
            "variant": self.variant,
            "base_model": self.base_model,
            "metrics": self.metrics,
            "generations": self.generations,
            "skipped": self.skipped,
            "environment": self.environment,
            "seed": self.seed,
            "data": self.data,
            "settings": self.settings,
            "reproduce": self.reproduce,
        }
        return validate_results(json.loads(json.dumps(data, default=str)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchmarkResult":
        """Rebuild from a results.json dict (validated first)."""
        validate_results(data)
        return cls(
            variant=data["variant"], base_model=data["base_model"], metrics=data["metrics"],
            environment=data["environment"], seed=data["seed"], data=data["data"], reproduce=data["reproduce"],
            created=data["created"], generations=data.get("generations", []), skipped=data.get("skipped", []),
            settings=data.get("settings", {}),
        )

    def table(self) -> str:
        """A fixed-width text table: metric, unit, variant, base, ratio (and the spread or stderr).

        Example:
            >>> print(res.table())                                 # doctest: +SKIP
            metric               unit      variant      base   ratio
            perplexity           ppl          13.1      11.7   1.12
        """
        rows = [("metric", "unit", self.name[:18], "base", "ratio", "+/-")]
        for metric, m in self.metrics.items():
            unit = m.get("unit", "")
            noise = m.get("stderr") if m.get("stderr") is not None else m.get("spread")
            rows.append((metric, "M params" if unit == "count" else unit, _fmt(m.get("value"), unit),
                         _fmt(m.get("base"), unit), "-" if m.get("ratio") is None else f"{m['ratio']:.3f}", _fmt(noise)))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        for item in self.skipped:
            lines.append(f"skipped {item['metric']}: {item['reason']}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

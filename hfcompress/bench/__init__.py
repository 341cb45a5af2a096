"""Benchmarks of a variant against its base: perplexity, agreement, speed, memory, size (see ``evaluate``).

bench measures a model or a folder it is handed; it never compresses or saves (``CompressedModel.evaluate``
saves an in-memory variant first, so it is measured as users load it).

Example:
    >>> from hfcompress.bench import EvalSettings
    >>> EvalSettings(max_tokens=2048).stride
    256
"""

from .benchmark import EvalSettings, Subject, evaluate, load_subject
from .perplexity import negative_log_likelihood, perplexity
from .results import (
    SCHEMA_VERSION,
    BenchmarkResult,
    load_results,
    read_results,
    results_schema,
    validate_results,
    write_results,
)

__all__ = [
    "evaluate",
    "EvalSettings",
    "Subject",
    "load_subject",
    "BenchmarkResult",
    "perplexity",
    "negative_log_likelihood",
    "load_results",
    "read_results",
    "write_results",
    "validate_results",
    "results_schema",
    "SCHEMA_VERSION",
]

"""Benchmarks of a variant against its base: perplexity, speed, memory, size (see ``evaluate``).

Example:
    >>> from hfcompress.bench import evaluate, load_results
    >>> res = evaluate(cm, max_tokens=2048)                 # doctest: +SKIP
    >>> rows = load_results("runs/demo")                    # doctest: +SKIP
"""

from .benchmark import evaluate
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

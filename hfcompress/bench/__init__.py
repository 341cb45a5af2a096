"""Benchmarks of a variant against its base: perplexity, speed, memory, size (see ``evaluate``)."""

from .perplexity import perplexity

__all__ = ["perplexity"]

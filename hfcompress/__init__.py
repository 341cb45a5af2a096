"""hfcompress: compress Hugging Face causal LMs, benchmark them against their base, and publish honest variants.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.GPTQConfig(bits=4))   # doctest: +SKIP
    >>> cm.save_pretrained("out/SmolLM2-135M-Instruct-GPTQ-4bit")                       # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import CompressedModel
from .config import (
    AWQConfig,
    CompressionConfig,
    DistillConfig,
    GPTQConfig,
    LowRankConfig,
    PruneConfig,
    RTNConfig,
    StructuredPruneConfig,
    grid_to_yaml,
    load_grid,
    load_recipe,
    recipe_from_yaml,
    recipe_to_yaml,
)
from .errors import HFCompressError
from .grid import run_grid

__all__ = [
    "__version__",
    "CompressedModel",
    "CompressionConfig",
    "RTNConfig",
    "GPTQConfig",
    "AWQConfig",
    "PruneConfig",
    "StructuredPruneConfig",
    "DistillConfig",
    "LowRankConfig",
    "load_recipe",
    "load_grid",
    "recipe_to_yaml",
    "recipe_from_yaml",
    "grid_to_yaml",
    "HFCompressError",
    "run_grid",
]

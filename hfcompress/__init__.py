"""hfcompress: compress Hugging Face causal LMs, benchmark them against their base, and publish honest variants.

Example:
    >>> import hfcompress as hfc
    >>> hfc.GPTQConfig(bits=4, group_size=64).kind
    'gptq'
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.GPTQConfig(bits=4))   # doctest: +SKIP
"""

from ._version import __version__
from .api import CompressedModel
from .bench import EvalSettings
from .config import CompressionConfig
from .errors import HFCompressError
from .grid import grid_to_yaml, load_grid, run_grid
from .methods.architecture import GQAConfig, ShareLayersConfig
from .methods.distill import DistillConfig
from .methods.gguf import GGUFConfig
from .methods.lowrank import LowRankConfig
from .methods.pruning import PruneConfig
from .methods.qat import QATConfig
from .methods.quantization import AWQConfig, GPTQConfig, RTNConfig
from .methods.structured import StructuredPruneConfig
from .recipe import load_recipe, recipe_from_yaml, recipe_to_yaml

__all__ = [
    "__version__",
    "CompressedModel",
    "CompressionConfig",
    "RTNConfig",
    "GPTQConfig",
    "AWQConfig",
    "QATConfig",
    "PruneConfig",
    "StructuredPruneConfig",
    "DistillConfig",
    "LowRankConfig",
    "GGUFConfig",
    "GQAConfig",
    "ShareLayersConfig",
    "EvalSettings",
    "load_recipe",
    "load_grid",
    "recipe_to_yaml",
    "recipe_from_yaml",
    "grid_to_yaml",
    "HFCompressError",
    "run_grid",
]

"""Backend adapters. Importing this package registers every built-in adapter (backends import lazily).

Example:
    >>> from hfcompress.methods.registry import list_adapters
    >>> [a.name for a in list_adapters()]          # doctest: +SKIP
    ['llmcompressor', 'gptqmodel', ...]
"""

from . import llmcompressor  # noqa: F401  (registers the adapter)
from . import gptqmodel  # noqa: F401  (GPTQ/AWQ via GPTQModel, GPU)
from . import legacy  # noqa: F401  (AutoGPTQ, AutoAWQ behind [legacy])
from . import pruning  # noqa: F401  (magnitude, Wanda, SparseGPT)
from . import distill  # noqa: F401  (knowledge distillation with transformers' Trainer)
from . import structured  # noqa: F401  (heads, neurons, layers)
from . import lowrank  # noqa: F401  (SVD factorization)

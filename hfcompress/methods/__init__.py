"""The compression methods, one folder per family; importing this package registers every built-in one.

Each family folder holds its config(s), its adapter(s) and its presentation, wired by one ``register_method``
call in its ``__init__``; backends import lazily, so listing methods never needs them installed.

Example:
    >>> from hfcompress.methods.registry import families
    >>> families()
    ('quantization', 'pruning', 'structured', 'low-rank', 'distillation', 'qat', 'gguf', 'architecture')
"""

from . import quantization  # noqa: F401
from . import pruning  # noqa: F401
from . import structured  # noqa: F401
from . import lowrank  # noqa: F401
from . import distill  # noqa: F401
from . import qat  # noqa: F401  (after distill: it trains with distillation's trainer)
from . import gguf  # noqa: F401
from . import architecture  # noqa: F401

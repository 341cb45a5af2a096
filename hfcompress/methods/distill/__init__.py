"""Knowledge distillation: a teacher's soft targets train the student, with transformers' ``Trainer``.

The pieces: ``losses`` (forward/reverse KL, JSD), ``data`` (text, pairs, synthetic), ``models`` (teacher and
student), ``trainer`` (``Trainer`` with the distillation loss); ``adapter`` wires them into a recipe step.

Example:
    >>> from hfcompress.methods.distill import DistillConfig
    >>> DistillConfig().steps
    200
"""

from ..registry import register_method
from .adapter import TransformersDistillAdapter
from .config import DistillConfig
from .presentation import DistillPresentation

register_method(DistillPresentation("distill"), config=DistillConfig, adapters=[TransformersDistillAdapter])

__all__ = ["DistillConfig"]

"""Knowledge distillation pieces: losses, data (text, pairs, synthetic), teacher/student models, the trainer.

The recipe step is ``hfcompress.DistillConfig``; its adapter is ``hfcompress.methods.distill``.

Example:
    >>> from hfcompress.distill.losses import distillation_loss
"""

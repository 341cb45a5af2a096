"""Fake quantization for training: weights rounded to compressed-tensors' integer grid in the forward pass.

Our own torch code, on purpose. torchao 0.18's QAT (``IntxFakeQuantizer``) runs on a CPU, but its asymmetric
group fake-quantization puts the zero point in the float domain (tinygemm's layout, ``ZeroPointDomain.FLOAT``),
which compressed-tensors' integer zero points cannot store exactly, and it has no ternary dtype. The variant must
hold exactly the weights the training simulated. So the grid here is compressed-tensors' own: scales and zero
points come from the quantization scheme llm-compressor attaches to each Linear, and the rounding follows
``compressed_tensors.quantization.lifecycle.forward_helpers._quantize_dequantize`` step by step (divide, add the
zero point, clamp, round, subtract, multiply).

Gradients pass the rounding as in LSQ (Esser et al., 2020, "Learned Step Size Quantization"): straight through
for weights inside the clamp range, zero for clipped ones; with ``learn_scales`` each group's scale is trained
too (its gradient is LSQ's ``round(w/s) - w/s`` inside the range, the clamp bound outside).

Example:
    >>> import torch
    >>> weight = torch.tensor([[0.1, -0.3, 0.25, 0.0]])
    >>> quant = GroupFakeQuant(weight, scale=torch.tensor([[0.1]]), zero_point=torch.tensor([[0]]), q_min=-1, q_max=1,
    ...                        group_size=None, learn_scales=False)
    >>> [round(v, 4) for v in quant(weight)[0].tolist()]      # codes 1, -3 -> -1 (clipped), 2.5 -> 1 (clipped), 0
    [0.1, -0.1, 0.1, 0.0]
"""

from __future__ import annotations

from typing import Any

import torch


class GroupFakeQuant(torch.nn.Module):
    """A weight parametrization (``torch.nn.utils.parametrize``) that fake-quantizes a Linear weight per group.

    Args:
        weight: the weight it will parametrize (for shapes).
        scale: per-group scales, shaped ``[out, in // group_size]`` (``[out, 1]`` per channel), as
            compressed-tensors stores ``weight_scale``.
        zero_point: integer zero points of the same shape (zeros when symmetric).
        q_min, q_max: the integer range (``-8, 7`` for 4 bits; ``-1, 1`` for ternary).
        group_size: weights per scale along the input dimension; None = one scale per output channel.
        learn_scales: whether the scales are trained (a ``Parameter``) or fixed (a buffer).
    """

    def __init__(self, weight: torch.Tensor, *, scale: torch.Tensor, zero_point: torch.Tensor, q_min: int, q_max: int,
                 group_size: int | None, learn_scales: bool) -> None:
        super().__init__()
        out_features, in_features = weight.shape
        self.group_size = group_size or in_features
        if in_features % self.group_size:
            raise ValueError(f"group size {self.group_size} does not divide {in_features} input features")
        scale = scale.detach().to(torch.float32).reshape(out_features, in_features // self.group_size).clone()
        if learn_scales:
            self.scale = torch.nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)
        self.register_buffer("zero_point", zero_point.detach().to(torch.float32).reshape_as(scale).clone())
        self.q_min, self.q_max = float(q_min), float(q_max)

    def positive_scale(self) -> torch.Tensor:
        # A trained scale could cross zero; the saved scale is this same value, so training and saving agree.
        return self.scale.abs().clamp_min(torch.finfo(torch.float32).tiny)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        out_features, in_features = weight.shape
        grouped = weight.reshape(out_features, in_features // self.group_size, self.group_size)
        scale = self.positive_scale().unsqueeze(-1).to(weight.dtype)
        zero = self.zero_point.unsqueeze(-1).to(weight.dtype)
        scaled = grouped / scale + zero
        clamped = scaled.clamp(self.q_min, self.q_max)
        # Straight through the rounding only (the clamp keeps its zero gradient for clipped weights).
        rounded = clamped + (torch.round(clamped) - clamped).detach()
        return ((rounded - zero) * scale).reshape(out_features, in_features)

    @torch.no_grad()
    def integers(self, weight: torch.Tensor) -> torch.Tensor:
        """The integer codes the saved model will hold for ``weight`` (``[out, in]``, float holding integers)."""
        out_features, in_features = weight.shape
        grouped = weight.reshape(out_features, in_features // self.group_size, self.group_size)
        scaled = grouped / self.positive_scale().unsqueeze(-1).to(weight.dtype) + self.zero_point.unsqueeze(-1).to(weight.dtype)
        return torch.round(scaled.clamp(self.q_min, self.q_max)).reshape(out_features, in_features)


def ternary_scales(weight: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """BitNet b1.58's scale per group: the mean absolute weight (``[out, in // group_size]``).

    Example:
        >>> ternary_scales(torch.tensor([[1.0, -3.0, 0.0, 4.0]]), 2)
        tensor([[2., 2.]])
    """
    out_features, in_features = weight.shape
    size = group_size or in_features
    return weight.detach().abs().reshape(out_features, in_features // size, size).float().mean(-1).clamp_min(1e-8)


def attach(module: torch.nn.Linear, quant: GroupFakeQuant) -> None:
    """Parametrize ``module.weight`` with ``quant``: the forward pass sees fake-quantized weights."""
    from torch.nn.utils import parametrize

    parametrize.register_parametrization(module, "weight", quant)


def detach(module: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Remove the parametrization; the weight becomes its fake-quantized value (exactly on the grid).

    Returns the integer codes, the scales (positive, as trained) and the zero points.
    """
    from torch.nn.utils import parametrize

    quant: GroupFakeQuant = module.parametrizations.weight[0]
    latent = module.parametrizations.weight.original.detach()
    with torch.no_grad():
        codes = quant.integers(latent)
        scale = quant.positive_scale().detach().clone()
        zero = quant.zero_point.detach().clone()
        out_features, in_features = latent.shape
        grouped = codes.reshape(out_features, in_features // quant.group_size, quant.group_size)
        # compressed-tensors' dequantization: (q - zero) * scale, in the scale's dtype.
        on_grid = ((grouped - zero.unsqueeze(-1)) * scale.unsqueeze(-1)).reshape(out_features, in_features)
    parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    module.weight.data = on_grid.to(module.weight.dtype)
    return codes, scale, zero

"""Teacher and student models for distillation: load the teacher, check tokenizers, build the student.

Example:
    >>> from hfcompress.methods.distill.models import check_same_tokenizer
    >>> check_same_tokenizer(teacher_tok, student_tok)          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ...errors import HFCompressError
from ...loading import load_model

logger = logging.getLogger(__name__)

# Config keys a dict student may override; each has a way to initialise the smaller model from the larger one.
STUDENT_OVERRIDES = ("num_hidden_layers", "intermediate_size")


def check_same_tokenizer(teacher_tokenizer: Any, student_tokenizer: Any, *, teacher: str = "teacher", student: str = "student") -> None:
    """Raise a clear error unless both tokenizers map the same strings to the same ids.

    Soft targets compare distributions position by position over the vocabulary, so a different vocabulary
    (even one with the same size) makes the KL meaningless.

    Example:
        >>> check_same_tokenizer(tok, tok)                 # doctest: +SKIP
    """
    a, b = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if a == b:
        return
    if len(a) != len(b):
        detail = f"vocabulary sizes differ ({len(a)} vs {len(b)} tokens)"
    else:
        diff = sorted(k for k in a if b.get(k) != a[k])[:3]
        detail = f"same size ({len(a)}) but different token ids, e.g. {', '.join(map(repr, diff))}"
    raise HFCompressError(
        f"the {teacher} and the {student} use different tokenizers: {detail}; distillation needs a student of the "
        "same tokenizer family (e.g. a smaller model of the same series)"
    )


def check_vocab_size(teacher_model: Any, student_model: Any) -> None:
    """Raise a clear error when the two models' output layers differ in width (resized embeddings)."""
    vt = teacher_model.get_output_embeddings().weight.shape[0]
    vs = student_model.get_output_embeddings().weight.shape[0]
    if vt != vs:
        raise HFCompressError(
            f"the teacher predicts {vt} tokens and the student {vs}; resize the student's embeddings to the teacher's "
            "vocabulary (model.resize_token_embeddings) or pick a matching student"
        )


def load_source(source: Any) -> Any:
    """Reload a model from a ``hfcompress.loading.ModelSource`` (the run's base) or a model id/folder string.

    Returns a ``hfcompress.loading.LoadedModel``.

    Example:
        >>> teacher = load_source("HuggingFaceTB/SmolLM2-360M")           # doctest: +SKIP
    """
    from pathlib import Path

    if isinstance(source, str) or source is None:
        return load_model(source)
    if source.adapter is not None:
        return load_model(source)  # the same base with the same PEFT adapter merged: the model this run started from
    if source.kind == "embedded":
        return load_model(None)
    if source.kind == "gguf":
        return load_model(Path(source.path) / source.gguf_file)
    if source.kind == "folder":
        return load_model(source.path)
    return load_model(source.model_id, revision=source.revision)


def smaller_student(model: Any, overrides: dict[str, Any]) -> Any:
    """A smaller model of the same family, initialised from ``model``'s weights.

    ``num_hidden_layers=k`` keeps k evenly spaced decoder layers (first and last included), as DistilBERT
    and DistilGPT2 were initialised; ``intermediate_size=n`` keeps the n MLP neurons with the largest
    weight norms in every layer. Every other weight is copied unchanged.

    Example:
        >>> from hfcompress.testing import tiny_model
        >>> teacher, _ = tiny_model("qwen2", layers=4)
        >>> smaller_student(teacher, {"num_hidden_layers": 2}).config.num_hidden_layers
        2
    """

    unknown = sorted(set(overrides) - set(STUDENT_OVERRIDES))
    if unknown:
        raise HFCompressError(
            f"student overrides {', '.join(map(repr, unknown))} are not supported; a dict student may set "
            f"{' and '.join(STUDENT_OVERRIDES)} (pass a model id or folder for other shapes)"
        )
    config = copy.deepcopy(model.config)
    layers = _decoder_layers(model)
    n_layers = len(layers)
    keep_layers = list(range(n_layers))
    if "num_hidden_layers" in overrides:
        k = overrides["num_hidden_layers"]
        if not isinstance(k, int) or not 0 < k <= n_layers:
            raise HFCompressError(f"student num_hidden_layers={k!r} must be an integer from 1 to the model's {n_layers}")
        keep_layers = evenly_spaced(n_layers, k)
        config.num_hidden_layers = k
        if getattr(config, "layer_types", None):
            config.layer_types = [config.layer_types[i] for i in keep_layers]
    width = getattr(config, "intermediate_size", None)
    if "intermediate_size" in overrides:
        n = overrides["intermediate_size"]
        if not isinstance(width, int):
            raise HFCompressError("this model's config has no single intermediate_size; pass a student model id or folder")
        if not isinstance(n, int) or not 0 < n <= width:
            raise HFCompressError(f"student intermediate_size={n!r} must be an integer from 1 to the model's {width}")
        config.intermediate_size = n

    student = type(model)(config).to(dtype=next(model.parameters()).dtype)
    source = model.state_dict()
    target = student.state_dict()
    prefix = _layers_prefix(model)
    new_state = {}
    for name, tensor in target.items():
        src_name = name
        if prefix and name.startswith(prefix + "."):
            index, rest = name[len(prefix) + 1:].split(".", 1)
            src_name = f"{prefix}.{keep_layers[int(index)]}.{rest}"
        value = source[src_name]
        if value.shape != tensor.shape:
            value = _narrow_mlp(src_name, value, tensor.shape, model, keep_layers, prefix)
        new_state[name] = value.clone()
    student.load_state_dict(new_state, strict=True)
    if getattr(model.config, "tie_word_embeddings", False):
        student.tie_weights()
    student.eval()
    return student


def evenly_spaced(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included.

    Example:
        >>> evenly_spaced(30, 4)
        [0, 10, 19, 29]
    """
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _decoder_layers(model: Any) -> Any:
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise HFCompressError(
            f"{type(model).__name__} has no model.layers list; a dict student works for Llama-style models, "
            "pass a student model id or folder instead"
        )
    return layers


def _layers_prefix(model: Any) -> str:
    return f"{getattr(model, 'base_model_prefix', 'model')}.layers"


def _narrow_mlp(name: str, value: Any, shape: Any, model: Any, keep_layers: list[int], prefix: str) -> Any:
    # Rank neurons by the product of their in- and out-weight norms (a data-free saliency that needs no
    # calibration pass), and keep the same neurons in gate/up (rows) and down (columns).
    import torch

    layer_index = int(name[len(prefix) + 1:].split(".", 1)[0])
    mlp = _decoder_layers(model)[layer_index].mlp
    score = mlp.down_proj.weight.norm(dim=0)
    for proj in ("gate_proj", "up_proj"):
        if hasattr(mlp, proj):
            score = score * getattr(mlp, proj).weight.norm(dim=1)
    keep = torch.topk(score, shape[0] if name.endswith(("gate_proj.weight", "up_proj.weight")) else shape[1]).indices.sort().values
    if name.endswith(("gate_proj.weight", "up_proj.weight", "gate_proj.bias", "up_proj.bias")):
        return value[keep]
    if name.endswith("down_proj.weight"):
        return value[:, keep]
    raise HFCompressError(f"cannot narrow {name} from {tuple(value.shape)} to {tuple(shape)}; pass a student model id or folder")

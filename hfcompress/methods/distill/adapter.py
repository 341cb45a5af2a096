"""Distillation adapter: train the student (the model so far, a smaller copy, or another model) on a teacher.

The training loop is transformers' ``Trainer`` (``hfcompress.distill.trainer``); this adapter resolves the
teacher, the student and the data from a ``DistillConfig`` and records what happened in hfcompress.json.
``[StructuredPruneConfig(target="neurons", ratio=0.25), DistillConfig(steps=300)]`` is "prune, then recover".

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=[                       # doctest: +SKIP
    ...     hfc.StructuredPruneConfig(target="neurons", ratio=0.25), hfc.DistillConfig(steps=300)])
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from ...config import CompressionConfig
from ...data import evaluation_token_ids, read_texts
from ...errors import HFCompressError
from ...loading import cache_dir, load_model
from ..registry import CompressionAdapter, StepContext, StepResult
from .config import DistillConfig
from .data import default_prompts, encode_pair, model_fingerprint, pack_texts, read_pairs, synthetic_pairs
from .models import check_same_tokenizer, check_vocab_size, load_source, smaller_student
from .trainer import train_student

logger = logging.getLogger(__name__)


class TransformersDistillAdapter(CompressionAdapter):
    """Knowledge distillation with transformers' ``Trainer`` (CPU, or the GPU when one is visible).

    Example:
        >>> from hfcompress.methods.registry import get_adapter
        >>> get_adapter(DistillConfig()).name                           # doctest: +SKIP
        'transformers'
    """

    name = "transformers"
    methods = ("distill",)
    required_packages = ("transformers", "accelerate")
    save_format = "safetensors"

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, DistillConfig)
        calibration = context.calibration
        # Text and pairs are read first: a missing file fails before any model is loaded.
        plain = read_training_data(config)
        # A smaller student is cut from the model before the teacher loads, so impossible shapes fail at once.
        small = smaller_student(model, config.student) if isinstance(config.student, dict) else None

        teacher_id, teacher_loaded = load_teacher(model, config, context.source)
        teacher = teacher_loaded.model
        check_same_tokenizer(teacher_loaded.tokenizer, tokenizer, teacher=f"teacher {teacher_id!r}", student="model being distilled")

        device = next(model.parameters()).device
        if config.student is None:
            student, student_desc = model, "the model produced by the previous recipe steps"
        elif config.student == "self":
            student, student_desc = copy.deepcopy(teacher), "a copy of the teacher (self-distillation)"
        elif isinstance(config.student, dict):
            student = small
            student_desc = f"smaller copy ({', '.join(f'{k}={v}' for k, v in config.student.items())}) initialised from the model so far"
        else:
            loaded = load_model(config.student)
            check_same_tokenizer(teacher_loaded.tokenizer, loaded.tokenizer, teacher=f"teacher {teacher_id!r}", student=f"student {config.student!r}")
            student, student_desc = loaded.model, f"model {config.student}"
        check_vocab_size(teacher, student)
        params_before = sum(p.numel() for p in model.parameters())

        train_rows, eval_rows, data_info = training_rows(config, tokenizer, teacher, teacher_id, plain, calibration)

        key_parts = {k: v for k, v in config.to_dict().items() if k not in ("steps", "eval_every", "run_dir", "resume", "save_every")}
        key = hashlib.sha256(json.dumps([key_parts, model_fingerprint(student), model_fingerprint(teacher), teacher_id],
                                        sort_keys=True, default=str).encode()).hexdigest()[:16]
        run_dir = Path(config.run_dir).expanduser() if config.run_dir else cache_dir() / "distill-runs" / key
        # The student trains with what earlier steps left held (a pruning mask stays a mask), when it is their model.
        holds = context.holds if student is model else ()
        info = train_student(student, teacher, tokenizer, train_rows, eval_rows, config, run_dir=run_dir,
                             progress=context.progress, holds=holds)
        if not config.run_dir:
            # The cache copy only serves resuming an interrupted run; a finished run needs none of its GBs.
            shutil.rmtree(run_dir, ignore_errors=True)
        student.to(device)
        student.eval()
        del teacher
        info = {
            "teacher": teacher_id,
            "student": student_desc,
            "parameters": {"student": sum(p.numel() for p in student.parameters()), "model_before": params_before},
            "data": data_info,
            "loss": {"alpha": config.alpha, "temperature": config.temperature, "divergence": config.loss},
            "run_dir": str(run_dir) if config.run_dir else None,
            **info,
        }
        return StepResult(student, info)


def load_teacher(model: Any, config: DistillConfig, source: Any) -> tuple[str, Any]:
    """(teacher id, ``LoadedModel``): ``config.teacher``, else the run's base model (reloaded from its source)."""
    if config.teacher:
        loaded = load_source(config.teacher)
        return str(config.teacher), loaded
    if source is None:
        name = getattr(model.config, "name_or_path", "") or ""
        if not (name and (Path(name) / "config.json").is_file()):
            raise HFCompressError(
                "DistillConfig has no teacher and the base model of this run is unknown; pass teacher= a model id or folder"
            )
        source = name
    loaded = load_source(source)
    teacher_id = source if isinstance(source, str) else source.model_id
    return teacher_id, loaded


def read_training_data(config: DistillConfig) -> Any:
    """The user's training data, read before any model loads (quantization-aware training reads it too):
    ('pairs', pairs) | ('texts', texts, description) | None (calibration or synthetic)."""
    config.check_data_is_present()

    if config.data is None or config.data == "synthetic":
        if config.prompts is not None:
            read_texts(config.prompts)  # fail now on a missing prompts file
        return None
    pairs = read_pairs(config.data, what="the distillation data")
    if pairs is not None:
        return ("pairs", pairs)
    if config.task_specific:
        raise HFCompressError(
            "task_specific=True needs prompt/response pairs: data= a list of {'prompt', 'response'} dicts or a .jsonl "
            "file with those fields, or data='synthetic'"
        )
    texts, description = read_texts(config.data)
    return ("texts", texts, description)


def training_rows(config: DistillConfig, tokenizer: Any, teacher: Any, teacher_id: str, plain: Any, calibration: Any) -> tuple[list, list, dict]:
    """Training rows, held-out rows and what they are, from the user's data, the calibration text or the teacher."""
    needed = config.steps * config.batch_size * config.gradient_accumulation_steps
    eval_count = max(1, config.eval_tokens // config.seq_len)
    if plain is None and config.data is None:
        if calibration is not None and calibration.source not in ("list",) and isinstance(calibration.source, str):
            texts, description = read_texts(calibration.source)
        elif calibration is not None:
            texts, description = list(calibration.texts), calibration.description
        else:
            texts, description = read_texts("default")
        rows = pack_texts(texts, tokenizer, seq_len=config.seq_len, max_sequences=needed, seed=config.seed)
        if description.startswith("default"):
            # The embedded corpus has a held-out part that calibration never reads: evaluate there.
            ids, _ = evaluation_token_ids("default", tokenizer, max_tokens=eval_count * config.seq_len)
            ids = ids.tolist()
            evals = [{"input_ids": ids[i:i + config.seq_len], "labels": ids[i:i + config.seq_len]}
                     for i in range(0, len(ids) - 1, config.seq_len)]
            return rows, evals, {"source": "calibration text", "description": description, **_row_stats(rows), "eval": "held-out corpus"}
        return _hold_out(rows, eval_count, {"source": "calibration text", "description": description})
    if plain is not None and plain[0] == "texts":
        rows = pack_texts(plain[1], tokenizer, seq_len=config.seq_len, max_sequences=needed + eval_count, seed=config.seed)
        return _hold_out(rows, eval_count, {"source": "text", "description": plain[2]})
    if plain is not None:
        rows = [encode_pair(tokenizer, p, r, seq_len=config.seq_len, mask_prompt=config.task_specific, chat=True) for p, r in plain[1]]
        return _hold_out(rows, eval_count, {"source": "pairs", "description": f"{len(rows)} prompt/response pairs",
                                            "task_specific": config.task_specific})
    # Synthetic: the teacher answers prompts; user prompts go through the chat template, text openings do not.
    if config.prompts is not None:
        prompts, prompt_desc = read_texts(config.prompts)
        prompts, chat = prompts[: config.num_synthetic], True
    else:
        source_texts = list(calibration.texts) if calibration is not None else read_texts("default")[0]
        if calibration is not None and isinstance(calibration.source, str) and calibration.source != "list":
            source_texts = read_texts(calibration.source)[0]
        prompts, chat = default_prompts(source_texts, tokenizer, count=config.num_synthetic, seed=config.seed), False
        prompt_desc = "openings of the calibration texts"
    pairs, synth = synthetic_pairs(teacher, tokenizer, prompts, teacher_id=teacher_id, max_new_tokens=config.max_new_tokens,
                                   seed=config.seed, chat=chat)
    rows = [encode_pair(tokenizer, p, r, seq_len=config.seq_len, mask_prompt=config.task_specific, chat=chat) for p, r in pairs]
    return _hold_out(rows, eval_count, {"source": "synthetic", "description": f"teacher continuations of {prompt_desc}",
                                        "task_specific": config.task_specific, "synthetic": synth})


def _hold_out(rows: list, eval_count: int, info: dict) -> tuple[list, list, dict]:
    # Keep at least as many training rows as held-out ones: tiny data sets still train.
    n_eval = min(eval_count, max(1, len(rows) // 10)) if len(rows) >= 4 else 0
    train, evals = (rows[:-n_eval], rows[-n_eval:]) if n_eval else (rows, [])
    return train, evals, {**info, **_row_stats(train), "eval": f"{len(evals)} held-out sequences" if evals else "none"}


def _row_stats(rows: list) -> dict[str, int]:
    return {"sequences": len(rows), "tokens": int(sum(len(r["input_ids"]) for r in rows))}

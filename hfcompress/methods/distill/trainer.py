"""Train a student on a teacher's soft targets with transformers' ``Trainer``.

``Trainer`` brings gradient accumulation, the warm-up + cosine schedule, progress bars, device placement
(CPU or GPU), checkpoints every N steps and ``resume_from_checkpoint``; the subclass only swaps in the
distillation loss and an evaluation that measures what distillation is for (student perplexity and
agreement with the teacher). trl's GKD/distillation trainers were not used: they add on-policy generation
and chat-format datasets this step does not need, and trl would be one more heavy dependency.

Example:
    >>> import tempfile
    >>> from hfcompress import DistillConfig
    >>> from hfcompress.methods.distill.data import pack_texts
    >>> from hfcompress.testing import TINY_TEXTS, tiny_model
    >>> teacher, tok = tiny_model("llama", seed=0)
    >>> student, _ = tiny_model("llama", seed=1)
    >>> rows = pack_texts(list(TINY_TEXTS), tok, seq_len=32, max_sequences=8)
    >>> info = train_student(student, teacher, tok, rows, rows[:2], DistillConfig(steps=3, batch_size=2, eval_every=0),
    ...                      run_dir=tempfile.mkdtemp(), progress=False)
    >>> info["global_step"], info["eval_after"]["kl"] < info["eval_before"]["kl"]
    (3, True)
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

from ...errors import HFCompressError
from .losses import distillation_loss, divergence

logger = logging.getLogger(__name__)


def _collate(pad_id: int):
    import torch

    def collate(rows: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def _trainer_class():
    # Built lazily so importing hfcompress never imports transformers' Trainer (slow).
    import torch
    from transformers import Trainer

    class DistillationTrainer(Trainer):
        """``Trainer`` whose loss is the distillation loss against a frozen teacher, and whose evaluation
        reports student perplexity, top-1 agreement and KL(teacher || student) at T=1."""

        def __init__(self, *args: Any, teacher: Any, distill: Any, eval_rows: Sequence[dict], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # No teacher (quantization-aware training on plain next-token cross-entropy): alpha is 1 then.
            self.teacher = teacher.to(self.args.device).eval() if teacher is not None else None
            for p in self.teacher.parameters() if self.teacher is not None else ():
                p.requires_grad_(False)
            self.distill = distill
            self.eval_rows = list(eval_rows)
            self.evaluations: list[dict[str, float]] = []
            self._parts = {"ce": 0.0, "kd": 0.0, "n": 0}

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            labels = inputs["labels"]
            feed = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
            outputs = model(**feed)
            if self.teacher is None:
                teacher_logits = outputs.logits.detach()  # unused: alpha = 1 takes the cross-entropy alone
            else:
                with torch.no_grad():
                    teacher_logits = self.teacher(**feed).logits
            loss, parts = distillation_loss(outputs.logits, teacher_logits, labels, alpha=self.distill.alpha,
                                            temperature=self.distill.temperature, loss=self.distill.loss,
                                            beta=self.distill.jsd_beta)
            if not torch.isfinite(loss.detach()):
                # Training on would write NaN into every weight; stop before an optimizer step and save nothing.
                raise HFCompressError(
                    f"the distillation loss became {float(loss.detach())} at step {self.state.global_step}; nothing was saved: "
                    "lower learning_rate (or temperature), or check the training text")
            self._parts["ce"] += parts["ce"]
            self._parts["kd"] += parts["kd"]
            self._parts["n"] += 1
            return (loss, outputs) if return_outputs else loss

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs and self._parts["n"]:
                logs["ce"] = round(self._parts["ce"] / self._parts["n"], 5)
                logs["kd"] = round(self._parts["kd"] / self._parts["n"], 5)
                self._parts = {"ce": 0.0, "kd": 0.0, "n": 0}
            super().log(logs, *args, **kwargs)

        def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
            if self.evaluations and self.evaluations[-1]["step"] == self.state.global_step:
                # Trainer asks again at the last step when it is also an eval step; the model has not changed.
                measured = {k: v for k, v in self.evaluations[-1].items() if k != "step"}
            else:
                measured = measure(self.model, self.teacher, self.eval_rows, pad_id=self.distill_pad_id)
                self.evaluations.append({"step": self.state.global_step, **measured})
                self.log({f"{metric_key_prefix}_{k}": v for k, v in measured.items()})
            return {f"{metric_key_prefix}_{k}": v for k, v in measured.items()}

    return DistillationTrainer


def measure(student: Any, teacher: Any, rows: Sequence[dict[str, list[int]]], *, pad_id: int = 0, batch_size: int = 4) -> dict[str, float]:
    """Student perplexity, top-1 next-token agreement with the teacher (fraction) and KL(teacher || student) at T=1
    (nats per token), over the positions of ``rows`` whose label is not -100 (perplexity alone when ``teacher`` is None).

    Example:
        >>> from hfcompress.testing import tiny_model
        >>> model, _ = tiny_model("llama")
        >>> measure(model, model, [{"input_ids": [5, 6, 7, 8], "labels": [5, 6, 7, 8]}])["kl"]
        0.0
    """
    import torch
    import torch.nn.functional as F

    if not rows:
        return {}
    device = next(student.parameters()).device
    was_training = student.training
    student.eval()
    collate = _collate(pad_id)
    nll = kl = agree = count = 0.0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
            feed = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            s = student(**feed).logits[:, :-1].float()
            target = batch["labels"][:, 1:]
            mask = target.ne(-100)
            s, target = s[mask], target[mask]
            nll += float(F.cross_entropy(s, target, reduction="sum"))
            count += int(mask.sum())
            if teacher is not None:
                t = teacher(**feed).logits[:, :-1].float()[mask]
                kl += float(divergence(s, t, loss="forward_kl").sum())
                agree += float((s.argmax(-1) == t.argmax(-1)).sum())
    if was_training:
        student.train()
    count = max(count, 1)
    if teacher is None:
        return {"perplexity": round(math.exp(nll / count), 4)}
    return {"perplexity": round(math.exp(nll / count), 4), "agreement": round(agree / count, 4), "kl": round(kl / count, 5)}


def train_student(student: Any, teacher: Any, tokenizer: Any, train_rows: Sequence[dict], eval_rows: Sequence[dict],
                  config: Any, *, run_dir: str | os.PathLike, progress: bool = True, holds: Sequence[Any] = ()) -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` (in place) with ``Trainer``; resume from the last checkpoint in ``run_dir``.

    Checkpoints are written every ``config.save_every`` optimizer steps (the last one is kept). Calling
    again with the same ``run_dir`` continues from the saved step, so a run stopped by Ctrl-C or a crash
    loses at most ``save_every`` steps; calling with more ``steps`` extends a finished run.

    ``holds`` are what earlier steps left (``AfterStepHook``, e.g. a pruning mask): the student trains with each
    one held (the masked weights' gradients are zero, and the mask is re-applied after every optimizer step), so
    the trained model is the saved one and every evaluation here is of it.

    Returns what hfcompress.json records: steps, losses, evaluations, device, time.

    Example:
        >>> info = train_student(student, teacher, tok, rows, eval_rows, DistillConfig(steps=100), run_dir="run")  # doctest: +SKIP
    """
    import torch
    from transformers import PrinterCallback, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resume = get_last_checkpoint(str(run_dir)) if config.resume else None
    if resume:
        _check_checkpoint_fits(Path(resume), student, run_dir)
    cuda = torch.cuda.is_available()
    eval_every = config.eval_every if eval_rows else 0
    args = _training_args(TrainingArguments, run_dir, config, cuda, eval_every, progress)

    if config.freeze_embeddings:
        # Tied models share this matrix with lm_head: freezing it keeps the vocabulary projection as the teacher's.
        student.get_input_embeddings().weight.requires_grad_(False)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    trainer_cls = _trainer_class()
    trainer = trainer_cls(
        model=student,
        args=args,
        train_dataset=list(train_rows),
        eval_dataset=list(eval_rows) or None,
        data_collator=_collate(pad_id),
        teacher=teacher,
        distill=config,
        eval_rows=eval_rows,
    )
    trainer.distill_pad_id = pad_id
    trainer.remove_callback(PrinterCallback)
    holding = _HoldCallback(student, holds)
    trainer.add_callback(holding.callback)
    device = str(trainer.args.device)

    started = time.perf_counter()
    before = measure(trainer.model.to(trainer.args.device), trainer.teacher, eval_rows, pad_id=pad_id) if eval_rows else {}
    start_step = _checkpoint_step(resume)
    try:
        output = trainer.train(resume_from_checkpoint=resume)
    except (RuntimeError, ValueError, KeyError) as err:
        if resume and ("size mismatch" in str(err) or "parameter group" in str(err) or "state_dict" in str(err)):
            raise HFCompressError(
                f"the checkpoint in {str(run_dir)!r} was written for a student of another shape; use another run_dir "
                "or pass resume=False (--no-resume)"
            ) from None
        raise
    finally:
        holding.release()
    after = measure(trainer.model, trainer.teacher, eval_rows, pad_id=pad_id) if eval_rows else {}
    seconds = time.perf_counter() - started
    # The trainer state (restored from a checkpoint on resume) holds the whole run's logs, not just this call's.
    losses = [{k: _round(e.get(k)) for k in ("step", "loss", "ce", "kd", "learning_rate")} for e in trainer.state.log_history if "loss" in e]
    evaluations = [{"step": 0, **before}] if before else []
    for e in trainer.state.log_history:
        if "eval_perplexity" in e and (not evaluations or evaluations[-1]["step"] != e["step"]):
            evaluations.append({"step": e["step"], **{k[5:]: v for k, v in e.items() if k.startswith("eval_") and k != "eval_runtime"}})
    if config.freeze_embeddings:
        student.get_input_embeddings().weight.requires_grad_(True)
    student.eval()
    return {
        "trainer": "transformers.Trainer",
        "device": device,
        "global_step": int(trainer.state.global_step),
        "resumed_from_step": start_step,
        "steps_run": int(trainer.state.global_step) - start_step,
        "train_loss": round(float(output.training_loss), 5) if output.training_loss == output.training_loss else None,
        "losses": losses,
        "eval_before": before,
        "eval_after": after,
        "evaluations": evaluations,
        "train_seconds": round(seconds, 1),
        **({"held": holding.report()} if holds else {}),
    }


class _HoldCallback:
    """Keeps earlier steps' invariants while the trainer updates weights: gradients masked for the whole run, and
    each invariant restored after every optimizer step (what that restoring found refilled is reported: 0 when the
    masked gradients did their job)."""

    def __init__(self, model: Any, holds: Sequence[Any]) -> None:
        from transformers import TrainerCallback

        self.model, self.holds = model, list(holds)
        self.releases = [hold.hold_during_training(model) for hold in self.holds]
        self.refilled = 0
        # A bound method in the class body: the trainer calls on_step_end(args, state, control, **kwargs).
        self.callback = type("HoldInvariants", (TrainerCallback,), {"on_step_end": staticmethod(self._on_step_end)})()

    def _on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for hold in self.holds:
            report = hold.restore(self.model) or {}
            self.refilled += int(report.get("refilled_weights_zeroed", 0))

    def release(self) -> None:
        for release in self.releases:
            release()
        self.releases = []

    def report(self) -> dict[str, Any]:
        return {"invariants": [type(h).__name__ for h in self.holds], "refilled_during_training": self.refilled,
                "how": "gradients of the held weights zeroed; restored after every optimizer step"}


def _training_args(cls: Any, run_dir: Path, config: Any, cuda: bool, eval_every: int, progress: bool) -> Any:
    import torch

    return cls(
        output_dir=str(run_dir), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=int(config.warmup) if config.warmup >= 1 else config.warmup, weight_decay=0.0, max_grad_norm=1.0,
        logging_steps=max(1, min(10, config.steps // 10 or 1)), eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every or None, save_strategy="steps", save_steps=config.save_every, save_total_limit=1,
        report_to="none", use_cpu=not cuda, bf16=bool(cuda and torch.cuda.is_bf16_supported()), seed=config.seed,
        data_seed=config.seed, disable_tqdm=not progress, remove_unused_columns=False, dataloader_num_workers=0,
    )


def _round(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _check_checkpoint_fits(checkpoint: Path, student: Any, run_dir: Path) -> None:
    """Refuse, before any training, a checkpoint written for a student of another shape (the optimizer's state would
    not fit it): compare the shapes and the number of weights in its safetensors files with the student's."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(checkpoint.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                shapes.update({name: tuple(f.get_slice(name).get_shape()) for name in f.keys()})
        except Exception:  # a damaged checkpoint file: the trainer's own load reports it
            return
    if not shapes:
        return
    state = student.state_dict()
    mine = {name: tuple(t.shape) for name, t in state.items()}
    problem = next((f"{name} is {list(shape)} there, {list(mine[name])} in this student" for name, shape in shapes.items()
                    if name in mine and mine[name] != shape), None)
    if problem is None:
        # Names may differ between memory and disk (tied weights saved once, fused experts), sizes do not.
        distinct = {t.data_ptr(): t.numel() for t in state.values()}
        saved, have = sum(math.prod(shape) for shape in shapes.values()), sum(distinct.values())
        if saved != have:
            problem = f"{saved:,} weights there, {have:,} in this student"
    if problem:
        raise HFCompressError(
            f"the checkpoint in {str(run_dir)!r} was written for a student of another shape ({problem}); use another "
            "run_dir or pass resume=False (--no-resume)")


def _checkpoint_step(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return 0

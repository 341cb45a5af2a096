"""Task accuracies that run offline on text that ships, next to perplexity: perplexity hides task drops.

Our own small scorer (lm-evaluation-harness needs its task data from the Hub, and its local-file tasks need a
YAML per task; these two are built from the held-out part of the offline corpus, which calibration never reads):

* ``last_word``: LAMBADA-style. The context is a held-out sentence up to its last word; correct when the model's
  greedy next tokens are exactly the last word's tokens (teacher-forced, as lm-eval scores LAMBADA).
* ``cloze``: a multiple-choice cloze. A content word of a held-out sentence is left out; the choices are that word
  and three words drawn from other held-out texts; correct when the true word's completion (the word and the rest
  of the sentence) has the highest log-likelihood.

Each accuracy comes with its standard error, sqrt(p (1 - p) / n). Items are built deterministically (seeded).

Example:
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("llama")
    >>> items = build_items("last_word", tok, count=3, texts=["The cat sat on the warm mat today."] * 5)
    >>> items[0].context, items[0].choices
    ('The cat sat on the warm mat', [' today.'])
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..data import evaluation_texts

TASKS = ("last_word", "cloze")
_SENTENCE = re.compile(r"[^.!?]+[.!?]")
_WORD = re.compile(r"\b[A-Za-z][a-z]{3,}\b")


@dataclass
class TaskItem:
    """One item: the context, its choices (one for last_word), and which choice is right."""

    context: str
    choices: list[str]
    answer: int = 0


def _sentences(texts: Sequence[str]) -> list[str]:
    out = []
    for text in texts:
        out += [s.strip() for s in _SENTENCE.findall(text) if 8 <= len(s.split()) <= 40]
    return out


def build_items(task: str, tokenizer: Any, *, count: int, texts: Sequence[str] | None = None, seed: int = 0) -> list[TaskItem]:
    """``count`` items of ``task`` from ``texts`` (default: the held-out part of the offline corpus)."""
    sentences = _sentences(list(texts) if texts is not None else list(evaluation_texts()))
    rng = random.Random(seed)
    rng.shuffle(sentences)
    items: list[TaskItem] = []
    if task == "last_word":
        for sentence in sentences:
            head, _, last = sentence.rpartition(" ")
            if head and re.fullmatch(r"[A-Za-z][A-Za-z'-]*[.!?]", last):
                items.append(TaskItem(head, [" " + last]))
            if len(items) == count:
                break
        return items
    if task == "cloze":
        vocabulary = sorted({w for s in sentences for w in _WORD.findall(s)})
        for sentence in sentences:
            words = [m for m in _WORD.finditer(sentence) if m.start() > len(sentence) // 3]
            if not words:
                continue
            target = words[0]
            distractors = rng.sample([w for w in vocabulary if w.lower() != target.group().lower()], 3)
            rest = sentence[target.end():]
            choices = [target.group() + rest] + [w + rest for w in distractors]
            order = list(range(4))
            rng.shuffle(order)
            items.append(TaskItem(sentence[: target.start()].rstrip(), [" " + choices[i] for i in order], order.index(0)))
            if len(items) == count:
                break
        return items
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def _continuation_logprob(logits_of: Any, tokenizer: Any, context: str, continuation: str) -> tuple[float, bool]:
    """(summed log-probability of the continuation's tokens after the context, whether greedy decoding gives them)."""
    import torch

    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    n = len(ids) - len(context_ids)
    if n <= 0 or ids[: len(context_ids)] != context_ids:
        # Tokenization merged the boundary: score the continuation tokenized on its own.
        ids = context_ids + tokenizer(continuation, add_special_tokens=False)["input_ids"]
        n = len(ids) - len(context_ids)
    logp = torch.log_softmax(logits_of(torch.tensor(ids))[:-1].float(), dim=-1)
    targets = torch.tensor(ids[1:])[-n:]
    picked = logp[-n:].gather(1, targets[:, None]).squeeze(1)
    return float(picked.detach().sum()), bool((logp[-n:].argmax(-1) == targets).all())


def score(engine: Any, tokenizer: Any, task: str, items: Sequence[TaskItem]) -> dict[str, Any]:
    """Accuracy and its standard error of ``engine`` (a bench engine or anything with ``logits(ids)``) on ``items``."""
    correct = 0
    for item in items:
        if task == "last_word":
            correct += _continuation_logprob(engine.logits, tokenizer, item.context, item.choices[0])[1]
        else:
            scores = [_continuation_logprob(engine.logits, tokenizer, item.context, c)[0] for c in item.choices]
            correct += max(range(len(scores)), key=scores.__getitem__) == item.answer
    n = max(len(items), 1)
    accuracy = correct / n
    return {"value": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n), "unit": "fraction",
            "higher_is_better": True, "samples": len(items)}


def task_metrics(engine: Any, tokenizer: Any, tasks: Sequence[str], *, count: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``task/<name>/acc`` metrics of each task on ``count`` items from the held-out corpus."""
    descriptions = {"last_word": "last-word prediction (LAMBADA-style) on held-out Wikipedia summaries",
                    "cloze": "4-choice word cloze on held-out Wikipedia summaries"}
    out = {}
    for task in tasks:
        items = build_items(task, tokenizer, count=count, seed=seed)
        out[f"task/{task}/acc"] = {**score(engine, tokenizer, task, items), "dataset": descriptions[task],
                                   "engine": engine.name, "note": "hfcompress's own scorer; standard error sqrt(p(1-p)/n)"}
    return out

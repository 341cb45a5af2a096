"""Our sliding-window perplexity against the plain transformers perplexity-guide loop, same text, same process.

Prints both values (they must agree to ~1e-5) and the time ratio (ours / reference; < 1 means ours is faster).
The reference is the loop of https://huggingface.co/docs/transformers/perplexity: labels = -100 on the
context part of each window, ``model(window, labels=labels).loss`` times the number of scored tokens.

Usage:
    python benchmarks/perplexity_reference.py                       # embedded SmolLM2-135M-Instruct, 2048 tokens
    python benchmarks/perplexity_reference.py --tokens 4096 --context 1024 --stride 512 --repeats 2
    python benchmarks/perplexity_reference.py --model path/or/hub-id
"""

from __future__ import annotations

import argparse
import math
import statistics
import time


def reference_perplexity(model, ids, *, context: int, stride: int) -> tuple[float, int]:
    """The transformers guide's loop, verbatim in spirit (returns summed NLL, scored tokens)."""
    import torch

    seq_len = ids.size(0)
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    with torch.no_grad():
        for begin in range(0, seq_len, stride):
            end = min(begin + context, seq_len)
            trg_len = end - prev_end
            input_ids = ids[begin:end][None]
            target_ids = input_ids.clone()
            target_ids[:, :-trg_len] = -100
            loss = model(input_ids, labels=target_ids).loss
            valid = int((target_ids[:, 1:] != -100).sum())
            nll_sum += float(loss) * valid
            n_tokens += valid
            prev_end = end
            if end == seq_len:
                break
    return nll_sum, n_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Hub id or folder (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of each (median reported), after one warm-up window")
    args = parser.parse_args()

    import torch

    from hfcompress.bench.perplexity import negative_log_likelihood
    from hfcompress.data import evaluation_token_ids
    from hfcompress.environment import hardware_summary
    from hfcompress.loading import load_model

    loaded = load_model(args.model)
    ids, description = evaluation_token_ids("default", loaded.tokenizer, max_tokens=args.tokens)
    model = loaded.model
    with torch.no_grad():
        model(ids[: min(64, len(ids))][None])  # warm-up

    ours_t, ref_t = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        nll, count = negative_log_likelihood(model, ids, context=args.context, stride=args.stride)
        ours_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        ref_nll, ref_count = reference_perplexity(model, ids, context=args.context, stride=args.stride)
        ref_t.append(time.perf_counter() - start)

    ours, ref = math.exp(nll / count), math.exp(ref_nll / ref_count)
    print(f"model: {loaded.source.model_id}; text: {description}, {len(ids)} tokens; context {args.context}, stride {args.stride}")
    print(f"hardware: {hardware_summary()}; torch threads {torch.get_num_threads()}")
    print(f"hfcompress perplexity : {ours:.6f}  ({count} scored tokens, median {statistics.median(ours_t):.2f} s)")
    print(f"transformers guide    : {ref:.6f}  ({ref_count} scored tokens, median {statistics.median(ref_t):.2f} s)")
    print(f"relative difference   : {abs(ours - ref) / ref:.2e}")
    print(f"time ratio ours/ref   : {statistics.median(ours_t) / statistics.median(ref_t):.3f}")


if __name__ == "__main__":
    main()

"""What hfcompress adds on top of llm-compressor: our GPTQ path against calling ``oneshot`` directly.

Both runs load the same model folder (a 4-layer slice of the embedded SmolLM2-135M-Instruct, or
``--layers``), use the same tokenized calibration samples and the same GPTQModifier, in the same process.
Ours: ``CompressedModel.from_pretrained(folder, recipe=GPTQConfig(...), calibration=texts)`` (which also
validates, samples and tokenizes the calibration text and records provenance). Direct: transformers
``from_pretrained`` + ``oneshot``. Runs alternate after one warm-up; the medians are compared.

Run:
    python benchmarks/adapter_overhead.py              # ~ a few minutes on 2 cores
    python benchmarks/adapter_overhead.py --repeats 5 --layers 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import hfcompress as hfc
from hfcompress.data import load_calibration, read_texts
from hfcompress.environment import hardware_summary
from hfcompress.loading import load_model
from hfcompress.methods.llmcompressor import LLMCompressorQuantization, run_oneshot


def _slice(folder: Path, layers: int) -> None:
    loaded = load_model(None)
    model = loaded.model
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="decoder layers kept from SmolLM2 (30 in all)")
    parser.add_argument("--samples", type=int, default=16, help="calibration samples")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per calibration sample")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, after one warm-up of each")
    args = parser.parse_args()

    from llmcompressor import oneshot  # noqa: F401  (import cost outside the timings)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = hfc.GPTQConfig(bits=4, group_size=64)
    with tempfile.TemporaryDirectory(prefix="hfcompress-overhead-") as tmp:
        folder = Path(tmp) / "smollm2-slice"
        _slice(folder, args.layers)
        texts, _ = read_texts("default")
        if not texts:  # hfcompress.data's corpus reader found no text (see quant_defaults._text_specs)
            from quant_defaults import _text_specs

            texts = _text_specs()[0]
        texts = texts[: args.samples * 8]  # plenty for the samples; the same list feeds both runs

        def ours() -> float:
            started = time.perf_counter()
            hfc.CompressedModel.from_pretrained(
                str(folder), recipe=config, calibration=texts, num_samples=args.samples, seq_len=args.seq_len
            )
            return time.perf_counter() - started

        def direct() -> float:
            started = time.perf_counter()
            model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
            tokenizer = AutoTokenizer.from_pretrained(folder)
            calibration = load_calibration(texts, tokenizer, num_samples=args.samples, seq_len=args.seq_len)
            modifiers = LLMCompressorQuantization().modifiers(model, config)
            oneshot(
                model=model,
                tokenizer=tokenizer,
                recipe=modifiers,
                dataset=calibration.to_dataset(),
                num_calibration_samples=len(calibration.input_ids),
                max_seq_length=args.seq_len,
                shuffle_calibration_samples=False,
            )
            return time.perf_counter() - started

        ours(), direct()  # warm-up: first-use imports and caches
        times: dict[str, list[float]] = {"ours": [], "direct": []}
        for i in range(args.repeats):
            for name, run in (("ours", ours), ("direct", direct)) if i % 2 == 0 else (("direct", direct), ("ours", ours)):
                times[name].append(run())
                print(f"run {i + 1} {name:<6} {times[name][-1]:7.2f} s", flush=True)

    ours_s, direct_s = statistics.median(times["ours"]), statistics.median(times["direct"])
    print(f"\nGPTQ W4 g64, SmolLM2 first {args.layers} layers, {args.samples} x {args.seq_len} calibration tokens, {hardware_summary()}")
    print(f"hfcompress CompressedModel.from_pretrained: median {ours_s:.2f} s  {['%.2f' % t for t in times['ours']]}")
    print(f"llm-compressor oneshot directly:            median {direct_s:.2f} s  {['%.2f' % t for t in times['direct']]}")
    print(f"ratio ours/direct: {ours_s / direct_s:.3f}")


if __name__ == "__main__":
    main()

"""Break what users depend on, one thing at a time, and check that a test fails each time.

Each breakage below is a small edit that would ship a wrong variant, a wrong number or a leaked secret while
everything still runs (GPTQ silently replaced by round-to-nearest, a mask that ignores the activations, a speed
not multiplied by the batch, a token in a commit description...). For each, a copy of the package gets the edit and
the tests that guard it run against the copy; the breakage is *caught* when they fail. Every breakage must be caught.

Run (about 10 minutes on 2 cores; it never touches the working tree):
    .venv/bin/python scripts/mutation_check.py
    .venv/bin/python scripts/mutation_check.py --only gptq-as-rtn awq-without-scaling
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Breakage:
    """Edits (file, text, replacement; every occurrence) and the tests that must fail under them."""

    name: str
    what: str
    edits: list[tuple[str, str, str]]
    tests: list[str]


CLAIMS = "tests/test_method_claims.py"
MEASURES = "tests/test_measurement_claims.py"
BREAKAGES = [
    Breakage("gptq-as-rtn", "GPTQ silently replaced by round-to-nearest with the same scheme",
             [("hfcompress/methods/quantization/llmcompressor.py", "        if isinstance(config, RTNConfig):",
               "        if isinstance(config, (RTNConfig, GPTQConfig)):")],
             [f"{CLAIMS}::test_gptq_corrects_what_round_to_nearest_leaves"]),
    Breakage("awq-without-scaling", "AWQ's scaling step removed (plain round-to-nearest)",
             [("hfcompress/methods/quantization/llmcompressor.py",
               "            AWQModifier(duo_scaling=config.duo_scaling, n_grid=config.grid_points),\n", "")],
             [f"{CLAIMS}::test_awq_scaling_beats_plain_rounding_on_outlier_channels"]),
    Breakage("wanda-sparsegpt-as-magnitude", "Wanda and SparseGPT replaced by magnitude masks that ignore the data",
             [("hfcompress/methods/pruning/llmcompressor.py", 'pruning_methods = ("wanda", "sparsegpt")', "pruning_methods = ()"),
              ("hfcompress/methods/pruning/magnitude.py", 'pruning_methods = ("magnitude",)',
               'pruning_methods = ("magnitude", "wanda", "sparsegpt")')],
             [f"{CLAIMS}::test_wanda_and_sparsegpt_read_the_activations"]),
    Breakage("asvd-as-svd", "activation-aware SVD silently running plain SVD",
             [("hfcompress/methods/lowrank/adapter.py",
               "scales = _input_scales(model, list(layers.values()), calibration) if config.activation_aware else None",
               "scales = None")],
             [f"{CLAIMS}::test_activation_aware_svd_keeps_what_the_activations_use"]),
    Breakage("structured-keeps-least-important", "structured pruning keeping the least important neurons and heads",
             [("hfcompress/methods/structured/adapter.py", "torch.topk(scores[i], plan.keep)", "torch.topk(scores[i], plan.keep, largest=False)")],
             [f"{CLAIMS}::test_structured_pruning_removes_the_least_important_neurons",
              f"{CLAIMS}::test_structured_pruning_removes_the_least_important_kv_groups"]),
    Breakage("held-out-text-leaks", "calibration and evaluation both reading the whole corpus",
             [("hfcompress/data.py", "return embedded_corpus()[:-EVAL_HOLDOUT]", "return embedded_corpus()"),
              ("hfcompress/data.py", "return embedded_corpus()[-EVAL_HOLDOUT:]", "return embedded_corpus()")],
             [f"{MEASURES}::test_evaluation_text_is_never_calibration_text"]),
    Breakage("agreement-always-one", "next-token agreement reported as 1.0 whatever the predictions",
             [("hfcompress/bench/benchmark.py", "same = float((torch.tensor(a) == torch.tensor(b)).float().mean())", "same = 1.0")],
             [f"{MEASURES}::test_next_token_agreement_is_the_share_of_equal_greedy_predictions"]),
    Breakage("batch-not-multiplied", "batched decode and prefill tokens/s not multiplied by the batch size",
             [("hfcompress/bench/speed.py", "append(batch * prompt_tokens / prefill)", "append(prompt_tokens / prefill)"),
              ("hfcompress/bench/speed.py", "append(batch * new_tokens / decode)", "append(new_tokens / decode)")],
             [f"{MEASURES}::test_batched_speeds_count_every_sequence_of_the_batch"]),
    Breakage("reproduce-drops-recipe", "the reproduce command in results.json dropping the recipe",
             [("hfcompress/artifacts.py", 'parts += ["--recipe", shlex.quote(recipe_file), "-o", shlex.quote(output)]',
               'parts += ["-o", shlex.quote(output)]')],
             [f"{MEASURES}::test_the_reproduce_command_redoes_the_recipe"]),
    Breakage("token-in-commit-description", "the token written into the commit description sent to the Hub",
             [("hfcompress/publish/hub.py", "commit_description=_commit_description(folder),",
               "commit_description=_commit_description(folder) + token,")],
             [f"{MEASURES}::test_no_byte_of_the_token_reaches_the_hub_outside_its_header"]),
    Breakage("gguf-ignores-type", "a GGUF step writing another type than the one asked",
             [("hfcompress/methods/gguf/adapter.py", "llamacpp.quantize(source, final, config.quant,",
               'llamacpp.quantize(source, final, "Q8_0",')],
             ["tests/test_gguf.py::test_the_gguf_step_records_its_types_and_its_importance_matrix"]),
    Breakage("gguf-ignores-imatrix", "a GGUF step computing an importance matrix and not quantizing with it",
             [("hfcompress/methods/gguf/adapter.py", "imatrix=imatrix, log=log)", "imatrix=None, log=log)")],
             ["tests/test_gguf.py::test_the_gguf_step_records_its_types_and_its_importance_matrix"]),
    Breakage("finetune-refills-pruned-weights", "fine-tuning after pruning without the mask held (refilled, then re-zeroed)",
             [("hfcompress/methods/distill/adapter.py", "holds = context.holds if student is model else ()", "holds = ()")],
             ["tests/test_pipelines.py"]),
    Breakage("qat-trains-nothing", "quantization-aware training that never moves a weight (post-training rounding)",
             [("hfcompress/methods/qat/adapter.py", "steps=config.steps, learning_rate=config.learning_rate,",
               "steps=config.steps, learning_rate=1e-30,")],
             ["tests/test_qat.py::test_training_lowers_the_loss_and_the_saved_model_reloads_with_its_outputs"]),
    Breakage("qat-no-straight-through", "QAT's rounding without the straight-through gradient (nothing reaches the weights)",
             [("hfcompress/methods/qat/fakequant.py", "rounded = clamped + (torch.round(clamped) - clamped).detach()",
               "rounded = torch.round(clamped)")],
             ["tests/test_qat.py::test_gradients_pass_the_rounding_and_reach_the_scales"]),
    Breakage("qat-saves-untrained-scales", "QAT saving the starting scales instead of the trained ones",
             [("hfcompress/methods/qat/adapter.py",
               "            module.weight_scale.data = scale.reshape(module.weight_scale.shape).to(module.weight_scale.dtype)\n", "")],
             ["tests/test_qat.py::test_fake_quant_forward_equals_the_saved_model"]),
    Breakage("gqa-pca-as-mean", "GQA's PCA merge silently averaging the heads",
             [("hfcompress/methods/architecture/gqa.py", 'key_method = method if rotary and not hasattr(attn, "k_norm") else "mean"',
               'key_method = "mean"'),
              ("hfcompress/methods/architecture/gqa.py", 'value_method = method if not hasattr(attn, "v_norm") else "mean"',
               'value_method = "mean"')],
             ["tests/test_architecture.py::test_pca_merge_is_exact_where_the_heads_are_linear_images_of_each_other_and_the_mean_is_not"]),
    Breakage("experts-keep-least-important", "expert pruning keeping the experts that contribute least",
             [("hfcompress/methods/structured/experts.py", "key=lambda e: (-float(score[e]), e))", "key=lambda e: (float(score[e]), e))")],
             ["tests/test_structured.py::test_reap_importance_keeps_the_experts_that_contribute"]),
    Breakage("moe-experts-not-repacked", "a pruned MoE saved with llm-compressor's per-expert Linears (random experts on reload)",
             [("hfcompress/methods/backends/llmcompressor.py", "    _repack_experts(model)\n    return model", "    return model")],
             ["tests/test_quantization.py::test_mixture_of_experts_models_prune_and_reload_but_compressed_tensors_quantization_is_refused"]),
    Breakage("neurons-width-not-rounded", "structured neurons keeping the exact ratio's width (a GGUF step then leaves F16 rows)",
             [("hfcompress/methods/structured/plan.py", 'if config.target == "neurons" and config.count is None and multiple > 1:',
               "if False:")],
             ["tests/test_structured.py::test_the_kept_mlp_width_is_rounded_to_whole_quantization_blocks"]),
    Breakage("step-cost-not-counted", "a step's parameters after it recorded as the parameters before it",
             [("hfcompress/api.py", "parameters_before, count_parameters(self.model)))", "parameters_before, parameters_before))")],
             ["tests/test_pipelines.py::test_the_card_says_what_each_step_of_a_pipeline_cost"]),
    Breakage("task-file-scores-any-answer", "a task file scored as right whatever the model generates",
             [("hfcompress/bench/tasks.py", "correct += results[0][1]", "correct += True")],
             ["tests/test_tasks.py::test_a_task_file_scores_the_share_of_responses_greedy_decoding_gives"]),
    Breakage("adapter-not-merged", "a PEFT adapter given as the model loaded as its bare base (the adapter dropped)",
             [("hfcompress/loading.py", "merged = PeftModel.from_pretrained(loaded.model, str(folder)).merge_and_unload()",
               "merged = loaded.model")],
             ["tests/test_peft.py::test_an_adapter_folder_is_merged_compressed_and_recorded"]),
    Breakage("shared-layers-not-tied", "layer sharing that averages into the first layer and leaves the others their own weights",
             [("hfcompress/methods/architecture/share_layers.py", "        model.tie_weights(recompute_mapping=False)\n", "")],
             ["tests/test_share_layers.py::test_the_layers_of_a_group_hold_the_same_tensors_with_the_chosen_values"]),
    Breakage("gradual-as-repeated-oneshot", "a gradual schedule pruning to the final sparsity at its first stage",
             [("hfcompress/methods/pruning/config.py", "return cubic_sparsities(self.sparsity, self.stages)",
               "return [self.sparsity] * self.stages")],
             ["tests/test_gradual_pruning.py::test_a_gradual_run_reaches_every_stage_with_nested_masks_and_trains_without_refilling"]),
    Breakage("experts-merge-drops", "expert merging that silently drops the removed experts instead",
             [("hfcompress/methods/structured/experts.py", "        if merge:\n            merged[layer]", "        if False:\n            merged[layer]")],
             ["tests/test_structured.py::test_merged_experts_fold_into_the_most_alike_kept_one_by_usage"]),
]


def run(breakage: Breakage, workdir: Path) -> tuple[bool, float, str]:
    """Apply ``breakage`` to a fresh copy of the package in ``workdir``, run its tests; (caught, seconds, last line)."""
    copy = workdir / breakage.name
    shutil.copytree(ROOT / "hfcompress", copy / "hfcompress", symlinks=True)
    for name in ("tests", "conftest.py", "pyproject.toml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, copy / name)
    for path, text, replacement in breakage.edits:
        target = copy / path
        original = target.read_text(encoding="utf-8")
        if text not in original:
            raise SystemExit(f"{breakage.name}: the text to break is no longer in {path}; update the breakage")
        target.write_text(original.replace(text, replacement), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy), "HFCOMPRESS_QUIET": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *breakage.tests],
                          cwd=copy, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return done.returncode not in (0, 5), time.perf_counter() - started, lines[-1] if lines else done.stderr[-200:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="breakage names to run")
    args = parser.parse_args()
    chosen = [b for b in BREAKAGES if not args.only or b.name in args.only]
    caught = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hfcompress-mutations-") as tmp:
        for breakage in chosen:
            ok, seconds, last = run(breakage, Path(tmp))
            caught += ok
            print(f"{'caught' if ok else 'MISSED':>7}  {breakage.name:<34} {seconds:5.0f} s  {last}", flush=True)
    print(f"\n{caught} of {len(chosen)} breakages caught in {time.perf_counter() - started:.0f} s")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())

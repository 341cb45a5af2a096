"""Pipelines of steps: fine-tuning after pruning keeps the sparsity it is given, inside the trainer."""

from __future__ import annotations

import pytest
import torch

import hfcompress as hfc
from hfcompress.methods.layers import target_linear_layers

DISTILL = dict(steps=4, batch_size=2, seq_len=32, eval_every=2, eval_tokens=64, save_every=4, learning_rate=1e-3)


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_distillation_after_pruning_trains_with_the_mask_held(pattern, tiny_llama_dir, tiny_texts):
    prune = hfc.PruneConfig(method="magnitude", sparsity=0.5, pattern=pattern)
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=[prune, hfc.DistillConfig(**DISTILL)],
                                             calibration=tiny_texts, num_samples=4, seq_len=32)
    distill = cm.steps[1].info
    # Nothing was refilled while training (counted inside the trainer after every optimizer step), so nothing had to
    # be zeroed afterwards: the model that was trained and evaluated is the model that is saved.
    assert distill["held"]["refilled_during_training"] == 0
    assert distill["sparsity_mask_restored"]["refilled_weights_zeroed"] == 0
    assert distill["global_step"] == 4 and distill["eval_after"]["perplexity"] > 0
    weights = [layer.weight for layer in target_linear_layers(cm.model).values()]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == sum(w.numel() for w in weights) // 2  # exactly the sparsity asked
    # Training really changed the kept weights (the mask did not freeze the model).
    before = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=prune)
    changed = [not torch.equal(a, b.weight) for a, b in zip(weights, target_linear_layers(before.model).values())]
    assert all(changed)


def test_the_card_says_what_each_step_of_a_pipeline_cost(tiny_llama_dir, tiny_texts, tmp_path):
    from hfcompress.methods.layers import count_parameters

    base = count_parameters(hfc.CompressedModel.from_pretrained(str(tiny_llama_dir)).model)
    recipe = [hfc.StructuredPruneConfig(target="neurons", ratio=0.25, importance="magnitude"), hfc.DistillConfig(**DISTILL)]
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=recipe, calibration=tiny_texts, num_samples=4, seq_len=32)
    pruned, distilled = (s.to_dict() for s in cm.steps)
    # The parameters each step removed are counted on the model before and after it.
    assert pruned["parameters_before"] == base and pruned["parameters_after"] == count_parameters(cm.model) < base
    assert distilled["parameters_before"] == distilled["parameters_after"] == pruned["parameters_after"]
    folder = cm.save_pretrained(tmp_path / "variant")
    card = (folder / "README.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith("| structured_prune |"))
    assert " -> " in row and f"({(pruned['parameters_after'] - base) / base:+.1%})" in row
    before, after = distilled["info"]["eval_before"], distilled["info"]["eval_after"]
    row = next(line for line in card.splitlines() if line.startswith("| distill |"))
    assert f"perplexity {before['perplexity']:.2f} -> {after['perplexity']:.2f}" in row
    assert f"KL to the base {before['kl']:.3f} -> {after['kl']:.3f}" in row

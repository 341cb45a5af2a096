"""Gradual pruning (Zhu & Gupta 2017) on a tiny random Llama: the cubic schedule, every stage reached, nested masks,
nothing refilled while fine-tuning, the schedule kept through YAML and the saved folder, bad settings in one line."""

from __future__ import annotations

import json

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import HFCompressError
from hfcompress.methods.distill.adapter import TransformersDistillAdapter
from hfcompress.methods.layers import target_linear_layers
from hfcompress.methods.pruning.llmcompressor import LLMCompressorPruning
from hfcompress.methods.pruning.magnitude import TorchMagnitudePruning

FINETUNE = dict(steps=2, batch_size=2, seq_len=32, eval_every=0, eval_tokens=64, save_every=2, learning_rate=1e-3)
CALIBRATION = dict(num_samples=4, seq_len=32)


def _gradual(method: str = "magnitude", sparsity: float = 0.75, stages: int = 3) -> hfc.PruneConfig:
    return hfc.PruneConfig(method=method, sparsity=sparsity, schedule="gradual", stages=stages,
                           finetune=hfc.DistillConfig(**FINETUNE))


def _zeros(model) -> dict[str, torch.Tensor]:
    return {name: (layer.weight.detach() == 0).clone() for name, layer in target_linear_layers(model).items()}


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: layer.weight.detach().clone() for name, layer in target_linear_layers(model).items()}


def _exact_zeros(model, sparsity: float) -> int:
    """Zeros of a per-row pruning to ``sparsity``: floor(in * sparsity) in every row of every pruned layer."""
    return sum(layer.weight.shape[0] * int(layer.weight.shape[1] * sparsity) for layer in target_linear_layers(model).values())


@pytest.fixture()
def snapshots(monkeypatch):
    """The model's zeros and weights right after each pruning and each fine-tuning step, before the orchestrator puts
    any mask back: what the step itself left."""
    taken: list[tuple[str, dict, dict]] = []

    def recording(adapter_class, label):
        original = adapter_class.compress

        def compress(self, model, tokenizer, config, context):
            result = original(self, model, tokenizer, config, context)
            taken.append((label, _zeros(result.model), _weights(result.model)))
            return result

        monkeypatch.setattr(adapter_class, "compress", compress)

    recording(TorchMagnitudePruning, "prune")
    recording(LLMCompressorPruning, "prune")
    recording(TransformersDistillAdapter, "finetune")
    return taken


def test_the_stage_sparsities_follow_the_cubic_schedule_and_end_at_the_target():
    config = hfc.PruneConfig(method="magnitude", sparsity=0.7, schedule="gradual", stages=4,
                             finetune=hfc.DistillConfig(steps=10, seed=3))
    # s_t = 0.7 * (1 - (1 - t/4)^3) by hand: 0.7 * (1 - 27/64), 0.7 * (1 - 1/8), 0.7 * (1 - 1/64), 0.7.
    by_hand = [0.7 * 37 / 64, 0.7 * 7 / 8, 0.7 * 63 / 64, 0.7]
    assert config.stage_sparsities() == pytest.approx(by_hand, abs=1e-6)
    steps = config.expand()
    assert [step.kind for step in steps] == ["prune", "distill"] * 4
    prunes, finetunes = steps[0::2], steps[1::2]
    assert [p.sparsity for p in prunes] == pytest.approx(by_hand, abs=1e-6)
    assert prunes[-1].sparsity == 0.7  # exactly the target, not a rounded neighbour
    assert all(p.schedule == "oneshot" and p.finetune is None and p.method == "magnitude" for p in prunes)
    # The fine-tuning's steps are per stage; each stage draws other batches (seed + stage - 1).
    assert [f.steps for f in finetunes] == [10] * 4 and [f.seed for f in finetunes] == [3, 4, 5, 6]
    assert hfc.PruneConfig(method="magnitude", sparsity=0.5).expand() == [hfc.PruneConfig(method="magnitude", sparsity=0.5)]
    # Four stages unless told otherwise.
    assert hfc.PruneConfig(sparsity=0.5, schedule="gradual", finetune=hfc.DistillConfig()).stages == 4


# s_t = 0.75 * (1 - (1 - t/n)^3) by hand: n=3 gives 0.75 * 19/27, 0.75 * 26/27, 0.75; n=2 gives 0.75 * 7/8, 0.75.
@pytest.mark.parametrize("method, by_hand", [("magnitude", [0.75 * 19 / 27, 0.75 * 26 / 27, 0.75]),
                                             ("wanda", [0.75 * 7 / 8, 0.75])])
def test_a_gradual_run_reaches_every_stage_with_nested_masks_and_trains_without_refilling(
        method, by_hand, tiny_llama_dir, tiny_texts, snapshots):
    stages = len(by_hand)
    config = _gradual(method, stages=stages)
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=config, calibration=tiny_texts, **CALIBRATION)
    targets = config.stage_sparsities()
    assert targets == pytest.approx(by_hand, abs=1e-6)

    # Every stage is a step of its own: prune, fine-tune, prune, fine-tune, ...
    assert [(s.config.kind, getattr(s.config, "sparsity", None)) for s in cm.steps] == [
        step for target in targets for step in (("prune", target), ("distill", None))]
    assert cm.recipe == [config]  # the recipe stays as written

    # Each stage reached its sparsity: per row exactly floor(in * s_t) zeros, measured on the model it left.
    assert [label for label, _, _ in snapshots] == ["prune", "finetune"] * stages
    for stage, target in enumerate(targets):
        _, zeros, _ = snapshots[2 * stage]
        assert sum(int(z.sum()) for z in zeros.values()) == _exact_zeros(cm.model, target), (stage, target)
        assert cm.steps[2 * stage].info["target_sparsity"] == target
    assert cm.steps[-2].info["sparsity"] == pytest.approx(0.75, abs=1e-6)
    final = sum(int(z.sum()) for z in _zeros(cm.model).values())
    assert final == _exact_zeros(cm.model, 0.75)  # the saved model is exactly at the target

    # Nested masks: every weight zero after one step is still zero after every later step, and at the end.
    states = [zeros for _, zeros, _ in snapshots] + [_zeros(cm.model)]
    for earlier, later in zip(states, states[1:]):
        for name in earlier:
            assert bool(later[name][earlier[name]].all()), name
    # Fine-tuning refilled nothing (counted inside the trainer after every optimizer step, and after the step) ...
    for record in cm.steps[1::2]:
        assert record.info["held"]["refilled_during_training"] == 0
        assert record.info["sparsity_mask_restored"]["refilled_weights_zeroed"] == 0
    # ... yet it trained: the weights it kept changed between pruning and the end of the stage.
    for stage in range(stages):
        (_, _, pruned), (_, _, tuned) = snapshots[2 * stage], snapshots[2 * stage + 1]
        assert any(not torch.equal(pruned[name], tuned[name]) for name in pruned)
    # A later stage found nothing of the earlier ones to put back (magnitude and Wanda pick the zeros first).
    assert [cm.steps[2 * i].info.get("earlier_zeros_revived_and_zeroed") for i in range(stages)] == [None] + [0] * (stages - 1)


def test_gradual_sparsegpt_extends_the_earlier_mask_instead_of_moving_it(tiny_llama_dir, tiny_texts, snapshots):
    # Blocks of 16 columns, so SparseGPT's compensation reaches columns it has not pruned yet, earlier zeros among
    # them (with its own mask choice it moved 444 of them here, and the final sparsity overshot to 0.757).
    config = hfc.PruneConfig(method="sparsegpt", sparsity=0.75, block_size=16, schedule="gradual", stages=2,
                             finetune=hfc.DistillConfig(**FINETUNE))
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=config, calibration=tiny_texts, **CALIBRATION)
    states = [zeros for _, zeros, _ in snapshots] + [_zeros(cm.model)]
    for earlier, later in zip(states, states[1:]):
        for name in earlier:
            assert bool(later[name][earlier[name]].all()), name
    assert cm.steps[2].info["earlier_zeros_revived_and_zeroed"] == 0  # the second stage extended the first's mask
    # SparseGPT picks its mask per block of columns over all rows: the target, give or take a few weights.
    assert 0.75 <= cm.steps[2].info["sparsity"] <= 0.755


def test_a_backend_that_revives_earlier_zeros_has_them_zeroed_again_and_says_so():
    from hfcompress.methods.pruning import SparsityMask
    from hfcompress.methods.registry import StepContext
    from hfcompress.testing import tiny_model

    model, tok = tiny_model("llama")
    first = TorchMagnitudePruning().compress(model, tok, hfc.PruneConfig(method="magnitude", sparsity=0.5), StepContext())
    earlier = _zeros(model)
    with torch.no_grad():  # what a backend's compensation could do: move the pruned weights far from zero
        for name, layer in target_linear_layers(model).items():
            layer.weight.masked_fill_(earlier[name], 1.0)
    assert not any(bool(z.any()) for z in _zeros(model).values())
    second = TorchMagnitudePruning().compress(model, tok, hfc.PruneConfig(method="magnitude", sparsity=0.75),
                                              StepContext(holds=[first.hold]))
    later = _zeros(model)
    assert all(bool(later[name][earlier[name]].all()) for name in earlier)  # nested all the same
    assert second.info["earlier_zeros_revived_and_zeroed"] > 0
    assert second.info["sparsity"] >= 0.75
    # The new mask holds the earlier one's zeros, so the earlier mask lets go of the layers: one mask, not two.
    assert isinstance(second.hold, SparsityMask) and first.hold.restore(model) is None


def test_the_gradual_recipe_survives_yaml_the_saved_folder_and_reproduces_the_run(tiny_llama_dir, tiny_texts, tmp_path):
    config = _gradual(stages=2)
    text = hfc.recipe_to_yaml([config])
    assert "schedule: gradual" in text and "stages: 2" in text and "finetune:" in text and "kind: distill" in text
    assert hfc.recipe_from_yaml(text) == [config]
    # Both spellings of the nested step read back, as in any recipe.
    compact = "- prune: {method: magnitude, sparsity: 0.75, schedule: gradual, stages: 2, finetune: {distill: {steps: 2}}}"
    assert hfc.recipe_from_yaml(compact)[0].finetune == hfc.DistillConfig(steps=2)

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=config, calibration=tiny_texts, **CALIBRATION)
    cm.evaluate(base=False, reload=False, eval_data=[tiny_texts], max_tokens=64, context=32, stride=16, speed=False,
                generations=False, tasks=(), progress=False)
    folder = cm.save_pretrained(tmp_path / "gradual")
    manifest = json.loads((folder / "hfcompress.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    for recorded in (manifest["recipe"], results["variant"]["recipe"]):
        assert recorded[0]["schedule"] == "gradual" and recorded[0]["stages"] == 2
        assert recorded[0]["finetune"]["kind"] == "distill" and recorded[0]["finetune"]["steps"] == 2
    assert [step["kind"] for step in manifest["steps"]] == ["prune", "distill", "prune", "distill"]
    assert hfc.CompressedModel.from_pretrained(folder).recipe == [config]
    card = (folder / "README.md").read_text()
    assert "gradual, 2 stages 0.66 → 0.75" in card

    # `reproduce` re-runs recipe.yaml: the same stages, the same weights.
    again = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=folder / "recipe.yaml", calibration=tiny_texts,
                                                **CALIBRATION)
    assert [s.to_dict()["config"] for s in again.steps] == [s["config"] for s in manifest["steps"]]
    for name, weight in _weights(cm.model).items():
        assert torch.equal(_weights(again.model)[name], weight), name


@pytest.mark.parametrize("options, expected", [
    (dict(pattern="2:4"), "schedule='gradual' needs pattern='unstructured'"),
    (dict(stages=1), "stages=1 must be a whole number of at least 2"),
    (dict(stages=0), "stages=0 must be a whole number of at least 2"),
    (dict(finetune=None), "schedule='gradual' needs a training step"),
    (dict(finetune=hfc.GPTQConfig(bits=4)), "finetune=gptq is not a training step"),
    (dict(finetune=hfc.QATConfig(bits=4)), "finetune=qat is not a training step"),
    (dict(finetune={"kind": "rtn", "bits": 8}), "finetune=rtn is not a training step"),
    (dict(finetune="distill"), "finetune must be a training config"),
    (dict(finetune=hfc.DistillConfig(student={"num_hidden_layers": 1})), "would replace the model being pruned"),
    (dict(schedule="cubic"), "schedule='cubic' is not valid"),
    (dict(schedule="oneshot"), "stages= is used only with schedule='gradual'"),
    (dict(schedule="oneshot", stages=None), "finetune= is used only with schedule='gradual'"),
])
def test_bad_gradual_settings_fail_in_one_line(options, expected):
    settings = dict(method="magnitude", sparsity=0.7, schedule="gradual", stages=4, finetune=hfc.DistillConfig(steps=10))
    with pytest.raises(HFCompressError) as err:
        hfc.PruneConfig(**{**settings, **options})
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert " use " in message or " add " in message or "leave " in message  # and says what to do

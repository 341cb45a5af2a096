"""Recipes: a list of method configs applied in order, and the YAML file that holds one.

Two spellings of a step are accepted everywhere: compact ``{"gptq": {"bits": 4}}`` (what recipe.yaml writes)
and flat ``{"kind": "gptq", "bits": 4}`` (what hfcompress.json stores).

Example:
    >>> import hfcompress as hfc
    >>> recipe = [hfc.PruneConfig(method="wanda", sparsity=0.5), hfc.GPTQConfig(bits=4, group_size=64)]
    >>> hfc.recipe_from_yaml(hfc.recipe_to_yaml(recipe)) == recipe
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from .config import CompressionConfig
from .errors import HFCompressError


def step_dict(step: dict[str, Any]) -> dict[str, Any]:
    """A step as the flat ``{"kind": ..., **options}`` dict, whichever spelling it was written in.

    Example:
        >>> step_dict({"gptq": {"bits": 4}})
        {'kind': 'gptq', 'bits': 4}
    """
    if "kind" not in step and len(step) == 1:
        (kind, options), = step.items()
        if options is not None and not isinstance(options, dict):
            raise HFCompressError(f"the options of recipe step {kind!r} must be a mapping, e.g. {{{kind}: {{bits: 4}}}}")
        return {"kind": kind, **(options or {})}
    return dict(step)


def as_recipe(recipe: Any) -> list[CompressionConfig]:
    """Normalise what users pass as ``recipe=``: one config, a list, dicts, a YAML path or None.

    Example:
        >>> from hfcompress import RTNConfig
        >>> as_recipe(RTNConfig()) == [RTNConfig()]
        True
    """
    if recipe is None:
        return []
    if isinstance(recipe, CompressionConfig):
        return [recipe]
    if isinstance(recipe, (str, Path)):
        return load_recipe(recipe)
    if isinstance(recipe, dict):
        return [CompressionConfig.from_dict(step_dict(recipe))]
    if isinstance(recipe, (list, tuple)):
        steps = []
        for step in recipe:
            if isinstance(step, CompressionConfig):
                steps.append(step)
            elif isinstance(step, dict):
                steps.append(CompressionConfig.from_dict(step_dict(step)))
            else:
                raise HFCompressError(f"a recipe step must be a config such as hfc.GPTQConfig(...), not {type(step).__name__}")
        return steps
    raise HFCompressError(f"recipe must be a config, a list of configs or a YAML path, not {type(recipe).__name__}")


def expand_recipe(recipe: Sequence[CompressionConfig]) -> list[CompressionConfig]:
    """The steps a recipe runs, in order: each config's ``expand()`` (a gradual pruning becomes its stages, each
    followed by its fine-tuning step), every other config as it is.

    The recipe itself stays as written: it is what hfcompress.json and recipe.yaml record and ``reproduce``
    re-runs, while each expanded step gets its own record in the step table.

    Example:
        >>> import hfcompress as hfc
        >>> gradual = hfc.PruneConfig(method="magnitude", sparsity=0.7, schedule="gradual", stages=2,
        ...                           finetune=hfc.DistillConfig(steps=5))
        >>> [(step.kind, getattr(step, "sparsity", None)) for step in expand_recipe([gradual])]
        [('prune', 0.6125), ('distill', None), ('prune', 0.7), ('distill', None)]
    """
    return [expanded for step in recipe for expanded in step.expand()]


def recipe_to_dicts(recipe: Sequence[CompressionConfig]) -> list[dict[str, Any]]:
    """The recipe as a list of ``{"kind": ..., **options}`` dicts (what hfcompress.json stores)."""
    return [step.to_dict() for step in recipe]


def compact_steps(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat step dicts in the compact ``{kind: {options}}`` spelling of recipe.yaml.

    Example:
        >>> compact_steps([{"kind": "rtn", "bits": 8}])
        [{'rtn': {'bits': 8}}]
    """
    out = []
    for step in steps:
        options = step_dict(step)
        kind = options.pop("kind", "?")
        out.append({kind: options})
    return out


def recipe_to_yaml(recipe: Sequence[CompressionConfig]) -> str:
    """YAML text for a recipe, in the compact ``- gptq: {bits: 4, ...}`` form.

    Example:
        >>> from hfcompress import GPTQConfig
        >>> print(recipe_to_yaml([GPTQConfig(bits=4, group_size=64)]).splitlines()[0])
        recipe:
    """
    return yaml.safe_dump({"recipe": compact_steps(recipe_to_dicts(recipe))}, sort_keys=False)


def recipe_from_yaml(text: str) -> list[CompressionConfig]:
    """Parse YAML text holding one recipe (a list, or a mapping with a ``recipe`` key).

    Example:
        >>> recipe_from_yaml("- rtn: {bits: 4}")
        [RTNConfig(bits=4, group_size='auto', symmetric=False, observer='minmax', ignore=['lm_head'])]
    """
    data = safe_load_yaml(text, "recipe")
    if isinstance(data, dict) and "recipe" in data:
        data = data["recipe"]
    if isinstance(data, dict) and ("variants" in data or "recipes" in data):
        raise HFCompressError("this YAML holds a grid of named recipes; use load_grid / 'hfcompress grid' for it")
    if not isinstance(data, list):
        raise HFCompressError("a recipe YAML must be a list of steps or a mapping with a 'recipe:' list")
    return as_recipe(data)


def load_recipe(path: str | Path) -> list[CompressionConfig]:
    """Read one recipe from a YAML file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "recipe.yaml"
        >>> _ = path.write_text("recipe:\\n  - prune: {method: magnitude, sparsity: 0.5}\\n")
        >>> load_recipe(path)[0].method
        'magnitude'
    """
    path = Path(path)
    if not path.is_file():
        raise HFCompressError(f"recipe file {str(path)!r} not found")
    return recipe_from_yaml(path.read_text(encoding="utf-8"))


def safe_load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` with a one-line error naming what was being read."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "syntax error"
        raise HFCompressError(f"the {what} YAML could not be parsed: {first}") from None

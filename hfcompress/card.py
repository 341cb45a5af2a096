"""Model cards for saved variants (placeholder until the card templates land: writes the Hub metadata only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_model_card(folder: Path, *, manifest: dict[str, Any], results: dict[str, Any] | None = None) -> Path:
    """Write README.md with the YAML metadata the Hub reads (base_model, tags, library_name)."""
    from huggingface_hub import ModelCard, ModelCardData

    kinds = [step["kind"] for step in manifest.get("recipe", [])]
    data = ModelCardData(
        base_model=manifest["base_model"]["model_id"],
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["hfcompress", *kinds],
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n# Compressed with hfcompress\n\nRecipe: {', '.join(kinds) or 'none'}\n")
    path = Path(folder) / "README.md"
    card.save(path)
    return path

"""Publishing: the model card (data -> template -> README.md) and the Hub (one repo per variant, collections).

Example:
    >>> from hfcompress.publish import card_context
    >>> card_context({"recipe": []})["relation"] is None
    True
"""

from .card import build_model_card, rewrite_model_card, validate_card_text, write_model_card
from .card_data import card_context, card_metadata, eval_result_entries, sibling_entry
from .hub import push_folder, push_grid, variant_repo_id

__all__ = [
    "write_model_card", "rewrite_model_card", "build_model_card", "validate_card_text",
    "card_context", "card_metadata", "eval_result_entries", "sibling_entry",
    "push_folder", "push_grid", "variant_repo_id",
]

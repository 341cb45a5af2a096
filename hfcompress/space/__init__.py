"""The comparison Space: every variant of one base model in a table, two plots, side-by-side generation.

Data flows one way: a *source* (a runs folder of saved variants, one variant folder, the ``results/`` bundled in
a deployed Space, or a Hub collection) -> ``variants`` -> ``table`` (table, plots, pages) and ``generation`` ->
``app`` (Gradio); ``deploy`` pushes ``spaces/compare/`` to a Hub Space. ``spaces/compare/app.py`` imports
``build_app``, ``launch`` and ``space_source`` from here.

Example:
    >>> from hfcompress.space import find_variants, variant_table
    >>> vs = find_variants("runs/smollm2-grid")                  # doctest: +SKIP
    >>> variant_table(vs).iloc[0]["variant"]                       # the base model comes first  # doctest: +SKIP
"""

from .app import app_theme, build_app, launch, serve
from .deploy import build_space_folder, push_space, template_dir
from .generation import DEFAULT_MEMORY_MB, MAX_SLOTS, MEMORY_ENV, GenerationStats, Generator, ModelCache
from .table import TABLE_COLUMNS, load_snippet, strip_yaml_header, styled_table, table_rows, tradeoff_figure, variant_page, variant_table
from .variants import (
    BASE_FAMILY,
    BUNDLE_DIR,
    SOURCE_ENV,
    SPACE_CONFIG_NAME,
    Variant,
    VariantSet,
    find_variants,
    read_variant_results,
    space_source,
)

__all__ = [
    "build_app", "launch", "serve", "app_theme", "space_source", "find_variants", "read_variant_results", "Variant",
    "VariantSet", "table_rows", "variant_table", "styled_table", "tradeoff_figure", "variant_page", "load_snippet",
    "strip_yaml_header", "ModelCache", "Generator", "GenerationStats", "build_space_folder", "push_space", "template_dir",
    "TABLE_COLUMNS", "BASE_FAMILY", "MAX_SLOTS", "DEFAULT_MEMORY_MB", "MEMORY_ENV", "SOURCE_ENV", "SPACE_CONFIG_NAME", "BUNDLE_DIR",
]

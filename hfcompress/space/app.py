"""The comparison app (Gradio): leaderboard table and plots, side-by-side generation, variant pages.

Endpoints (``api_name``): ``/table`` (filter + sort), ``/variant`` (variant page), ``/generate`` (side-by-side,
streamed), ``/reload`` (read the source again).

Example:
    >>> import tempfile
    >>> demo = build_app(tempfile.mkdtemp())
    >>> type(demo).__name__
    'Blocks'
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

from ..errors import HFCompressError
from ..methods.registry import families
from .generation import MAX_SLOTS, Generator
from .table import TABLE_COLUMNS, styled_table, tradeoff_figure, variant_page, variant_table
from .variants import VariantSet, find_variants


_CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#hfc-header h1 {margin-bottom: 0.1em;}
#hfc-header p {color: var(--body-text-color-subdued); margin-top: 0;}
#hfc-problems {border-left: 4px solid #f59e0b; background: #fffbeb; padding: 0.4em 1em; border-radius: 6px;}
#hfc-problems, #hfc-problems * {color: #78350f !important;}
.hfc-slot-status {font-size: 0.9em; color: var(--body-text-color-subdued); min-height: 1.6em;}
.hfc-slot-name h3 {margin: 0;}
#hfc-table table, #hfc-table td, #hfc-table th {font-family: var(--font) !important; font-size: 0.92em;}
#hfc-table {--font-mono: var(--font);}
"""


def app_theme() -> Any:
    """The Gradio theme of the Space (pass it to ``launch``, as Gradio 6 takes themes there)."""
    import gradio as gr

    return gr.themes.Soft(primary_hue="orange", secondary_hue="amber", neutral_hue="slate")


def _header_markdown(variants: VariantSet) -> str:
    n = len(variants.variants)
    if not n:
        return (f"# Compare compressed variants\nNothing to compare yet in `{variants.source or 'no source'}`: "
                "see the message below, then read the results again from the About tab.")
    base = variants.base.get("model_id") or "an unknown base model"
    hardware = ""
    for v in variants.variants:
        hw = ((v.results or {}).get("environment") or {}).get("hardware") or {}
        if hw:
            hardware = " · measured on " + ", ".join(str(x) for x in (hw.get("cpu") or hw.get("device"), hw.get("gpu")) if x)
            break
    return (f"# Compressed variants of {variants.base_name}\n"
            f"{n} variant{'s' if n != 1 else ''} of `{base}` compared with the base model · source: `{variants.source or 'none'}`"
            f"{hardware.rstrip(' ·, ')}")


def _problems_markdown(variants: VariantSet) -> str:
    if not variants.problems:
        return ""
    count = f"{len(variants.problems)} problem{'s' if len(variants.problems) != 1 else ''}"
    left_out = "(these variants are left out)" if variants.variants else "(no variant could be shown)"
    lines = [f"**{count} while reading the results** {left_out}:"]
    lines += [f"- {p}" for p in variants.problems]
    return "\n".join(lines)


_ABOUT = """
### What the columns mean
- **size (MB)**: weights on disk; **params (M)**: parameters in millions (pruned zeros still count unless shapes shrank).
- **perplexity**: on held-out text (lower is better); **KL (nats)**: how far the variant's next-token distribution is from the base's there (0 = the same); **last-word acc**, **cloze acc**: offline task accuracies on held-out text (higher is better; about ±0.05 at 100 items); **decode tok/s**: generation speed at batch 1; **memory (MB)**: peak memory while generating.
- **engine**: what computed the figures. GGUF variants are measured by llama.cpp against the base converted to F16 and run by llama.cpp (their own base row); the others by transformers: compare a ratio with its own engine's base.
- **×** columns: the variant divided by the base model, measured in the same run on the same machine.
- **bits**: average bits per weight of the Linear layers (scales and zero points included); **sparsity**: fraction of weights that are zero.

The **Pareto front** links the variants that no other variant beats on both axes at once: pick along it.

Side-by-side generation runs the chosen variants one after another with the same prompt and settings
(greedy, or sampling from the same seed), so their outputs and speeds are comparable. Models load on first use
and are kept in memory within a budget; the least recently used are dropped first.
"""


class _AppState:
    """What the app has read from its source, and the generator that loads its models; ``refresh`` reads again."""

    def __init__(self, source: str | os.PathLike | VariantSet | None, memory_mb: float | None) -> None:
        self.source, self.memory_mb = source, memory_mb
        self.refresh()

    def refresh(self) -> None:
        self.variants = self.source if isinstance(self.source, VariantSet) else find_variants(self.source)
        self.generator = Generator(self.variants, self.memory_mb)

    def page_choices(self) -> list[str]:
        return [f"{self.variants.base_name} (base)"] + [v.name for v in self.variants.variants]

    def table_and_plots(self, families: list[str], sort_by: str, descending: bool) -> tuple[Any, Any, Any]:
        table = variant_table(self.variants, families=families, sort_by=sort_by or None, descending=bool(descending))
        size_fig = tradeoff_figure(table, "size (MB)", title="Size on disk vs perplexity")
        speed_fig = tradeoff_figure(table, "decode tok/s", minimize_x=False, title="Decode speed vs perplexity")
        return styled_table(table), size_fig, speed_fig

    def page(self, name: str) -> tuple[str, str, str, str]:
        try:
            return variant_page(self.variants, name)
        except HFCompressError as err:
            return f"**{err}**", "", "", ""


def _leaderboard_tab(gr: Any, state: _AppState, present: list[str]) -> dict[str, Any]:
    initial_table, initial_size, initial_speed = state.table_and_plots(present, "", False)
    with gr.Row(equal_height=True):
        families = gr.CheckboxGroup(present, value=present, label="Method family", scale=3)
        sort_by = gr.Dropdown([("as found", ""), *[(c, c) for c in TABLE_COLUMNS]], value="",
                              label="Sort by (the base model stays first)", scale=2)
        descending = gr.Checkbox(False, label="Descending", scale=1)
    table = gr.Dataframe(initial_table, label="All variants (× = ratio to the base model)", interactive=False,
                         wrap=True, pinned_columns=1, show_search="search", elem_id="hfc-table",
                         column_widths=["11%", "10%", "8%", "6%", "4%", "5%", *["5.6%"] * 10],
                         buttons=["fullscreen", "copy"], max_height=520)
    with gr.Row():
        size_plot = gr.Plot(initial_size, label="Size vs perplexity", show_label=False, elem_id="hfc-size-plot")
        speed_plot = gr.Plot(initial_speed, label="Speed vs perplexity", show_label=False, elem_id="hfc-speed-plot")
    return dict(families=families, sort_by=sort_by, descending=descending, table=table, size_plot=size_plot, speed_plot=speed_plot)


def _generation_tab(gr: Any, state: _AppState) -> dict[str, Any]:
    gen_choices = state.generator.choices()
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox("Explain in two sentences why smaller language models are useful.",
                                label="Prompt", lines=3, elem_id="hfc-prompt")
            chosen = gr.Dropdown(gen_choices, value=gen_choices[:2], multiselect=True, max_choices=MAX_SLOTS,
                                 label=f"Variants (up to {MAX_SLOTS}; they run one after another)", elem_id="hfc-chosen")
        with gr.Column(scale=2):
            with gr.Accordion("Generation settings", open=False):
                settings = [
                    gr.Slider(8, 512, value=64, step=8, label="Max new tokens"),
                    gr.Checkbox(False, label="Sample (otherwise greedy)"),
                    gr.Slider(0.1, 1.5, value=0.7, step=0.05, label="Temperature"),
                    gr.Slider(0.1, 1.0, value=0.95, step=0.05, label="Top-p"),
                    gr.Number(0, precision=0, label="Seed (same for every variant)"),
                    gr.Checkbox(True, label="Use the chat template when the tokenizer has one"),
                ]
            run = gr.Button("Generate side by side", variant="primary", elem_id="hfc-run")
    slots: list[Any] = []
    initial = gen_choices[:2]
    with gr.Row(equal_height=True):
        for i in range(MAX_SLOTS):
            with gr.Column(visible=i < len(initial), min_width=240, variant="panel") as column:
                name_md = gr.Markdown(f"### {initial[i]}" if i < len(initial) else "", elem_classes=["hfc-slot-name"])
                status = gr.Markdown("", elem_classes=["hfc-slot-status"], elem_id=f"hfc-status-{i}")
                output = gr.Textbox("", lines=12, max_lines=30, show_label=False, interactive=False, elem_id=f"hfc-output-{i}")
            slots += [column, name_md, status, output]
    if not gen_choices:
        gr.Markdown("*No model can generate here: the results were bundled without weights and their base model is unknown.*")
    return dict(prompt=prompt, chosen=chosen, settings=settings, run=run, slots=slots)


def _variant_tab(gr: Any, state: _AppState) -> dict[str, Any]:
    choices = state.page_choices()
    first_page = state.variants.variants[0].name if state.variants.variants else choices[0]
    pick = gr.Dropdown(choices, value=first_page, label="Variant", elem_id="hfc-pick")
    first = state.page(first_page)
    with gr.Row():
        with gr.Column(scale=3):
            card = gr.Markdown(first[0], elem_id="hfc-card")
        with gr.Column(scale=2):
            recipe = gr.Code(first[1], language="yaml", label="Recipe (recipe.yaml)", interactive=False, wrap_lines=True)
            snippet = gr.Code(first[2], language="python", label="How to load it", interactive=False, wrap_lines=True)
            numbers = gr.Markdown(first[3])
    return dict(pick=pick, page=[card, recipe, snippet, numbers])


def build_app(source: str | os.PathLike | VariantSet | None, *, memory_mb: float | None = None, title: str | None = None) -> Any:
    """Build the comparison app (a ``gradio.Blocks``) for every variant in ``source``."""
    import gradio as gr

    state = _AppState(source, memory_mb)
    variants = state.variants
    present = _present_families(variants)

    def generate(prompt: str, names: list[str], max_new_tokens: float, sample: bool, temperature: float, top_p: float,
                 seed: float, chat: bool) -> Iterator[list[Any]]:
        names = list(names or [])[:MAX_SLOTS]
        options = dict(max_new_tokens=int(max_new_tokens), sample=bool(sample), temperature=float(temperature),
                       top_p=float(top_p), seed=int(seed), chat_template=bool(chat))
        try:
            for slots in state.generator.side_by_side(prompt, names, **options):
                yield _slot_updates(names, slots)
        except HFCompressError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def reload() -> list[Any]:
        state.refresh()
        vs = state.variants
        now_present = _present_families(vs)
        table, size_fig, speed_fig = state.table_and_plots(now_present, "", False)
        gen_choices = state.generator.choices()
        return [_header_markdown(vs), gr.update(value=_problems_markdown(vs), visible=bool(vs.problems)), table, size_fig,
                speed_fig, gr.update(choices=state.page_choices()), gr.update(choices=gen_choices, value=gen_choices[:2]),
                gr.update(choices=now_present, value=now_present), gr.update(value="")]

    with gr.Blocks(title=title or f"Compare {variants.base_name} variants", analytics_enabled=False) as demo:
        header = gr.Markdown(_header_markdown(variants), elem_id="hfc-header")
        problems = gr.Markdown(_problems_markdown(variants), visible=bool(variants.problems), elem_id="hfc-problems")
        with gr.Tabs():
            with gr.Tab("Leaderboard", id="leaderboard"):
                board = _leaderboard_tab(gr, state, present)
            with gr.Tab("Side by side", id="generate"):
                gen = _generation_tab(gr, state)
            with gr.Tab("Variant", id="variant"):
                page = _variant_tab(gr, state)
            with gr.Tab("About", id="about"):
                gr.Markdown(_ABOUT)
                reload_button = gr.Button("Read the results again", elem_id="hfc-reload")

        filters = [board["families"], board["sort_by"], board["descending"]]
        gr.on([c.change for c in filters], state.table_and_plots, filters, [board["table"], board["size_plot"], board["speed_plot"]],
              api_name="table")
        page["pick"].change(state.page, page["pick"], page["page"], api_name="variant")
        gen["chosen"].change(lambda names: _slot_updates(list(names or []), [("", "")] * len(names or [])), gen["chosen"],
                             gen["slots"], api_name=False, show_progress="hidden")
        gen["run"].click(generate, [gen["prompt"], gen["chosen"], *gen["settings"]], gen["slots"], api_name="generate",
                         concurrency_limit=1, show_progress="hidden")
        reload_button.click(reload, None, [header, problems, board["table"], board["size_plot"], board["speed_plot"], page["pick"],
                                           gen["chosen"], board["families"], board["sort_by"]], api_name="reload")
    demo.hfc_variants = lambda: state.variants  # for tests and callers that want to inspect what was read
    return demo


def _present_families(variants: VariantSet) -> list[str]:
    # The filter offers the families that occur ("other" for a method this version does not know).
    found = [f for f in (*families(), "other") if any(f in v.families for v in variants.variants)]
    return found or list(families())


def _slot_updates(names: list[str], slots: Sequence[tuple[str, str]]) -> list[Any]:
    import gradio as gr

    updates: list[Any] = []
    for i in range(MAX_SLOTS):
        if i < len(names):
            status, text = slots[i] if i < len(slots) else ("", "")
            updates += [gr.update(visible=True), f"### {names[i]}", status, text]
        else:
            updates += [gr.update(visible=False), "", "", ""]
    return updates


def launch(demo: Any, **kwargs: Any) -> Any:
    """``demo.launch(**kwargs)`` with the Space's theme and CSS (Gradio 6 takes them at launch).

    Example:
        >>> launch(build_app("runs/grid"), server_name="127.0.0.1", server_port=7860)   # doctest: +SKIP
    """
    kwargs.setdefault("theme", app_theme())
    kwargs.setdefault("css", _CSS)
    return demo.launch(**kwargs)


def serve(source: str | os.PathLike | None, *, host: str = "127.0.0.1", port: int | None = None,
          memory_mb: float | None = None, share: bool = False) -> None:
    """Build the app for ``source`` and serve it until interrupted (``hfcompress space``).

    Example:
        >>> serve("runs/smollm2-grid", port=7860)        # doctest: +SKIP
    """
    if source is None:
        source = "runs"
    launch(build_app(source, memory_mb=memory_mb), server_name=host, server_port=port, share=share)

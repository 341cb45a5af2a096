"""The comparison Space in a real browser (Debian chromium through playwright): the table, the plots, a
side-by-side generation, the variant page. Screenshots go to ``$HFCOMPRESS_SCREENSHOTS`` (default
``out/screenshots/`` in the repo, ignored by git) for a person to look at."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_space import free_port, shared_runs_dir, write_results

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ.get("HFCOMPRESS_SCREENSHOTS", Path(__file__).resolve().parents[1] / "out" / "screenshots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium: apt-get install -y chromium"),
]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def serve(source, **kwargs):
    from hfcompress.space import build_app, launch

    demo = build_app(source, **kwargs)
    port = free_port()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def table_rows(page) -> list[list[str]]:
    """The cells of the leaderboard as the user sees them."""
    return page.eval_on_selector_all(
        "#hfc-table .virtual-row", "rows => rows.map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))")


def wait_done(page, slots: int, timeout_ms: int) -> None:
    selector = ", ".join(f"#hfc-status-{i}" for i in range(slots))
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{selector}')].filter(e => e.innerText.startsWith('done')).length == {slots}",
        timeout=timeout_ms)


def test_browser_table_plots_generation_and_variant_page(browser, tmp_path_factory, tiny_llama_dir):
    runs = shared_runs_dir(tmp_path_factory, tiny_llama_dir)
    demo, url = serve(runs, memory_mb=256)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.wait_for_selector("#hfc-table .virtual-row", timeout=60_000)
        page.wait_for_selector("#hfc-size-plot .js-plotly-plot", timeout=30_000)
        rows = table_rows(page)
        names = [r[0] for r in rows if r]
        assert names[0] == "tiny-llama (base)"
        assert set(names[1:]) == {"tiny-magnitude50", "tiny-rtn4-g32", "tiny-rtn8", "tiny-svd90"}
        rtn8 = next(r for r in rows if r[0] == "tiny-rtn8")
        assert "260.50" in rtn8 and "1.02×" in rtn8
        problems = page.inner_text("#hfc-problems")
        assert "tiny-broken" in problems and "not valid JSON" in problems
        page.screenshot(path=str(SHOTS / "space-1-leaderboard.png"), full_page=True)

        # Filter by family: only pruning variants (and the base) stay.
        page.get_by_label("quantization").uncheck()
        page.get_by_label("low-rank").uncheck()
        page.wait_for_function("() => document.querySelectorAll('#hfc-table .virtual-row').length == 2", timeout=20_000)
        assert [r[0] for r in table_rows(page)] == ["tiny-llama (base)", "tiny-magnitude50"]

        # Side by side on two tiny models: both columns stream and report tokens/s.
        page.get_by_role("tab", name="Side by side").click()
        page.fill("#hfc-prompt textarea", "hello world")
        page.click("#hfc-run")
        wait_done(page, 2, 60_000)
        for i in range(2):
            assert re.search(r"done · \d+ tokens · [\d.]+ tokens/s", page.inner_text(f"#hfc-status-{i}"))
            assert page.input_value(f"#hfc-output-{i} textarea").strip() != ""
        page.screenshot(path=str(SHOTS / "space-2-side-by-side-tiny.png"), full_page=True)

        # Variant page: card without its YAML header, recipe, how to load.
        page.get_by_role("tab", name="Variant").click()
        page.wait_for_selector("#hfc-card h1", timeout=20_000)
        card = page.inner_text("#hfc-card")
        assert "tiny-magnitude50" in card and "base_model:" not in card
        assert "AutoModelForCausalLM" in page.inner_text("body")
        page.screenshot(path=str(SHOTS / "space-3-variant.png"), full_page=True)
    finally:
        page.close()
        demo.close()


def test_browser_empty_folder_shows_a_message(browser, tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    demo, url = serve(empty)
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    try:
        page.goto(url)
        page.wait_for_selector("#hfc-problems", timeout=60_000)
        assert "no variant folders with results.json" in page.inner_text("#hfc-problems")
        assert "Nothing to compare yet" in page.inner_text("#hfc-header")
        page.wait_for_selector("#hfc-size-plot .js-plotly-plot", timeout=30_000)
        assert "no variant has both" in page.inner_text("#hfc-size-plot")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "space-4-empty.png"), full_page=True)
    finally:
        page.close()
        demo.close()


def test_browser_side_by_side_on_the_embedded_model(browser, tmp_path):
    """SmolLM2-135M-Instruct (embedded) against its 8-bit RTN variant: both answers stream in the page.

    In the default suite (about a minute) because it is the one check that a person sees real language side by side.
    """
    import hfcompress as hfc

    runs = tmp_path / "runs"
    cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8))
    folder = cm.save_pretrained(runs / "SmolLM2-135M-Instruct-RTN-int8")
    base = {"model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": None, "kind": "embedded"}
    results = write_results(folder, name=folder.name, recipe=[c.to_dict() for c in cm.recipe], base_model=base,
                            ppl=11.72, base_ppl=11.70, tok_s=30.0, base_tok_s=31.0, bits=8.0)
    assert results["base_model"]["kind"] == "embedded"
    demo, url = serve(runs, memory_mb=2048)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.wait_for_selector("#hfc-table .virtual-row", timeout=60_000)
        assert [r[0] for r in table_rows(page)] == ["SmolLM2-135M-Instruct (base)", folder.name]
        page.get_by_role("tab", name="Side by side").click()
        page.fill("#hfc-prompt textarea", "What is the capital of France?")
        page.click("#hfc-run")
        wait_done(page, 2, 300_000)
        outputs = [page.input_value(f"#hfc-output-{i} textarea") for i in range(2)]
        assert all("Paris" in text for text in outputs), outputs
        page.screenshot(path=str(SHOTS / "space-5-side-by-side-smollm2.png"), full_page=True)
    finally:
        page.close()
        demo.close()

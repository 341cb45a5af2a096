"""The comparison Space: reading variants, the table and plots, cached side-by-side generation, the Gradio
endpoints (through gradio_client), the CLI, and deploying to a Space on the loopback Hub."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------
# Tiny variants: real weights saved by CompressedModel, results.json written by hand per the results contract.


def _measure(value, base, unit, *, higher_is_better=False, **extra):
    ratio = None if value is None or not base else round(value / base, 4)
    return {"value": value, "unit": unit, "base": base, "ratio": ratio, "higher_is_better": higher_is_better, **extra}


def write_results(folder: Path, *, name: str, recipe: list[dict], base_model: dict, ppl: float, base_ppl: float,
                  tok_s: float, base_tok_s: float, sparsity: float = 0.0, bits: float = 32.0) -> dict:
    """A results.json that matches hfcompress/schemas/results.schema.json (checked when the bench module has it)."""
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 1e6 if folder.is_dir() else 0.0
    size = size or 0.17
    base_size = sum(p.stat().st_size for p in Path(base_model["model_id"]).glob("*.safetensors")) / 1e6
    params = 58_624 if not recipe or recipe[0]["kind"] != "low_rank" else 41_000
    results = {
        "schema_version": "1.0",
        "hfcompress_version": "0.1.0",
        "created": "2026-11-25T12:00:00+00:00",
        "variant": {"name": name, "recipe": recipe, "format": "compressed-tensors"},
        "base_model": base_model,
        "metrics": {
            "perplexity": _measure(ppl, base_ppl, "ppl", dataset="tiny texts", tokens=256, context=64, stride=32),
            "size_on_disk": _measure(round(size, 4), round(base_size, 4), "MB"),
            "parameters": _measure(params, 58_624, "count"),
            "bits_per_weight": _measure(bits, 32.0, "bits"),
            "sparsity": _measure(sparsity, 0.0, "fraction", higher_is_better=True),
            "decode_tokens_per_s": _measure(tok_s, base_tok_s, "tokens/s", higher_is_better=True, spread=3.0, runs=3),
            "peak_memory": _measure(5.0, 6.0, "MB"),
        },
        "generations": [{"prompt": "The capital of France is", "base": "Paris.", "variant": "Paris!"}],
        "environment": {"versions": {"torch": "2.13.0"}, "hardware": {"cpu": "test CPU", "device": "cpu"}},
        "seed": 0,
        "data": {"eval": {"description": "tiny texts"}, "calibration": None},
        "reproduce": f"hfcompress compress tiny --recipe recipe.yaml -o {name}",
    }
    try:
        from hfcompress.bench.results import validation_errors
    except ImportError:
        pass
    else:
        assert validation_errors(results) == []
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    if (folder / "hfcompress.json").is_file():  # the card shows the numbers, as after `hfcompress bench`
        from hfcompress.publish import write_model_card

        write_model_card(folder, manifest=json.loads((folder / "hfcompress.json").read_text()), results=results)
    return results


def build_variants_dir(root: Path, tiny_dir: Path) -> Path:
    """A runs folder: two RTN variants and a pruned one with weights, a results-only SVD variant, a corrupt
    results.json and a variant that was never benchmarked."""
    import torch

    import hfcompress as hfc

    runs = root / "runs"
    base = {"model_id": str(tiny_dir), "revision": None, "kind": "folder"}
    specs = [
        ("tiny-rtn8", [hfc.RTNConfig(bits=8)], dict(ppl=260.5, tok_s=95.0, bits=8.0)),
        ("tiny-rtn4-g32", [hfc.RTNConfig(bits=4, group_size=32)], dict(ppl=290.0, tok_s=101.0, bits=4.5)),
    ]
    for name, recipe, numbers in specs:
        cm = hfc.CompressedModel.from_pretrained(str(tiny_dir), recipe=recipe)
        folder = cm.save_pretrained(runs / name)
        write_results(folder, name=name, recipe=[c.to_dict() for c in recipe], base_model=base, base_ppl=256.0,
                      base_tok_s=100.0, **numbers)
    # Pruned: zero the smaller half of each decoder Linear by hand (what magnitude pruning does), dense format.
    cm = hfc.CompressedModel.from_pretrained(str(tiny_dir))
    with torch.no_grad():
        for name, module in cm.model.named_modules():
            if isinstance(module, torch.nn.Linear) and "layers" in name:
                w = module.weight
                w[w.abs() < w.abs().flatten().median()] = 0
    cm.recipe = [hfc.PruneConfig(method="magnitude", sparsity=0.5)]
    folder = cm.save_pretrained(runs / "tiny-magnitude50")
    write_results(folder, name="tiny-magnitude50", recipe=[c.to_dict() for c in cm.recipe], base_model=base,
                  ppl=400.0, base_ppl=256.0, tok_s=98.0, base_tok_s=100.0, sparsity=0.5)
    # Results only (as bundled in a deployed Space): no weights here.
    svd = runs / "tiny-svd90"
    write_results(svd, name="tiny-svd90", recipe=[{"kind": "low_rank", "rank": None, "energy": 0.9}], base_model=base,
                  ppl=700.0, base_ppl=256.0, tok_s=120.0, base_tok_s=100.0)
    (svd / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- hfcompress\n---\n# tiny-svd90\n\nLow-rank MLPs.\n")
    broken = runs / "tiny-broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"schema_version": "1.0", "metrics": {', encoding="utf-8")
    unmeasured = runs / "tiny-unmeasured"
    unmeasured.mkdir()
    (unmeasured / "hfcompress.json").write_text(json.dumps({"recipe": [{"kind": "rtn", "bits": 8}]}), encoding="utf-8")
    (runs / "comparison.csv").write_text("variant,perplexity\n", encoding="utf-8")
    return runs


_BUILT: dict[str, Path] = {}


def shared_runs_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    """The variants of ``build_variants_dir``, built once per test session (tests must not modify them)."""
    if "runs" not in _BUILT:
        _BUILT["runs"] = build_variants_dir(tmp_path_factory.mktemp("space"), tiny_llama_dir)
    return _BUILT["runs"]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    return shared_runs_dir(tmp_path_factory, tiny_llama_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(runs_dir):
    """The app served on 127.0.0.1 in this process (thread), closed after the module."""
    from hfcompress.space import build_app, launch

    demo = build_app(runs_dir, memory_mb=512)
    port = free_port()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


# ----------------------------------------------------------------------------------------------------------
# Reading variants


def test_find_variants_reads_good_ones_and_lists_the_bad(runs_dir):
    from hfcompress.space import find_variants

    vs = find_variants(runs_dir)
    assert [v.name for v in vs.variants] == ["tiny-magnitude50", "tiny-rtn4-g32", "tiny-rtn8", "tiny-svd90"]
    problems = " | ".join(vs.problems)
    assert "tiny-broken" in problems and "not valid JSON" in problems
    assert "tiny-unmeasured" in problems and "hfcompress bench" in problems
    assert len(vs.problems) == 2
    assert vs.base_name == "tiny-llama"
    assert {v.name: v.has_weights for v in vs.variants} == {
        "tiny-magnitude50": True, "tiny-rtn4-g32": True, "tiny-rtn8": True, "tiny-svd90": False}
    assert vs.get("tiny-rtn4-g32").method == "RTN 4-bit g32"
    assert vs.get("tiny-magnitude50").families == ("pruning",)
    # One variant folder works as a source too.
    assert [v.name for v in find_variants(runs_dir / "tiny-rtn8").variants] == ["tiny-rtn8"]


def test_variants_measured_by_evaluate_fill_the_table(tmp_path, tiny_llama_dir):
    """The contract with the benchmark: what cm.evaluate() writes is what the table shows."""
    import hfcompress as hfc
    from hfcompress.space import find_variants, variant_table

    cache: dict = {}
    for name, recipe in [("w8", hfc.RTNConfig(bits=8)), ("w4", hfc.RTNConfig(bits=4, group_size=32)),
                         ("gqa1", hfc.GQAConfig(num_key_value_heads=1, method="mean"))]:
        cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=recipe)
        cm.evaluate(max_tokens=128, context=64, stride=32, speed_runs=1, warmup=0, prompt_tokens=8, new_tokens=4,
                    batch_size=2, base_cache=cache, generations=False, progress=False)
        cm.save_pretrained(tmp_path / name)
    vs = find_variants(tmp_path)
    assert vs.problems == [] and [v.name for v in vs.variants] == ["gqa1", "w4", "w8"]
    rows = {r["variant"]: r for r in variant_table(vs).to_dict("records")}
    for name in ("w4", "w8"):
        metrics = vs.get(name).results["metrics"]
        assert rows[name]["perplexity"] == round(metrics["perplexity"]["value"], 2)
        assert rows[name]["ppl ×"] == round(metrics["perplexity"]["ratio"], 3)
        assert rows[name]["decode tok/s"] is not None and rows[name]["size (MB)"] is not None
    assert 4 < rows["w4"]["bits"] < 5.5 and 8 <= rows["w8"]["bits"] < 9
    # The KV cache column shows what GQA conversion saves (2 KV heads -> 1 halves it) and quantization does not.
    kv = vs.get("gqa1").results["metrics"]["kv_cache_bytes_per_token"]
    assert rows["gqa1"]["KV cache (KB/token)"] == round(kv["value"] / 1e3, 2) and rows["gqa1"]["KV ×"] == 0.5
    assert rows["w8"]["KV ×"] == 1.0
    assert rows["tiny-llama (base)"]["perplexity"] == round(vs.get("w4").results["metrics"]["perplexity"]["base"], 2)


def test_missing_or_empty_sources_give_a_message_not_an_exception(tmp_path):
    from hfcompress.space import build_app, find_variants, variant_table

    empty = tmp_path / "empty"
    empty.mkdir()
    vs = find_variants(empty)
    assert vs.variants == [] and "no variant folders with results.json" in vs.problems[0]
    assert "no such folder" in find_variants(tmp_path / "nope").problems[0]
    # A parent holding one runs folder (hfcompress grid writes runs/<model>/<variant>) is read through.
    nested = tmp_path / "runs"
    shutil.copytree(REPO_ROOT / "spaces", nested / "x" / "not-a-variant")
    (nested / "smol" / "v1").mkdir(parents=True)
    (nested / "smol" / "v1" / "results.json").write_text("[]")
    assert "expected a JSON object" in find_variants(nested).problems[0]
    (nested / "other" / "v2").mkdir(parents=True)
    (nested / "other" / "v2" / "results.json").write_text("{}")
    assert "several runs folders (other, smol)" in find_variants(nested).problems[0]
    assert "no source given" in find_variants(None).problems[0]
    table = variant_table(vs)
    assert list(table["variant"]) == ["base model (base)"]  # the page still has its (empty) table
    demo = build_app(empty)
    assert demo.hfc_variants().problems == vs.problems


def test_table_base_first_with_ratios_filter_and_sort(runs_dir):
    from hfcompress.space import TABLE_COLUMNS, find_variants, variant_table

    vs = find_variants(runs_dir)
    table = variant_table(vs)
    assert list(table.columns) == list(TABLE_COLUMNS)
    rows = table.to_dict("records")
    assert rows[0]["variant"] == "tiny-llama (base)" and rows[0]["perplexity"] == 256.0 and rows[0]["ppl ×"] == 1.0
    by_name = {r["variant"]: r for r in rows}
    assert by_name["tiny-rtn8"]["ppl ×"] == round(260.5 / 256.0, 3)
    assert by_name["tiny-rtn8"]["bits"] == 8.0
    assert by_name["tiny-magnitude50"]["sparsity"] == 0.5
    assert by_name["tiny-rtn8"]["params (M)"] == 0.06
    # The size column is the real size of the saved weights, in MB.
    size = sum(p.stat().st_size for p in (runs_dir / "tiny-rtn8").glob("*.safetensors")) / 1e6
    assert by_name["tiny-rtn8"]["size (MB)"] == pytest.approx(size, abs=0.05)

    quant = variant_table(vs, families=["quantization"])
    assert list(quant["variant"]) == ["tiny-llama (base)", "tiny-rtn4-g32", "tiny-rtn8"]
    by_ppl = variant_table(vs, sort_by="perplexity", descending=True)
    assert list(by_ppl["variant"]) == ["tiny-llama (base)", "tiny-svd90", "tiny-magnitude50", "tiny-rtn4-g32", "tiny-rtn8"]
    from hfcompress.errors import HFCompressError

    with pytest.raises(HFCompressError, match="cannot sort by 'speed'"):
        variant_table(vs, sort_by="speed")


def test_pareto_front_and_figures(runs_dir):
    from hfcompress.bench.report import pareto_front
    from hfcompress.space import find_variants, tradeoff_figure, variant_table

    assert pareto_front([(100, 10.0), (50, 12.0), (60, 13.0), (25, 20.0)]) == [3, 1, 0]
    # Speed: higher x is better.
    assert pareto_front([(10, 5.0), (20, 6.0), (15, 7.0)], maximize_x=True) == [0, 1]
    table = variant_table(find_variants(runs_dir))
    fig = tradeoff_figure(table, "decode tok/s", minimize_x=False)
    front = next(t for t in fig.data if t.name == "Pareto front")
    # Base (100 tok/s, 256) < rtn8? no: rtn4 is faster (101) with ppl 290; svd fastest (120) with ppl 700.
    assert list(front.x) == [100.0, 101.0, 120.0]
    hover_names = [c[0] for t in fig.data if t.customdata is not None for c in t.customdata]
    assert set(hover_names) == set(table["variant"])
    empty = tradeoff_figure(table.iloc[0:0], "size (MB)")
    assert "no variant has both" in empty.layout.annotations[0].text


def test_variant_page_card_recipe_and_a_load_snippet_that_works(runs_dir):
    import torch

    from hfcompress.space import find_variants, strip_yaml_header, variant_page

    vs = find_variants(runs_dir)
    card, recipe, snippet, numbers = variant_page(vs, "tiny-rtn8")
    assert not card.startswith("---") and "base_model" not in card.split("\n")[0]
    assert "rtn" in recipe and "bits: 8" in recipe
    assert "| perplexity | 260.5 | 256 |" in numbers
    # The snippet is what a user pastes: it must load the variant with plain transformers.
    scope: dict = {}
    exec(snippet, scope)
    ids = torch.tensor([[5, 6, 7, 8]])
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(runs_dir / "tiny-rtn8")
    assert torch.equal(scope["model"](ids).logits, reference(ids).logits)
    card, recipe, _, _ = variant_page(vs, "tiny-svd90")
    assert card.startswith("# tiny-svd90") and "low_rank" in recipe
    assert "uncompressed base model" in variant_page(vs, "tiny-llama (base)")[0]
    assert strip_yaml_header("no header\n") == "no header\n"


def test_model_cache_keeps_the_budget_least_recently_used_first():
    import torch

    from hfcompress.space import ModelCache

    loads = []

    def loader(name, mb):
        def load():
            loads.append(name)
            return torch.zeros(int(mb * 2**20 / 4))  # float32
        return load

    cache = ModelCache(budget_mb=10)
    cache.get("a", loader("a", 4), 4 * 2**20)
    cache.get("b", loader("b", 4), 4 * 2**20)
    cache.get("a", loader("a", 4))  # a is now the most recently used
    cache.get("c", loader("c", 4), 4 * 2**20)  # 12 MB > 10: b goes
    assert cache.keys() == ["a", "c"] and loads == ["a", "b", "c"]
    assert cache.used_bytes == 8 * 2**20
    cache.get("big", loader("big", 20), 20 * 2**20)  # alone over budget: kept, everything else dropped
    assert cache.keys() == ["big"]


def test_side_by_side_is_greedy_and_matches_plain_generate(runs_dir, tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfcompress.space import Generator, find_variants

    gen = Generator(find_variants(runs_dir), budget_mb=256)
    assert gen.choices() == ["tiny-llama (base)", "tiny-magnitude50", "tiny-rtn4-g32", "tiny-rtn8"]
    frames = list(gen.side_by_side("hello world", ["tiny-llama (base)", "tiny-rtn8"], max_new_tokens=12))
    (status_a, text_a), (status_b, text_b) = frames[-1]
    assert status_a.startswith("done · 12 tokens") and "tokens/s" in status_a
    assert status_b.startswith("done · 12 tokens")
    # Streamed in several frames, and the first column finished before the second started.
    assert len(frames) > 4 and any(f[0][0].startswith("done") and f[1][1] == "" for f in frames)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = tok("hello world", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert text_a == tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    # Sampling with a seed repeats; the model stayed cached.
    sampled = [list(gen.stream("tiny-rtn8", "hello", max_new_tokens=10, sample=True, seed=3))[-1][0] for _ in range(2)]
    assert sampled[0] == sampled[1]
    assert set(gen.cache.keys()) == {"tiny-llama (base)", "tiny-rtn8"}
    # A variant without weights and an empty prompt give clear messages.
    status, _ = list(gen.side_by_side("hi", ["tiny-svd90"], max_new_tokens=4))[-1][0]
    assert status.startswith("error: tiny-svd90: no weights here")
    from hfcompress.errors import HFCompressError

    with pytest.raises(HFCompressError, match="prompt is empty"):
        list(gen.side_by_side("  ", ["tiny-rtn8"]))
    del torch


# ----------------------------------------------------------------------------------------------------------
# The Gradio endpoints, called like a remote user would


def test_every_endpoint_through_gradio_client(app_url):
    from gradio_client import Client

    client = Client(app_url, analytics_enabled=False, verbose=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/table", "/variant", "/generate", "/reload"} <= set(endpoints)

    table, size_plot, speed_plot = client.predict(["pruning"], "perplexity", False, api_name="/table")
    assert [row[0] for row in table["data"]] == ["tiny-llama (base)", "tiny-magnitude50"]
    assert "Pareto front" in json.dumps(size_plot) or "Pareto front" in json.dumps(speed_plot)

    card, recipe, snippet, numbers = client.predict("tiny-rtn4-g32", api_name="/variant")
    assert "group_size: 32" in recipe and "AutoModelForCausalLM" in snippet and "perplexity" in numbers

    result = client.predict("Hello", ["tiny-llama (base)", "tiny-rtn8"], 8, False, 0.7, 0.95, 0, True, api_name="/generate")
    texts = [x for x in result if isinstance(x, str)]
    statuses = [t for t in texts if t.startswith("done")]
    assert len(statuses) == 2 and all("8 tokens" in s for s in statuses)

    reloaded = client.predict(api_name="/reload")
    assert "Compressed variants of tiny-llama" in reloaded[0]


def test_cli_space_serves_the_app(runs_dir):
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "hfcompress.cli", "space", str(runs_dir), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:
            try:
                config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read())
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                assert time.time() < deadline, "the app did not start in 90 s"
                time.sleep(0.5)
        assert config["title"] == "Compare tiny-llama variants"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ----------------------------------------------------------------------------------------------------------
# Deploying


def test_push_space_bundles_results_on_the_loopback_hub(runs_dir):
    from hub_server import HubServer

    from hfcompress.cli import main

    with HubServer() as hub, hub.client_env():
        assert main(["push-space", "tester/compare-tiny", "--results", str(runs_dir)]) == 0
        repo = hub.repos["tester/compare-tiny"]
        assert repo.repo_type == "space"
        files = repo.files()
    expected = {".gitattributes", "app.py", "requirements.txt", "README.md", "space_config.json"}
    for name in ("tiny-magnitude50", "tiny-rtn4-g32", "tiny-rtn8"):
        expected |= {f"results/{name}/{f}" for f in ("results.json", "hfcompress.json", "README.md", "recipe.yaml")}
    expected |= {"results/tiny-svd90/results.json", "results/tiny-svd90/README.md"}
    assert set(files) == expected  # no weights, no broken variant
    assert files["app.py"] == (REPO_ROOT / "spaces/compare/app.py").read_bytes()
    assert json.loads(files["space_config.json"]) == {"results": "results"}
    card = files["README.md"].decode()
    import yaml

    meta = yaml.safe_load(card.split("---")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["title"] == "Compare tiny-llama variants"
    import gradio

    assert meta["sdk_version"] == gradio.__version__
    assert b"hfcompress" in files["requirements.txt"]
    from hfcompress.publish.hub import public_text

    assert files["results/tiny-rtn8/results.json"].decode() == public_text((runs_dir / "tiny-rtn8/results.json").read_text())


def test_bundled_variants_published_by_push_grid_generate_from_their_repos(runs_dir, tmp_path):
    from hfcompress.space import build_space_folder, find_variants, space_source

    folder, _ = build_space_folder(tmp_path / "space", results=runs_dir, variants_on="tester")
    manifest = json.loads((folder / "results/tiny-rtn8/hfcompress.json").read_text())
    assert manifest["hub"] == {"repo_id": "tester/tiny-llama-tiny-rtn8"}  # the name push-grid gives it
    assert str(runs_dir) not in (folder / "results/tiny-rtn8/hfcompress.json").read_text()
    vs = find_variants(space_source(folder))
    rtn8 = next(v for v in vs.variants if v.name == "tiny-rtn8")
    assert rtn8.repo_id == "tester/tiny-llama-tiny-rtn8" and rtn8.has_weights


def test_push_space_with_a_bad_token_says_so_in_one_line(runs_dir, capsys):
    from hub_server import HubServer

    from hfcompress.cli import main

    bad = "hf_" + "0" * 32
    with HubServer() as hub, hub.client_env(token=bad):
        assert main(["push-space", "tester/compare-tiny", "--results", str(runs_dir)]) == 2
        assert "tester/compare-tiny" not in hub.repos
    err = capsys.readouterr().err
    assert err.startswith("hfcompress: error: pushing the Space tester/compare-tiny failed (HTTP 401") and err.count("\n") == 1
    assert bad not in err


def test_deployed_space_folder_runs_and_reads_its_bundle(runs_dir, tmp_path):
    from hfcompress.space import build_space_folder, find_variants, space_source

    folder, _ = build_space_folder(tmp_path / "space", results=runs_dir, requirement="hfcompress[space] @ git+https://example.org/hfcompress")
    assert "git+https://example.org/hfcompress" in (folder / "requirements.txt").read_text()
    vs = find_variants(space_source(folder))
    assert [v.name for v in vs.variants] == ["tiny-magnitude50", "tiny-rtn4-g32", "tiny-rtn8", "tiny-svd90"]
    assert not any(v.has_weights for v in vs.variants)  # results only; the base (a local folder) still generates
    # The app module itself builds the same app from its folder.
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    code = ("import runpy, sys; m = runpy.run_path(sys.argv[1]); "
            "print(len(m['demo'].hfc_variants().variants))")
    out = subprocess.run([sys.executable, "-c", code, str(folder / "app.py")], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "4"


def test_collection_mode_and_push_space_wired_to_a_collection(runs_dir):
    from hub_server import HubServer
    from huggingface_hub import HfApi

    from hfcompress.errors import HFCompressError
    from hfcompress.space import Generator, find_variants, push_space

    with HubServer() as hub, hub.client_env():
        api = HfApi()
        collection = api.create_collection("tiny variants")
        for name in ("tiny-rtn8", "tiny-magnitude50"):
            repo_id = f"tester/{name}"
            api.create_repo(repo_id)
            api.upload_folder(folder_path=str(runs_dir / name), repo_id=repo_id, allow_patterns=["*.json", "*.md", "*.yaml"])
            api.add_collection_item(collection.slug, repo_id, "model")
        api.create_repo("tester/not-a-variant")
        api.add_collection_item(collection.slug, "tester/not-a-variant", "model")

        vs = find_variants(collection.slug)
        assert [v.name for v in vs.variants] == ["tiny-rtn8", "tiny-magnitude50"]
        assert vs.variants[0].repo_id == "tester/tiny-rtn8" and vs.problems == []
        assert "tiny-rtn8" in Generator(vs).choices()  # its weights load from its Hub repo
        assert vs.get("tiny-rtn8").load_id == "tester/tiny-rtn8"

        url = push_space("tester/compare-collection", collection=collection.slug)
        assert "compare-collection" in url
        files = hub.repos["tester/compare-collection"].files()
        assert json.loads(files["space_config.json"]) == {"collection": collection.slug}
        assert not any(p.startswith("results/") for p in files)
        assert "tester/tiny-rtn8" in files["README.md"].decode()  # the Space card links its models

        missing = find_variants("tester/nothing-0123456789abcdef0123")
        assert missing.variants == [] and "could not be read" in missing.problems[0]
        with pytest.raises(HFCompressError, match="exactly one of"):
            push_space("tester/x", results=runs_dir, collection=collection.slug)
        with pytest.raises(HFCompressError, match="nothing to deploy"):
            push_space("tester/x", results=runs_dir / "tiny-broken")

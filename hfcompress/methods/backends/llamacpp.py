"""llama.cpp glue: its converter writes GGUF, its tools compute the importance matrix and quantize, its library runs
the file. Shared by the GGUF family (writing) and bench (llama.cpp as the engine that measures GGUF variants).

What is used, and where it is found (``HFCOMPRESS_LLAMA_CPP`` names a folder holding all of it; ``scripts/install.sh``
builds it into ``<venv>/share/hfcompress/llama.cpp`` from llama-cpp-python's source, which vendors llama.cpp):

* ``convert_hf_to_gguf.py`` with its ``conversion/`` and ``gguf-py/`` (llama.cpp's own writer) for HF -> GGUF;
* ``llama-imatrix`` and ``llama-quantize`` (``bin/``, or on ``PATH``): the importance matrix of calibration text,
  and quantization with it (the importance matrix is a C++ object that the Python bindings cannot pass);
* ``llama_cpp`` (llama-cpp-python, the ``[gguf]`` extra): inference, perplexity and speed; also quantization without
  an importance matrix when the tools are missing.

Example:
    >>> sorted(GGUF_TYPES)[:3]
    ['BF16', 'F16', 'F32']
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ...errors import BackendUnavailableError, HFCompressError

logger = logging.getLogger(__name__)

HOME_ENV = "HFCOMPRESS_LLAMA_CPP"
INSTALL_HINT = "bash scripts/install.sh builds it (or pip install 'hfcompress[gguf]' and set HFCOMPRESS_LLAMA_CPP to a llama.cpp checkout with its tools built)"

# llama.cpp file types (llama-quantize's names) -> what each stores; the ones hfcompress offers.
GGUF_TYPES: dict[str, str] = {
    "F32": "32-bit floats",
    "F16": "16-bit floats",
    "BF16": "bfloat16",
    "Q8_0": "8-bit, blocks of 32",
    "Q6_K": "6-bit K-quant",
    "Q5_K_M": "5-bit K-quant, some tensors 6-bit",
    "Q5_K_S": "5-bit K-quant",
    "Q4_K_M": "4-bit K-quant, some tensors 6-bit",
    "Q4_K_S": "4-bit K-quant",
    "Q4_0": "4-bit, blocks of 32 (legacy)",
    "IQ4_NL": "4-bit non-linear, blocks of 32",
    "IQ4_XS": "4-bit non-linear with super-blocks",
    "Q3_K_M": "3-bit K-quant, some tensors 4/5-bit",
    "Q2_K": "2-bit K-quant",
}
FLOAT_TYPES = ("F32", "F16", "BF16")
# The tensor type llama-quantize gives the bulk of the weights for each file type (the _M/_S mixes keep a few
# tensors wider, which is what makes them "mostly" that type).
MAIN_TENSOR_TYPE = {"F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K",
                    "Q5_K_S": "Q5_K", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_0": "Q4_0", "IQ4_NL": "IQ4_NL",
                    "IQ4_XS": "IQ4_XS", "Q3_K_M": "Q3_K", "Q2_K": "Q2_K"}


def llama_cpp_home() -> Path | None:
    """The folder holding llama.cpp's converter and tools, or None when none is found."""
    candidates = [os.environ.get(HOME_ENV), str(Path(sys.prefix) / "share" / "hfcompress" / "llama.cpp")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "convert_hf_to_gguf.py").is_file():
            return Path(candidate)
    return None


def tool(name: str) -> Path | None:
    """A llama.cpp tool (``llama-quantize``, ``llama-imatrix``): in the home's ``bin/``, else on ``PATH``."""
    home = llama_cpp_home()
    if home is not None:
        for folder in (home / "bin", home / "build" / "bin", home):
            if (folder / name).is_file() and os.access(folder / name, os.X_OK):
                return folder / name
    found = shutil.which(name)
    return Path(found) if found else None


def bindings_available() -> bool:
    """Whether llama-cpp-python is installed (found without importing it: loading its library takes a second)."""
    return importlib.util.find_spec("llama_cpp") is not None


def unavailable_reason(*, imatrix: bool = False) -> str | None:
    """Why GGUF cannot be written here (one line naming what to install), or None."""
    if llama_cpp_home() is None:
        return f"GGUF export needs llama.cpp's converter (convert_hf_to_gguf.py): {INSTALL_HINT}"
    if imatrix and (tool("llama-imatrix") is None or tool("llama-quantize") is None):
        return f"an importance matrix needs llama.cpp's llama-imatrix and llama-quantize tools: {INSTALL_HINT}"
    if tool("llama-quantize") is None and not bindings_available():
        return f"quantizing GGUF needs llama-quantize or llama-cpp-python: {INSTALL_HINT}"
    return None


def _run(command: Sequence[str], what: str, *, log: Path | None = None, cwd: Path | None = None) -> None:
    logger.info("%s: %s", what, " ".join(map(str, command)))
    env = dict(os.environ)
    # The tools link llama.cpp's shared libraries, which are installed beside them.
    folder = str(Path(command[0]).parent)
    env["LD_LIBRARY_PATH"] = folder + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd)
    if log is not None:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}\n")
    if done.returncode != 0:
        tail = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()][-3:]
        raise HFCompressError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)[:400]}")


def convert(hf_folder: Path, out_file: Path, outtype: str = "f16", *, log: Path | None = None, name: str | None = None) -> Path:
    """Write ``hf_folder`` (a transformers folder: weights, config, tokenizer) as a GGUF file of ``outtype``.

    ``name`` is the file's ``general.name`` (default: the folder's name). An architecture or a tokenizer llama.cpp's
    converter does not know is one line naming it.
    """
    home = llama_cpp_home()
    if home is None:
        raise BackendUnavailableError(f"GGUF export needs llama.cpp's converter: {INSTALL_HINT}")
    try:
        _run([sys.executable, home / "convert_hf_to_gguf.py", hf_folder, "--outfile", out_file, "--outtype", outtype,
              "--model-name", name or hf_folder.name], "converting to GGUF", log=log)
    except HFCompressError as err:
        if "pre-tokenizer was not recognized" in str(err):
            raise HFCompressError("llama.cpp's converter does not recognise this model's tokenizer (its BPE pre-tokenizer "
                                  "is not in llama.cpp's list); a model with a tokenizer llama.cpp knows converts") from None
        if "not supported" in str(err):
            import json

            arch = json.loads((hf_folder / "config.json").read_text()).get("architectures", ["?"])
            raise HFCompressError(f"llama.cpp's converter does not support {', '.join(arch)}; GGUF export needs an "
                                  f"architecture llama.cpp runs (Llama, Qwen2/3, Mistral, Gemma 3, ...)") from None
        raise
    return out_file


def compute_imatrix(gguf_file: Path, text_file: Path, out_file: Path, *, context: int, chunks: int,
                    threads: int | None = None, log: Path | None = None) -> Path:
    """llama.cpp's importance matrix (mean squared activations per input channel of every weight) over ``text_file``.

    The tool records the text's and the matrix's paths in the files it writes: it runs in the text's folder with
    bare file names, so no path of this machine reaches a published file.
    """
    exe = tool("llama-imatrix")
    if exe is None:
        raise BackendUnavailableError(f"an importance matrix needs llama.cpp's llama-imatrix: {INSTALL_HINT}")
    out_file = Path(out_file)
    _run([exe, "-m", Path(gguf_file).resolve(), "-f", Path(text_file).name, "-o", out_file.name, "-c", str(context),
          "--chunks", str(chunks), "-t", str(threads or os.cpu_count() or 1), "--no-ppl"], "computing the importance matrix",
         log=log, cwd=Path(text_file).parent)
    if out_file.parent != Path(text_file).parent:
        (Path(text_file).parent / out_file.name).rename(out_file)
    if not out_file.is_file():
        raise HFCompressError("llama-imatrix wrote no importance matrix (the calibration text may be shorter than one chunk)")
    return out_file


def quantize(source: Path, out_file: Path, file_type: str, *, imatrix: Path | None = None, threads: int | None = None,
             log: Path | None = None) -> Path:
    """Quantize a float GGUF into ``file_type`` with llama.cpp: its tool (importance matrix) or its library."""
    exe = tool("llama-quantize")
    if exe is not None:
        # Run beside the importance matrix with its bare name: the tool writes that path into the file's metadata.
        cwd = Path(imatrix).parent if imatrix else None
        command = ([exe] + (["--imatrix", Path(imatrix).name] if imatrix else [])
                   + [Path(source).resolve(), Path(out_file).resolve(), file_type, str(threads or os.cpu_count() or 1)])
        _run(command, f"quantizing to {file_type}", log=log, cwd=cwd)
        return out_file
    if imatrix is not None:
        raise BackendUnavailableError(f"quantizing with an importance matrix needs llama.cpp's llama-quantize: {INSTALL_HINT}")
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{file_type}")
    params.nthread = threads or os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out_file).encode(), params) != 0:
        raise HFCompressError(f"llama.cpp could not quantize {source.name} to {file_type}")
    return out_file


@dataclass
class GGUFTensor:
    """One tensor of a GGUF file, as its header describes it."""

    name: str
    shape: tuple[int, ...]
    type: str
    n_elements: int
    n_bytes: int


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_header(gguf_file: str | os.PathLike) -> tuple[dict[str, Any], list[GGUFTensor]]:
    """The key/value metadata and the tensor table of a GGUF file, read from its header.

    Our own reader of the format's header (the spec is ggml's gguf.md): the gguf package's reader memory-maps every
    string of the vocabulary and takes seconds on a 49k-token one; this reads the header in one pass, keeping
    arrays as their length (except short ones). A file that is not GGUF, or is cut short, is one line.
    """
    import gguf

    path = Path(gguf_file)
    try:
        with path.open("rb") as handle:
            data = handle.read(min(path.stat().st_size, 64 << 20))
        reader = _HeaderReader(data)
        if reader.take(4) != b"GGUF":
            raise ValueError("no GGUF magic")
        version, n_tensors, n_kv = reader.unpack("<I"), reader.unpack("<Q"), reader.unpack("<Q")
        metadata: dict[str, Any] = {"GGUF.version": version}
        for _ in range(n_kv):
            key = reader.string()
            metadata[key] = reader.value(reader.unpack("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = reader.string()
            shape = tuple(reader.unpack("<Q") for _ in range(reader.unpack("<I")))
            kind = gguf.GGMLQuantizationType(reader.unpack("<I"))
            reader.unpack("<Q")  # offset
            n = 1
            for dim in shape:
                n *= dim
            block, size = gguf.GGML_QUANT_SIZES[kind]
            tensors.append(GGUFTensor(name, shape, kind.name, n, n // block * size))
    except (ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError) as err:
        raise HFCompressError(f"{path.name} is not a readable GGUF file ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:120]}); write or download it again") from None
    return metadata, tensors


class _HeaderReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise IndexError("the header ends before its last entry")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9:
            item, count = self.unpack("<I"), self.unpack("<Q")
            if item == 8:
                values = [self.string() for _ in range(count)]
            else:
                size = struct.calcsize(_SCALARS[item])
                values = [v[0] for v in struct.iter_unpack(_SCALARS[item], self.take(size * count))]
            return values if count <= 64 else f"<{count} items>"
        raise ValueError(f"unknown metadata type {kind}")


def tensor_types(gguf_file: str | os.PathLike) -> dict[str, int]:
    """How many weights of each tensor type a GGUF file holds."""
    counts: dict[str, int] = {}
    for tensor in read_header(gguf_file)[1]:
        counts[tensor.type] = counts.get(tensor.type, 0) + tensor.n_elements
    return counts


def file_metadata(gguf_file: str | os.PathLike) -> dict[str, Any]:
    """The key/value fields of a GGUF file (long arrays as their length); ``tokenizer.chat_template`` says whether
    one is there."""
    metadata = read_header(gguf_file)[0]
    if "tokenizer.chat_template" in metadata:
        metadata["tokenizer.chat_template"] = bool(metadata["tokenizer.chat_template"])
    return metadata


def load(gguf_file: str | os.PathLike, *, context: int = 512, logits_all: bool = False, threads: int | None = None) -> Any:
    """A ``llama_cpp.Llama`` for the file (CPU threads = cores unless given), quiet."""
    if not bindings_available():
        raise BackendUnavailableError(f"running GGUF files needs llama-cpp-python: {INSTALL_HINT}")
    import llama_cpp

    try:
        return llama_cpp.Llama(str(gguf_file), n_ctx=context, logits_all=logits_all, n_threads=threads or os.cpu_count() or 1,
                               n_threads_batch=threads or os.cpu_count() or 1, verbose=False, n_batch=min(context, 512))
    except ValueError as err:
        raise HFCompressError(f"llama.cpp could not load {Path(gguf_file).name} ({err}); it may be corrupt: write it again") from None

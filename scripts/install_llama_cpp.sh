#!/usr/bin/env bash
# Build llama.cpp for GGUF export and the llama.cpp engine, from llama-cpp-python's source (which vendors
# llama.cpp): the Python bindings as a wheel, and the llama-imatrix and llama-quantize tools. Installs the wheel
# into the venv and the tools, with llama.cpp's own converter (convert_hf_to_gguf.py, gguf-py), into
# <venv>/share/hfcompress/llama.cpp, where hfcompress looks for them.
#
# Built once per machine into $HFCOMPRESS_BUILD_CACHE (default ~/.cache/hfcompress/build): about 8 minutes on
# 2 cores, seconds afterwards. Prebuilt llama.cpp wheels do not load on Debian 12 (glibc 2.36).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSION=0.3.36
CACHE="${HFCOMPRESS_BUILD_CACHE:-$HOME/.cache/hfcompress/build}/llama-cpp-python-$VERSION-$(uname -m)"
DEST="$("$PY" -c 'import sys; print(sys.prefix)')/share/hfcompress/llama.cpp"

if [ ! -f "$CACHE/dist/done" ]; then
    echo "install_llama_cpp.sh: building llama.cpp $VERSION (once, about 8 minutes on 2 cores) in $CACHE" >&2
    rm -rf "$CACHE"
    mkdir -p "$CACHE/dist/llama.cpp/bin"
    "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$CACHE"
    tar xzf "$CACHE/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE"
    SRC="$CACHE/llama_cpp_python-$VERSION"
    if [ "$(uname -m)" = x86_64 ]; then
        # A native build (-march=native) crashes with a general protection fault in libggml-cpu on the first decode
        # on VMs that report CPU features they do not allow: name the x86-64 features instead (AVX2, no AVX-512/AMX).
        CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    else
        CPU_FLAGS=""
    fi
    # The tools are built in the same tree as the bindings (one compile of ggml); the multimodal library is built
    # only because llama.cpp's tool folder installs it.
    CMAKE_ARGS="$CPU_FLAGS -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
        "$PY" -m pip wheel -q --no-deps -w "$CACHE/dist" "$SRC" \
        --config-settings=build-dir="$CACHE/build" "--config-settings=build.targets=llama;ggml;mtmd;llama-quantize;llama-imatrix"
    cp -a "$CACHE/build/bin/." "$CACHE/dist/llama.cpp/bin/"
    cp "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" "$SRC/vendor/llama.cpp/LICENSE" "$CACHE/dist/llama.cpp/"
    cp -r "$SRC/vendor/llama.cpp/conversion" "$SRC/vendor/llama.cpp/gguf-py" "$CACHE/dist/llama.cpp/"
    rm -rf "$CACHE/build" "$SRC" "$CACHE"/*.tar.gz
    touch "$CACHE/dist/done"
fi
"$PY" -m pip install -q -c constraints.txt "$CACHE"/dist/llama_cpp_python-*.whl
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -a "$CACHE/dist/llama.cpp" "$DEST"
rm -f "$DEST/done"
echo "install_llama_cpp.sh: llama.cpp $VERSION ready in $DEST" >&2

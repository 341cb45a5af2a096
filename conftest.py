"""Settings for every test and doctest run from the repository root: quiet, offline-friendly, no telemetry."""

import importlib.util
import os

import pytest

os.environ.setdefault("HFCOMPRESS_QUIET", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _backend_console_logs_off_in_doctests(request):
    # llm-compressor logs to the console through loguru when first used (e.g. "No accelerator available!"); inside
    # a doctest that line lands in the output compared with the example. Imported first: its import resets loguru.
    if type(request.node).__name__ != "DoctestItem" or importlib.util.find_spec("llmcompressor") is None:
        yield
        return
    import llmcompressor  # noqa: F401
    from loguru import logger

    logger.disable("llmcompressor")
    try:
        yield
    finally:
        logger.enable("llmcompressor")

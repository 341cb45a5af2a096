"""Shared fixtures: tiny random Llama models built in the test (seconds), and the embedded SmolLM2 for slow tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama folder (hidden 64, 2 layers, GQA 4/2 heads) shared by the session: do not modify it."""
    from hfcompress.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture()
def tiny_texts() -> list[str]:
    """A few English sentences for calibration and evaluation of tiny models."""
    return [
        "The quick brown fox jumps over the lazy dog. " * 8,
        "Compression makes language models smaller and faster to run on modest hardware. " * 6,
        "A model card tells the truth about what was done and what got worse. " * 6,
        "Paris is the capital of France, and Berlin is the capital of Germany. " * 6,
    ]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the embedded SmolLM2 model or runs for minutes (run with -m slow)")
    config.addinivalue_line("markers", "browser: drives a real Chromium through playwright")

"""Settings for every test and doctest run from the repository root: quiet, offline-friendly, no telemetry."""

import os

os.environ.setdefault("HFCOMPRESS_QUIET", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

"""Comparison Space of hfcompress: every compressed variant of one base model, side by side.

Runs on the Hugging Face Hub as a Gradio Space (``python app.py``) and locally:

    hfcompress space runs/smollm2-grid             # a folder of saved variants
    hfcompress space me/smollm2-variants-0123456789abcdef01234567   # a Hub collection
    HFCOMPRESS_SPACE_SOURCE=runs/grid python spaces/compare/app.py

What it reads: ``$HFCOMPRESS_SPACE_SOURCE`` if set, else ``space_config.json`` beside this file (written by
``hfcompress push-space``: a collection id or the bundled ``results/`` folder), else ``results/``.
The logic lives in ``hfcompress.space`` so it is tested with the package; this file only wires it up.
"""

from pathlib import Path

from hfcompress.space import build_app, launch, space_source

demo = build_app(space_source(Path(__file__).resolve().parent))

if __name__ == "__main__":
    launch(demo)

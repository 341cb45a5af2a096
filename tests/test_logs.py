"""Backend logs go to a file; the terminal keeps hfcompress's own bars, warnings and errors."""

from __future__ import annotations

import logging
import warnings

from hfcompress.logs import backend_logs


def test_backend_chatter_goes_to_the_file_and_ours_stays_on_the_terminal(tmp_path, capfd):
    from loguru import logger as loguru_logger
    from tqdm.auto import tqdm
    from transformers.utils import logging as transformers_logging

    terminal = logging.StreamHandler()
    logging.getLogger().addHandler(terminal)
    backend_bar = {"__name__": "somebackend.pipeline", "tqdm": tqdm}
    try:
        with backend_logs(tmp_path / "hfcompress.log") as log:
            loguru_logger.info("Quantizing model.layers.0.q_proj")  # llm-compressor's way
            transformers_logging.get_logger("transformers.modeling_utils").warning("Attempting to save offloaded modules")
            warnings.warn("torch_dtype is deprecated")
            logging.getLogger("hfcompress.grid").warning("variant x failed: one line for the user")
            exec("bar = tqdm(range(3), desc='Calibrating')\nfor _ in bar: pass", backend_bar)
            ours = {"__name__": "hfcompress.grid", "tqdm": tqdm}  # a bar made by hfcompress's code
            exec("bar = tqdm(range(3), desc='grid')\nfor _ in bar: pass", ours)
    finally:
        logging.getLogger().removeHandler(terminal)
    err = capfd.readouterr().err
    text = log.read_text()
    for line in ("Quantizing model.layers.0.q_proj", "Attempting to save offloaded modules", "torch_dtype is deprecated"):
        assert line in text and line not in err
    assert "variant x failed" in err and "variant x failed" in text
    assert "Calibrating" not in err and "grid: 100%" in err  # a finished bar reads .disable True: look at the terminal
    # Afterwards everything is as before: bars of other libraries draw again, transformers has its handler back.
    exec("bar = tqdm(range(1), desc='Later')", backend_bar)
    assert not backend_bar["bar"].disable
    assert not transformers_logging.get_logger().propagate


def test_verbose_also_shows_the_backends(tmp_path, capfd):
    from tqdm.auto import tqdm

    with backend_logs(tmp_path / "hfcompress.log", verbose=True):
        scope = {"__name__": "somebackend", "tqdm": tqdm}
        exec("bar = tqdm(range(2), desc='Calibrating')\nfor _ in bar: pass", scope)
    assert "Calibrating" in capfd.readouterr().err

"""Backend logs go to a log file; the terminal keeps hfcompress's own progress bars, warnings and errors.

A compression run drives libraries that each talk to the terminal their own way: llm-compressor logs every module
through loguru, transformers through its own handler, torch and compressed-tensors through ``warnings``, and all
of them draw tqdm bars. A demo printed over a thousand such lines. ``backend_logs`` routes all of it into one file
(the runs folder's ``hfcompress.log``), and passes through to the terminal only what concerns the user: records
of hfcompress itself at WARNING and above, anyone's ERROR, and hfcompress's own bars. ``verbose=True`` (``-v``)
shows everything on the terminal as well.

Example:
    >>> import logging, tempfile
    >>> from pathlib import Path
    >>> log = Path(tempfile.mkdtemp()) / "hfcompress.log"
    >>> with backend_logs(log):
    ...     logging.getLogger("somebackend").info("calibrating layer 3")
    >>> "calibrating layer 3" in log.read_text()
    True
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from unittest import mock
from typing import Any, Iterator

LOG_FILE_NAME = "hfcompress.log"
_SELF_HANDLED = ("torch",)  # libraries that keep their own terminal handler instead of propagating to the root
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _TerminalFilter(logging.Filter):
    """What reaches the terminal: hfcompress's warnings and errors, everybody's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        return record.name.split(".")[0] == "hfcompress" and record.levelno >= logging.WARNING


def _called_from_hfcompress() -> bool:
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("tqdm", "contextlib", __name__):
        frame = frame.f_back
    return frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "hfcompress"


@contextlib.contextmanager
def _only_our_bars() -> Iterator[None]:
    # tqdm has no switch for "other libraries' bars only" (TQDM_DISABLE is read once, at import, and hides ours
    # too), so while the block runs a bar created outside hfcompress starts disabled.
    try:
        import tqdm.std
    except ImportError:
        yield
        return
    original = tqdm.std.tqdm.__dict__["__init__"]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if not _called_from_hfcompress():
            kwargs["disable"] = True
        original.__get__(self, type(self))(*args, **kwargs)

    tqdm.std.tqdm.__init__ = __init__
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = original


@contextlib.contextmanager
def _loguru_to(handler: logging.Handler, verbose: bool) -> Iterator[None]:
    try:
        from loguru import logger
    except ImportError:
        yield
        return
    # llm-compressor's import resets loguru's sinks (and logs on the way): let it happen, quietly, before ours are set.
    with mock.patch.dict(os.environ, {"LLM_COMPRESSOR_LOG_LEVEL": "ERROR"}), contextlib.suppress(ImportError):
        import llmcompressor  # noqa: F401

    def to_file(message: Any) -> None:
        record = message.record
        handler.handle(logging.makeLogRecord({"name": record["name"] or "loguru", "levelno": record["level"].no,
                                              "levelname": record["level"].name, "msg": str(message).rstrip()}))

    logger.remove()
    sinks = [logger.add(to_file, level="INFO", format="{function} | {message}")]
    if verbose:
        sinks.append(logger.add(sys.stderr, level="INFO"))
    try:
        yield
    finally:
        for sink in sinks:
            with contextlib.suppress(ValueError):
                logger.remove(sink)
        logger.add(sys.stderr, level="WARNING")


@contextlib.contextmanager
def backend_logs(log_file: str | Path, *, verbose: bool = False) -> Iterator[Path]:
    """Send every library's logging, warnings and progress bars to ``log_file`` (appended) while the block runs.

    hfcompress's own warnings, everyone's errors and hfcompress's progress bars stay on the terminal; with
    ``verbose`` everything also goes to the terminal, as without this. Yields the log file's path.
    """
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous_level = root.level
    # torch logs through its own stderr handler on the "torch" logger, which does not propagate.
    own_handlers = [logging.getLogger(name) for name in _SELF_HANDLED if not logging.getLogger(name).propagate]
    terminal = [h for lg in [root, *own_handlers] for h in lg.handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    terminal_filter = _TerminalFilter()
    transformers_logging = sys.modules.get("transformers.utils.logging")
    for lg in own_handlers:
        lg.addHandler(handler)
    root.addHandler(handler)
    root.setLevel(min(previous_level or logging.WARNING, logging.INFO))
    if not verbose:
        for h in terminal:
            h.addFilter(terminal_filter)
    if transformers_logging is not None:
        # transformers logs through its own stderr handler and does not propagate: hand its records to the root.
        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()
    logging.captureWarnings(True)
    stack = contextlib.ExitStack()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            stack.enter_context(_loguru_to(handler, verbose))
            if not verbose:
                stack.enter_context(_only_our_bars())
            with stack:
                yield path
    finally:
        logging.captureWarnings(False)
        if transformers_logging is not None:
            transformers_logging.disable_propagation()
            transformers_logging.enable_default_handler()
        for h in terminal:
            h.removeFilter(terminal_filter)
        for lg in [root, *own_handlers]:
            lg.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()

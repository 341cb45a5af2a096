"""The one exception type hfcompress raises for bad input or an environment that cannot do the job.

Every message is a single line that says what was wrong and what to do, so a user never has to read a
stack trace from deep inside a backend.

Example:
    >>> from hfcompress.errors import HFCompressError
    >>> raise HFCompressError("bits=3 is not supported by GPTQ here; use bits=4 or bits=8")
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: bits=3 is not supported by GPTQ here; use bits=4 or bits=8
"""

from __future__ import annotations


class HFCompressError(ValueError):
    """A clear, one-line error about the user's input or environment.

    Subclasses ValueError so code that already catches ValueError for bad arguments keeps working.

    Example:
        >>> try:
        ...     raise HFCompressError("group_size=100 does not divide layer width 576; use 64 or 192")
        ... except ValueError as err:
        ...     print(err)
        group_size=100 does not divide layer width 576; use 64 or 192
    """

    def __init__(self, message: str) -> None:
        # Collapse newlines so the CLI always prints exactly one line.
        super().__init__(" ".join(str(message).split()))


class BackendUnavailableError(HFCompressError):
    """The chosen backend is not installed or cannot run on this hardware (the message names the pip extra)."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """Any exception as one line: our errors by their message, others with their type name in front.

    Example:
        >>> one_line(OSError("disk\\nfull"))
        'OSError: disk full'
    """
    text = " ".join(str(err).split()) or type(err).__name__
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text if isinstance(err, HFCompressError) or text == type(err).__name__ else f"{type(err).__name__}: {text}"

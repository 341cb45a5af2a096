"""The version of hfcompress, in a module of its own so nothing has to import it back from the package.

Example:
    >>> from hfcompress._version import __version__
    >>> __version__.count(".") >= 1
    True
"""

__version__ = "0.2.0"

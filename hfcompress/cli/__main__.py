"""``python -m hfcompress.cli``."""

import sys

from . import main

sys.exit(main())

"""``python -m evalkit``: the ``evalkit`` command line, for environments without the console script."""

import sys

from .cli import main

sys.exit(main())

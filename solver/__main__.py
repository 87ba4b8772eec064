"""``python -m solver`` is the command line ``wgf``."""

import sys

from .cli import main

sys.exit(main())

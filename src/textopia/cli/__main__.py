"""``python -m textopia.cli``: the ``textopia`` command (what torchrun and accelerate launch run)."""

import sys

from textopia.cli import main

sys.exit(main())

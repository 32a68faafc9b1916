"""``python -m fastdl ...`` is the ``fastdl`` command."""

import sys

from .cli import main

sys.exit(main())

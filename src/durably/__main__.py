"""``python -m durably``: the ``durably`` command."""

import sys

from durably.cli import main

sys.exit(main())

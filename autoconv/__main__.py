"""``python -m autoconv``: the ``autoconv`` command."""

import sys

from autoconv.cli import main

sys.exit(main())

"""The ``autoconv`` command line: ``main`` runs it (the console script ``autoconv``).

Nothing in autoconv imports this package; it sits on top of everything else.
"""

from autoconv.cli.main import main

__all__ = ["main"]

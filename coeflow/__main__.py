"""``python -m coeflow`` is the ``coeflow`` command (the one import upward: an entry point)."""

from coeflow.tools.cli import main

main()

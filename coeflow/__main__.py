"""``python -m coeflow`` is the ``coeflow`` command."""

from coeflow.cli import main

main()

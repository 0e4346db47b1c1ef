"""``python -m promptactors``: the same as the ``promptactors`` command."""

from .cli import main

raise SystemExit(main())

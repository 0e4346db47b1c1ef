"""``python -m promptactors.cli``: the same as the ``promptactors`` command."""

from ._main import main

raise SystemExit(main())

"""``python -m hamburger`` is the same as the ``hamburger`` command."""

from .cli import main

raise SystemExit(main())

"""``python -m widgetlib`` is the ``offload-lab`` command."""

from widgetlib.cli import main

raise SystemExit(main())

"""``python -m sync_pipelines.golioth integrations ...|backfill ...|receiver``: see :mod:`sync_pipelines.golioth.cli`."""

from sync_pipelines.golioth.cli import main

raise SystemExit(main())

"""`python -m sync_pipelines.procore`: the Procore connection commands (see cli.py)."""

from sync_pipelines.procore.cli import main

raise SystemExit(main())

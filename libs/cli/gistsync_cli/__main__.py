"""`python -m gistsync_cli`: the same as the `gistsync` command."""

from __future__ import annotations

import sys

from gistsync_cli.main import main

sys.exit(main())

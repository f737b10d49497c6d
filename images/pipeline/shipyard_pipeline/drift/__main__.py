"""`python -m shipyard_pipeline.drift`: the drift step with the step CLI's arguments."""

from __future__ import annotations

import sys

from shipyard_pipeline.drift.cli import main

sys.exit(main())

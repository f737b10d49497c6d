"""`python -m shipyard_pipeline`: the same as the `shipyard-step` console script."""

import sys

from shipyard_pipeline.cli import main

sys.exit(main())

"""`python -m evss.cli`: the same as the `evss` command."""

import sys

from evss.cli import main

sys.exit(main())

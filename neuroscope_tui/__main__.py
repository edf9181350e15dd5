"""`python -m neuroscope_tui` is the same as the `neuroscope-tui` command."""

import sys

from neuroscope_tui.cli import main

sys.exit(main())

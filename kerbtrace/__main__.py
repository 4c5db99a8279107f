"""`python -m kerbtrace` runs the command-line tool."""

import sys

from kerbtrace.cli import main

sys.exit(main())

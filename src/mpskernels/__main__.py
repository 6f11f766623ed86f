"""`python -m mpskernels`: the same command line as `mpskernels`."""

import sys

from .cli import main

sys.exit(main())

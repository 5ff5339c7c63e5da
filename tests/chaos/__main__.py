"""`python -m tests.chaos`: see the package's docstring."""

import sys

from tests.chaos.run import main

sys.exit(main())

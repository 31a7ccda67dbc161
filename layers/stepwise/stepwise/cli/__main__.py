"""``python -m stepwise.cli``: the same as the ``stepwise`` command."""

import sys

from stepwise.cli.main import main

sys.exit(main())

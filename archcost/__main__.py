"""``python -m archcost``: the same as the ``archcost`` command."""

import sys

from archcost.cli import main

sys.exit(main())

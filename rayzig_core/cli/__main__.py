"""``python -m rayzig_core.cli``: the ``rayzig`` command line."""

import sys

from rayzig_core.cli.app import main

sys.exit(main())

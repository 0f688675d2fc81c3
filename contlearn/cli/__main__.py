"""``python -m contlearn.cli``."""

import sys

from .app import main

sys.exit(main())

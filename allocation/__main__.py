"""python -m allocation == voucher."""

import sys

from allocation.cli import main

sys.exit(main())

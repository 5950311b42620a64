"""``python -m ddcmh_core.data.embedded build-uci-mfeat``: rebuild the shipped dataset file."""

import sys

from ..uci_mfeat import main

sys.exit(main())

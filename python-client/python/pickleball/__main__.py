"""``python -m pickleball`` runs the ``pickleball`` command."""

import sys

from pickleball.cli import main

sys.exit(main())

"""``python -m gateway`` runs the ``tagrelay`` command line."""

import sys

from gateway.cli import main

sys.exit(main())

"""``python -m neurodeploy`` runs the CLI."""

import sys

from neurodeploy.cli import main

sys.exit(main())

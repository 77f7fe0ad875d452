"""``python -m harness_cli``: the `harness` command without installing it."""

import sys

from harness_cli.main import main

sys.exit(main())

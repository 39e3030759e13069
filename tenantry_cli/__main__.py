"""``python -m tenantry_cli``: the same as the ``tenantry`` command."""

import sys

from tenantry_cli.main import main

sys.exit(main())

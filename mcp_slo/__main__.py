"""`python -m mcp_slo ...` is `mcp-slo ...`."""

import sys

from mcp_slo.cli import main

sys.exit(main())

"""The HTTP layer's tests (helpers, shared with the collector's tests, in http_helpers.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

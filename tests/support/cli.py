"""The ``cairn`` command as installed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

CAIRN = shutil.which("cairn", path=str(Path(sys.executable).parent)) or shutil.which("cairn")
"""The console script next to this interpreter (a virtualenv's bin/), else the one on PATH;
None when neither exists."""

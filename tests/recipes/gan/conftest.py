"""The stand-in GANs of these tests (``gan_standins``) are importable by name, in-process and in subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

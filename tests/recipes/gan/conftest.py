"""The stand-in GANs of these tests (``gan_standins``) are importable by name, in-process and in subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
REPO = HERE.parents[2]
#: environment of a subprocess running this tree's ``hamburger`` with the stand-ins importable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)])}

"""``make bench``: every benchmark of this folder, one after another."""

from __future__ import annotations

import runpy
from pathlib import Path

HERE = Path(__file__).parent

for script in ("core_steps.py", "sqlite_engine.py"):
    print(f"== {script}")
    runpy.run_path(str(HERE / script), run_name="__main__")

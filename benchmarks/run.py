"""``make bench``: the in-memory core benchmark, then durably against DBOS (``compare.py``).

Arguments are passed to ``compare.py`` (``--quick``, ``--repeats N``, ``--scenarios``,
``--backends``, ``--engines``, ``--out``); ``--no-core`` skips the in-memory benchmark.
The standalone ``sqlite_engine.py`` and ``postgres_workers.py`` are not run here.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402  (needs HERE on the path)


def main(argv: list[str]) -> None:
    if "--no-core" in argv:
        argv = [a for a in argv if a != "--no-core"]
    else:
        print("== core_steps.py (in-memory runtime, no durability)", flush=True)
        runpy.run_path(str(HERE / "core_steps.py"), run_name="__main__")
    print("\n== compare.py: durably against DBOS Transact, SQLite and PostgreSQL", flush=True)
    compare.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])

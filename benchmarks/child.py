"""One repetition of one engine in a fresh process: ``child.py SCENARIO ENGINE PHASE TARGET SIZES``.

Prints ``RESULT <json>`` (``{"figures": {...}, "settings": {...}}``) as its last line.
Run by ``compare.py``; not meant to be run by hand.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

from scenarios.common import Sizes, Target
from scenarios.process import RESULT


def main(argv: list[str]) -> None:
    scenario, engine, phase, target_json, sizes_json = argv
    target = Target.from_json(json.loads(target_json))
    sizes = Sizes.from_json(json.loads(sizes_json))
    module = importlib.import_module(f"scenarios.{scenario}")
    if phase == "run":
        result = module.run(engine, target, sizes)
    else:
        result = module.phase(phase, engine, target, sizes)
    sys.stdout.write(RESULT + json.dumps(result) + "\n")
    sys.stdout.flush()
    # DBOS leaves daemon threads behind; the result is out, so leave at once.
    os._exit(0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv[1:])

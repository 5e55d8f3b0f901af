"""The scenarios of the durably/DBOS comparison, one module each (see ``benchmarks/compare.py``).

Every module has the same shape: ``run(engine, target, sizes)`` is called in a fresh
child process (``benchmarks/child.py``) for one repetition of one engine and returns
the figures it measured; ``recovery`` drives several child processes of its own.
"""

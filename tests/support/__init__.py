"""What the project's own tests share: the backends they run on and one workflow harness.

- ``runtimes`` (a fixture of ``tests.support.fixtures``, registered by ``tests/conftest.py``):
  a ``RuntimeFactory`` over each backend in turn (``memory``, ``sqlite``, ``postgres``), so
  that one test is collected once per backend;
- ``Harness``: one workflow instance over such a runtime, driven as a host drives it.
"""

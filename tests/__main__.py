"""``python -m tests [pytest args]``: the test suite, as ``make test`` runs it.

hypothesis is imported before pytest installs its assertion rewriting. pytest would otherwise rewrite all of
hypothesis (it ships a pytest plugin), and CPython 3.11.7, this machine's Python, intermittently fails such a
rewrite with "SystemError: AST constructor recursion depth mismatch" (pytest-dev/pytest#10874). Our own test
modules are still rewritten.
"""

import sys

import hypothesis  # noqa: F401  (imported for its side effect on pytest's rewriting; see above)
import pytest

sys.exit(pytest.main(sys.argv[1:]))

"""Cairn's test suite: ``test_<area>.py`` modules, fixtures in ``conftest.py``, and the
harness they share in ``support/``."""

import pytest

# Before anything imports them: the harness's checks (``problem``, ``Team.post``...) then
# explain a failed ``assert`` as well as a test module's own do.
pytest.register_assert_rewrite("tests.support")

"""Everything under tests/deploy is marked ``deploy``: the offline validators and the
multi-process run, which ``make test-quick`` leaves out."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.deploy)

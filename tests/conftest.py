"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture
def run_check(capsys):
    """Run an exercise check on a function: returns (passed, what the check printed)."""

    def run(check, fn):
        passed = check(fn)
        return passed, capsys.readouterr().out

    return run

"""Shared fixtures: the path to the public datasets (realdata tests skip with a message when absent)."""

from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture
def shared_data():
    """``../shared/data`` beside the repository, or skip."""
    def need(*parts: str) -> Path:
        p = SHARED_DATA.joinpath(*parts)
        if not p.exists():
            pytest.skip(f"real dataset not available: {p} is missing (realdata tests need ../shared/data)")
        return p
    return need

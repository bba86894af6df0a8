"""
Fixtures shared by the unit tests.
"""

import pytest


@pytest.fixture
def toml(tmp_path):
    """
    Write a TOML configuration file and return its path.
    """

    def write(text: str) -> str:
        path = tmp_path / "llmedge.toml"
        path.write_text(text)
        return str(path)

    return write

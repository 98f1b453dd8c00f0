"""WEFT_DATA_DIR: set but empty (or blank) means the default, not the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.settings import Settings


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_weft_data_dir_is_the_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WEFT_DATA_DIR", value)
    settings = Settings()
    assert settings.weft_data_dir == Path(".weft")
    assert settings.embedded_db_dir == Path(".weft").resolve() / "pgdata"


def test_a_weft_data_dir_is_taken_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEFT_DATA_DIR", "/srv/weft")
    assert Settings().embedded_db_dir == Path("/srv/weft/pgdata")

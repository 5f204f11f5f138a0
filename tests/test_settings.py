"""Settings fail fast on unknown keys and bad values; no config at all works."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightgrid.core.errors import InvalidRequest
from lightgrid.settings import load_settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIGHTGRID_CONFIG", raising=False)
    settings = load_settings()
    assert settings.backend == "embedded" and settings.db_url.startswith("sqlite:///")
    assert {p.name for p in settings.partitions} == {"cpu", "gpu", "bigmem"}


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('center_name = "north"\nport = 9000\n')
    monkeypatch.setenv("LIGHTGRID_PORT", "9100")
    settings = load_settings(config)
    assert (settings.center_name, settings.port) == ("north", 9100)


@pytest.mark.parametrize(("text", "fragment"), [
    ('centre_name = "x"\n', "unknown key 'centre_name'"),
    ("port = 99999\n", "setting port"),
    ('backend = "pbs"\n', "setting backend"),
    ("port = \n", "c.toml"),
    ('[slurm]\nslurm_cnf = "/x"\n', "slurm"),
])
def test_bad_config_fails_fast(tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(InvalidRequest, match=fragment):
        load_settings(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_relative_data_dir_becomes_absolute(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, data_dir=Path("var/demo"))
    assert settings.data_dir == tmp_path / "var" / "demo"

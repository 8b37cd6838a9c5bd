"""Secrets: generated once in development, required elsewhere, never a built-in default."""

from pathlib import Path

import pytest

from shared.secrets import MissingSecret, read_secret


def test_development_generates_once_and_reuses(tmp_path: Path) -> None:
    first = read_secret("UNSUBSCRIBE_SECRET", environment="development", data_dir=tmp_path, environ={})
    again = read_secret("UNSUBSCRIBE_SECRET", environment="development", data_dir=tmp_path, environ={})
    assert first == again and len(first) >= 32
    stored = tmp_path / "secrets" / "unsubscribe_secret"
    assert stored.read_text() == first and stored.stat().st_mode & 0o777 == 0o600


def test_each_data_dir_gets_its_own_secret(tmp_path: Path) -> None:
    one = read_secret("X_SECRET", environment="development", data_dir=tmp_path / "a", environ={})
    two = read_secret("X_SECRET", environment="development", data_dir=tmp_path / "b", environ={})
    assert one != two


def test_production_refuses_a_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(MissingSecret, match="UNSUBSCRIBE_SECRET is not set"):
        read_secret("UNSUBSCRIBE_SECRET", environment="production", data_dir=tmp_path, environ={})
    assert not (tmp_path / "secrets").exists()


def test_value_and_file_are_read_and_short_values_refused(tmp_path: Path) -> None:
    value = "v" * 40
    assert read_secret("S", environment="production", data_dir=tmp_path, environ={"S": value}) == value
    secret_file = tmp_path / "s.txt"
    secret_file.write_text(value + "\n")
    env = {"S_FILE": str(secret_file)}
    assert read_secret("S", environment="production", data_dir=tmp_path, environ=env) == value
    with pytest.raises(MissingSecret, match="at least 32"):
        read_secret("S", environment="production", data_dir=tmp_path, environ={"S": "short"})
    with pytest.raises(MissingSecret, match="cannot be read"):
        read_secret("S", environment="production", data_dir=tmp_path, environ={"S_FILE": str(tmp_path / "nope")})

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from kb_site.env import env_bool, env_int, env_list, env_secret

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_read_from_the_environment_is_documented_in_env_example():
    settings_source = (ROOT / "kb_site" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', settings_source))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read, "settings.py reads no variables?"
    assert read - documented == set(), f"undocumented in .env.example: {sorted(read - documented)}"


def test_every_setting_read_from_the_environment_is_explained_in_the_configuration_doc():
    settings_source = (ROOT / "kb_site" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', settings_source))
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in read if f"`{name}`" not in doc)
    assert missing == [], f"not explained in docs/configuration.md: {missing}"


def test_env_int_names_the_variable_when_the_value_is_bad(monkeypatch):
    monkeypatch.setenv("KB_TEST_INT", "twelve")
    with pytest.raises(ImproperlyConfigured, match="KB_TEST_INT"):
        env_int("KB_TEST_INT", 1)


def test_env_int_enforces_its_bounds(monkeypatch):
    monkeypatch.setenv("KB_TEST_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("KB_TEST_INT", 5, minimum=1)


def test_env_bool_rejects_words_it_does_not_know(monkeypatch):
    monkeypatch.setenv("KB_TEST_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="KB_TEST_BOOL"):
        env_bool("KB_TEST_BOOL")
    monkeypatch.setenv("KB_TEST_BOOL", "Yes")
    assert env_bool("KB_TEST_BOOL") is True


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("KB_TEST_LIST", " a.example ,b.example,, ")
    assert env_list("KB_TEST_LIST") == ["a.example", "b.example"]


def test_env_secret_reads_the_file_named_by_the_file_variable(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("KB_TEST_SECRET", raising=False)
    monkeypatch.setenv("KB_TEST_SECRET_FILE", str(secret))
    assert env_secret("KB_TEST_SECRET") == "s3cret"
    monkeypatch.setenv("KB_TEST_SECRET", "other")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_secret("KB_TEST_SECRET")


def _import_settings(**overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}}
    # A dummy URL: importing settings must not need a database.
    env.update({"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", **overrides})
    return subprocess.run(
        [sys.executable, "-c", "import kb_site.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = _import_settings(DEBUG="false", ALLOWED_HOSTS="kb.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_production_mode_refuses_to_start_without_allowed_hosts():
    result = _import_settings(DEBUG="false", SECRET_KEY="x" * 40)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is required" in result.stderr


def test_production_mode_starts_with_both():
    result = _import_settings(DEBUG="false", SECRET_KEY="x" * 40, ALLOWED_HOSTS="kb.example.com")
    assert result.returncode == 0, result.stderr

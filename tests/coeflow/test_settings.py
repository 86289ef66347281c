from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from coeflow.settings import EMBEDDED_BOOTSTRAP, Settings

SETTINGS_PAGE = Path(__file__).parents[2] / "docs" / "settings.md"


def test_compression_none_is_no_codec_for_the_producers(monkeypatch) -> None:
    monkeypatch.delenv("COEFLOW_COMPRESSION", raising=False)
    assert Settings(_env_file=None).compression_type == "snappy"
    assert Settings(_env_file=None, compression="none").compression_type is None
    with pytest.raises(ValueError, match="compression"):
        Settings(_env_file=None, compression="brotli")


def test_settings_come_from_coeflow_environment_variables(monkeypatch) -> None:
    monkeypatch.setenv("COEFLOW_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("COEFLOW_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("COEFLOW_MAX_CAUSATION_DEPTH", "3")
    settings = Settings()
    assert settings.bootstrap == "kafka:9092" and settings.max_causation_depth == 3
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_lists_come_comma_separated_and_empty_variables_mean_unset(monkeypatch) -> None:
    monkeypatch.setenv("COEFLOW_ROLES", "executors, crm-simulator")
    monkeypatch.setenv("COEFLOW_OUTBOUND_ALLOWLIST", "127.0.0.1,10.0.0.0/8, hooks.internal")
    monkeypatch.setenv("COEFLOW_SMTP_HOST", "")
    settings = Settings()
    assert settings.roles == {"executors", "crm-simulator"}
    assert settings.outbound_allowlist == ("127.0.0.1", "10.0.0.0/8", "hooks.internal")
    assert settings.smtp_host is None


def test_an_unknown_role_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("COEFLOW_ROLES", "processor,mailer")
    with pytest.raises(ValidationError, match="'processor', 'api', 'executors' or 'crm-simulator'"):
        Settings()


def test_a_default_worker_runs_the_processor_the_api_and_the_executors(monkeypatch) -> None:
    monkeypatch.delenv("COEFLOW_ROLES", raising=False)
    assert Settings(_env_file=None).roles == {"processor", "api", "executors"}  # type: ignore[call-arg]
    monkeypatch.setenv("COEFLOW_ROLES", "processor")
    assert Settings(_env_file=None).roles == {"processor"}, "the processor role alone: no api"  # type: ignore[call-arg]
    monkeypatch.setenv("COEFLOW_ROLES", "api")
    assert Settings(_env_file=None).roles == {"api"}  # type: ignore[call-arg]


def test_the_embedded_broker_is_the_default(monkeypatch) -> None:
    monkeypatch.delenv("COEFLOW_KAFKA_BOOTSTRAP", raising=False)
    assert Settings().bootstrap == EMBEDDED_BOOTSTRAP


def test_bad_values_are_refused_with_the_setting_named(monkeypatch) -> None:
    monkeypatch.setenv("COEFLOW_WEB_PORT", "99999")
    with pytest.raises(ValidationError, match="web_port"):
        Settings()


def test_the_settings_page_lists_every_setting_with_its_default() -> None:
    rows = dict(
        re.findall(r"^\| `(COEFLOW_[A-Z_]+)` \| ([^|]+) \|", SETTINGS_PAGE.read_text(), re.M)
    )
    for name, field in Settings.model_fields.items():
        variable = f"COEFLOW_{name.upper()}"
        assert variable in rows, f"{variable} is missing from docs/settings.md"
        default = field.default
        if default is None:
            expected = "unset"
        elif isinstance(default, bool):
            expected = str(default).lower()
        elif isinstance(default, frozenset | tuple):
            expected = ",".join(sorted(default)) or "empty"
        else:
            expected = str(default)
        assert rows[variable].strip().strip("`") == expected, variable
    assert set(rows) == {f"COEFLOW_{n.upper()}" for n in Settings.model_fields}

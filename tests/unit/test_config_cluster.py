"""DATABASE_URL: a PostgreSQL URL whose password is a secret everywhere voicecoder could show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.redaction import Redactor

URL = "postgresql://bot:s3cr%2Ft-pw@db.internal:5432/voicecoder"


def test_the_password_is_a_secret_as_written_and_decoded() -> None:
    config = Config.from_mapping({"DATABASE_URL": URL})
    redact = Redactor(config.secrets())

    assert config.database_url == URL
    assert {"s3cr%2Ft-pw", "s3cr/t-pw"} <= set(config.secrets())
    assert "s3cr" not in redact(f"failed: {URL} and s3cr/t-pw")
    assert "s3cr" not in repr(config)


@pytest.mark.parametrize(
    "value", ["mysql://root:pw@db/x", "postgresql://db.internal", "postgresql:///just-a-db", "not a url at all"]
)
def test_anything_but_a_postgresql_url_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Config.from_mapping({"DATABASE_URL": value})

    assert "postgresql://USER:PASSWORD@HOST:PORT/DATABASE" in str(refused.value)
    assert value not in str(refused.value)


def test_the_agent_can_never_be_given_the_database() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        Config.from_mapping({"AGENT_ENV_PASSTHROUGH": "DATABASE_URL"})


def test_a_cluster_role_needs_the_database() -> None:
    with pytest.raises(ConfigurationError, match="needs DATABASE_URL"):
        Config.from_mapping({}).require_cluster("worker")
    assert Config.from_mapping({"DATABASE_URL": URL}).require_cluster("worker") == URL


def test_a_worker_serves_projects(tmp_path: Path) -> None:
    """A worker leases every (user, project) workspace of its host (ADR 0028), so PROJECTS is no longer refused."""
    (tmp_path / "api").mkdir()
    config = Config.from_mapping({"DATABASE_URL": URL, "PROJECTS": f"api={tmp_path / 'api'}"})
    assert config.require_cluster("worker") == URL
    assert config.require_cluster("ingress") == URL

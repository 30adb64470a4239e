"""PROJECTS / PROJECTS_FILE / WORKSPACES_ROOT: parsing, validation errors that name the fix, and the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicecoder.bootstrap import build_container
from voicecoder.bootstrap.doctor import doctor
from voicecoder.bootstrap.projects import workspace_path
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.model import UserId
from voicecoder.domain.router import ProjectRouter
from voicecoder.domain.services import VoiceCoder
from voicecoder.projects_config import ProjectSpec


def test_without_projects_nothing_changes() -> None:
    config = Config.from_mapping({})

    assert config.projects == ()
    # The transport drives the one workspace's app, exactly as before.
    assert isinstance(build_container(config).front(), VoiceCoder)


def test_projects_are_read_with_paths_and_remotes(tmp_path: Path) -> None:
    config = Config.from_mapping(
        {
            "PROJECTS": f"api={tmp_path / 'api'}; web=git@example.org:team/web.git;docs=https://example.org/d.git",
            "WORKSPACES_ROOT": str(tmp_path / "trees"),
        }
    )

    assert config.projects == (
        ProjectSpec("api", path=tmp_path / "api"),
        ProjectSpec("web", remote="git@example.org:team/web.git"),
        ProjectSpec("docs", remote="https://example.org/d.git"),
    )
    assert workspace_path(config, config.projects[0], UserId(7)) == tmp_path / "trees" / "api" / "user-7"
    router = build_container(config).front()
    assert isinstance(router, ProjectRouter)
    assert router.projects == ("api", "web", "docs")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("API=/srv/api", "'API' is not usable"),
        ("a-very-long-project-name=/srv/x", "1 to 12 characters"),
        ("api=/srv/a;api=/srv/b", "'api' is used twice"),
        ("api", "needs the form name=path-or-remote"),
        ("api=", "needs the form name=path-or-remote"),
        ("my api=/srv", "'my api' is not usable"),
        (" ; ", "lists no project"),
    ],
)
def test_bad_projects_name_the_fix(value: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Config.from_mapping({"PROJECTS": value})

    assert says in str(raised.value)
    assert "PROJECTS" in str(raised.value)


def test_a_projects_file_is_read(tmp_path: Path) -> None:
    file = tmp_path / "projects.toml"
    file.write_text(
        '[[project]]\nname = "api"\npath = "/srv/api"\nshared = true\n\n'
        '[[project]]\nname = "web"\nremote = "git@example.org:web.git"\nbranch = "develop"\nhost = "build-2"\n'
    )

    config = Config.from_mapping({"PROJECTS_FILE": str(file)})

    assert config.projects == (
        ProjectSpec("api", path=Path("/srv/api"), shared=True),
        ProjectSpec("web", remote="git@example.org:web.git", branch="develop", host="build-2"),
    )
    shared = config.projects[0]
    assert workspace_path(config, shared, UserId(1)) == workspace_path(config, shared, UserId(2)) == Path("/srv/api")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[project]\n", "not valid TOML"),
        ('title = "x"\n', "lists no project"),
        ('[[project]]\npath = "/srv"\n', 'needs name = "..."'),
        ('[[project]]\nname = "api"\n', "exactly one of path"),
        ('[[project]]\nname = "api"\npath = "/a"\nremote = "git@h:a.git"\n', "exactly one of path"),
        ('[[project]]\nname = "api"\npath = "/a"\ncolour = "red"\n', "unknown keys colour"),
        ('[[project]]\nname = "api"\npath = "/a"\nshared = "yes"\n', "shared must be true or false"),
        ('[[project]]\nname = "api"\nremote = "git@h:a.git"\nshared = true\n', "give its path instead"),
        ('[[project]]\nname = "api"\npath = "/a"\nbranch = "no spaces please"\n', "branch must be"),
        ('[[project]]\nname = "api"\npath = "/a"\nhost = "two words"\n', "host must be a worker host id"),
        ('[[project]]\nname = "api"\npath = "/a"\nhost = 7\n', "host must be a worker host id"),
        ('[[project]]\nname = "api"\npath = "/a"\n[[project]]\nname = "api"\npath = "/b"\n', "used twice"),
    ],
)
def test_a_bad_projects_file_names_the_fix(tmp_path: Path, text: str, says: str) -> None:
    file = tmp_path / "projects.toml"
    file.write_text(text)

    with pytest.raises(ConfigurationError) as raised:
        Config.from_mapping({"PROJECTS_FILE": str(file)})

    assert says in str(raised.value)
    assert str(file) in str(raised.value)


def test_a_missing_projects_file_and_both_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        Config.from_mapping({"PROJECTS_FILE": str(tmp_path / "nope.toml")})
    with pytest.raises(ConfigurationError, match="not both"):
        Config.from_mapping({"PROJECTS": "a=/a", "PROJECTS_FILE": str(tmp_path / "p.toml")})


def test_projects_need_the_bot_api_transport() -> None:
    with pytest.raises(ConfigurationError, match="TRANSPORT=webhook or polling"):
        Config.from_mapping({"PROJECTS": "a=/a", "TRANSPORT": "telethon", "API_ID": "1", "API_HASH": "0" * 32})


def test_a_token_in_a_remote_url_is_a_secret() -> None:
    config = Config.from_mapping({"PROJECTS": "web=https://deploy:tok3n-value@example.org/team/web.git"})

    assert "tok3n-value" in config.secrets()


async def test_doctor_looks_at_each_project_and_contacts_nothing(tmp_path: Path) -> None:
    from tests.gitoracle import init_repo  # noqa: PLC0415 - the git CLI makes the project's source

    init_repo(tmp_path / "api")
    (tmp_path / "notes").mkdir()
    config = Config.from_mapping(
        {
            "PROJECTS": f"api={tmp_path / 'api'};notes={tmp_path / 'notes'};web=https://u:t0ken@example.org/w.git",
            "DATA_DIR": str(tmp_path / "data"),
        }
    )

    found = {d.name: d for d in await doctor(build_container(config))}

    assert found["project api"].ok
    assert "each user works in a clone" in found["project api"].detail
    assert not found["project notes"].ok
    assert "PROJECTS" in (found["project notes"].fix or "")
    assert found["project web"].ok
    assert found["project web"].detail == "cloned on first use from https://example.org/w.git"
    assert "workspace" not in found  # WORKSPACE_DIR is not used, so not checked

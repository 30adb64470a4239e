"""
The shipped deployment files, checked with the real tools that can run here.

Docker and systemd cannot run on these machines (no engine, no systemd as PID 1). What can run, runs: Debian's
`caddy validate` on the Caddyfile, `systemd-analyze verify` on the unit, `shellcheck` on the scripts, and the
container's entrypoint script itself, as root and as the unprivileged service uid, against root-owned
directories. The rest is read the way compose and Docker read it (the compose YAML, the Dockerfile's
instructions) and checked against what the bot needs; docs/adr/0012 says what only a real Docker or systemd
could show.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicecoder.adapters.claude_node import satisfies
from voicecoder.dotenv import read_dotenv

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"
SERVICE_UID = 10001
CLI_PACKAGE_JSON = REPO / ".tools" / "claude" / "node_modules" / "@anthropic-ai" / "claude-code" / "package.json"


def need(command: str) -> str:
    found = shutil.which(command)
    if found is None:
        pytest.skip(reason=f"{command} is not installed (python3 dev.py test installs it from Debian as root)")
    return found


# --- Caddy ---------------------------------------------------------------------------------------


def caddy(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Debian's caddy on the shipped Caddyfile, with its state kept in *tmp_path*."""
    return subprocess.run(
        [need("caddy"), *args, "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestCaddyfile:
    @pytest.mark.parametrize("domain", ["bot.example.org", None], ids=["domain-set", "domain-unset"])
    def test_validates(self, tmp_path: Path, domain: str | None) -> None:
        """
        `caddy validate` accepts the shipped Caddyfile with VOICECODER_DOMAIN set and unset (unset used to read
        as a global options block: "unrecognized global option: @public").
        """
        done = caddy(tmp_path, "validate", **({"VOICECODER_DOMAIN": domain} if domain else {}))

        assert done.returncode == 0, done.stdout + done.stderr
        assert "Valid configuration" in done.stdout + done.stderr

    def test_keeps_metrics_internal_and_proxies_the_rest(self, tmp_path: Path) -> None:
        """
        The adapted config answers /metrics and /readyz with 404 at the proxy and sends everything else (the
        secret webhook path, whatever it is) to the upstream from VOICECODER_UPSTREAM.
        """
        done = caddy(tmp_path, "adapt", VOICECODER_DOMAIN="bot.example.org", VOICECODER_UPSTREAM="127.0.0.1:8080")
        assert done.returncode == 0, done.stderr
        server = json.loads(done.stdout)["apps"]["http"]["servers"]["srv0"]
        route = server["routes"][0]
        inner = route["handle"][0]["routes"]

        assert route["match"] == [{"host": ["bot.example.org"]}]
        assert inner[0]["match"][0]["path"] == ["/metrics", "/metrics/*", "/readyz", "/readyz/*"]
        assert inner[0]["handle"][0] == {"handler": "static_response", "status_code": 404}
        assert "match" not in inner[1]
        assert inner[1]["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:8080"}]


# --- systemd -------------------------------------------------------------------------------------


def unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in (DEPLOY / "voicecoder.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


class TestSystemdUnit:
    def test_verify_is_clean(self, tmp_path: Path) -> None:
        """
        `systemd-analyze verify` finds nothing to complain about (it exits 0 even on unknown keys and bad
        values, so its output must be empty). Only ExecStart's executable is pointed at this checkout's, since
        verify requires it to exist.
        """
        analyze = need("systemd-analyze")
        installed = Path(sys.executable).parent / "voicecoder"
        assert os.access(installed, os.X_OK)
        unit = tmp_path / "voicecoder.service"
        unit.write_text(
            (DEPLOY / "voicecoder.service").read_text().replace("/opt/voicecoder/.venv/bin/voicecoder", str(installed))
        )

        done = subprocess.run(
            [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
        )

        assert done.returncode == 0, done.stderr
        assert done.stdout + done.stderr == ""

    def test_sandbox_leaves_code_and_configuration_read_only(self) -> None:
        """
        The service writes only its state and cache directories (systemd creates and owns them, so a missing
        ~/.claude cannot fail the NAMESPACE step); the code and the env file stay read-only, /home is hidden.
        """
        d = unit_directives()

        assert d["ProtectSystem"] == ["strict"]
        assert d["ProtectHome"] == ["true"]
        assert d["StateDirectory"] == ["voicecoder"]
        assert d["CacheDirectory"] == ["voicecoder"]
        assert "ReadWritePaths" not in d
        assert "EnvironmentFile" not in d
        assert "Environment" in d
        environment = dict(v.partition("=")[::2] for v in d["Environment"])
        assert environment["HOME"] == "/var/lib/voicecoder"
        assert environment["XDG_CACHE_HOME"] == "/var/cache/voicecoder"
        assert d["WorkingDirectory"] == ["/var/lib/voicecoder"]
        assert d["NoNewPrivileges"] == ["true"]

    def test_stop_lets_voicecoder_finish_its_work(self) -> None:
        """
        SIGTERM goes to voicecoder alone (KillMode=mixed), never straight to the Claude processes, and the stop
        timeout covers the dispatcher's grace period and the site's shutdown.
        """
        d = unit_directives()
        dispatcher_grace_s, site_shutdown_s = 10, 10

        assert d["KillMode"] == ["mixed"]
        assert d["KillSignal"] == ["SIGTERM"]
        assert int(d["TimeoutStopSec"][0]) >= 3 * (dispatcher_grace_s + site_shutdown_s)
        assert d["RestartPreventExitStatus"] == ["2"]

    def test_service_and_admin_wrapper_read_the_same_env_file(self) -> None:
        """`voicecoder-admin` runs the CLI with the env file, HOME and cache the unit gives the service."""
        d = unit_directives()
        admin = (DEPLOY / "voicecoder-admin").read_text()

        match = re.fullmatch(r"(\S+) --env-file (\S+) serve", d["ExecStart"][0])
        assert match is not None
        assert f'bin="${{VOICECODER_BIN:-{match.group(1)}}}"' in admin
        assert f'env_file="${{VOICECODER_ENV_FILE:-{match.group(2)}}}"' in admin
        assert 'state="${VOICECODER_STATE:-/var/lib/voicecoder}"' in admin
        assert 'cache="${VOICECODER_CACHE:-/var/cache/voicecoder}"' in admin


# --- shell scripts -------------------------------------------------------------------------------


class TestShellScripts:
    @pytest.mark.parametrize("script", ["docker-entrypoint.sh", "voicecoder-admin"])
    def test_shellcheck(self, script: str) -> None:
        """Every shipped shell script passes shellcheck."""
        shellcheck = need("shellcheck")

        done = subprocess.run(
            [shellcheck, "--severity=style", str(DEPLOY / script)], capture_output=True, text=True, check=False
        )

        assert done.returncode == 0, done.stdout
        assert os.access(DEPLOY / script, os.X_OK)


# --- the container's entrypoint, run for real ----------------------------------------------------


@pytest.fixture(name="box")
def _box() -> Iterator[Path]:
    """A world-traversable directory (the unprivileged uid must reach it), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="voicecoder-entrypoint-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def container_like(box: Path) -> dict[str, str]:
    """The directories the image uses, as root creates them: root-owned, not writable by anyone else."""
    bin_dir = box / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "voicecoder"
    fake.write_text('#!/bin/sh\necho "ran uid=$(id -u) gid=$(id -g) listen=$LISTEN_HOST args=$*"\n')
    fake.chmod(0o755)
    script = box / "voicecoder-entrypoint"
    shutil.copy(ENTRYPOINT, script)
    script.chmod(0o755)
    for name in ("workspace", "data", "home"):
        (box / name).mkdir(mode=0o755)
    (box / "workspace" / "README.md").write_text("created by root\n")
    if os.geteuid() != 0:
        # Not root here: make them read-only instead, which is what a root-owned directory is to uid 10001.
        for name in ("workspace", "data", "home"):
            (box / name).chmod(0o555)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(box / "home"),
        "WORKSPACE_DIR": str(box / "workspace"),
        "DATA_DIR": str(box / "data"),
        "VOICECODER_UID": str(SERVICE_UID),
    }


def run_entrypoint(
    box: Path, env: dict[str, str], *args: str, as_service_uid: bool
) -> subprocess.CompletedProcess[str]:
    command = [str(box / "voicecoder-entrypoint"), *args]
    if as_service_uid and os.geteuid() == 0:
        setpriv = need("setpriv")
        command = [setpriv, f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups", "--", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def owners(box: Path) -> set[int]:
    return {p.lstat().st_uid for name in ("workspace", "data", "home") for p in [box / name, *(box / name).rglob("*")]}


class TestContainerEntrypoint:
    def test_unprivileged_start_on_root_owned_dirs_fails_with_the_fix(self, box: Path) -> None:
        """
        Started as the service uid with root-owned mounts, the container stops before voicecoder runs and says
        which directory is not writable, whose it is, and the three ways to fix it (no restart-loop mystery).
        """
        env = container_like(box)

        done = run_entrypoint(box, env, "serve", as_service_uid=True)

        assert done.returncode == 1
        assert "ran uid=" not in done.stdout
        uid = SERVICE_UID if os.geteuid() == 0 else os.geteuid()
        assert f"{box / 'workspace'} is not writable by uid {uid}" in done.stderr
        assert "docker compose up" in done.stderr
        assert "--user 0" in done.stderr
        assert "sudo chown -R" in done.stderr

    def test_root_start_fixes_ownership_then_drops_privileges(self, box: Path) -> None:
        """
        Started as root (compose's init service, or --user 0), it hands every file to the service uid, creates
        the Claude config and cache directories, and runs voicecoder as that uid, not as root.
        """
        if os.geteuid() != 0:
            pytest.skip(reason="fixing ownership needs root; this run is unprivileged")
        env = container_like(box)

        done = run_entrypoint(box, env, "serve", as_service_uid=False)

        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"ran uid={SERVICE_UID} gid={SERVICE_UID} listen=0.0.0.0 args=serve"
        assert owners(box) == {SERVICE_UID}
        assert (box / "home" / ".claude").is_dir()
        assert (box / "home" / ".cache").is_dir()
        again = run_entrypoint(box, env, "doctor", as_service_uid=True)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"ran uid={SERVICE_UID} gid={SERVICE_UID} listen=0.0.0.0 args=doctor"

    def test_fix_ownership_only_runs_nothing(self, box: Path) -> None:
        """The compose `init` service's mode: fix, report, exit 0, start no bot."""
        if os.geteuid() != 0:
            pytest.skip(reason="fixing ownership needs root; this run is unprivileged")
        env = container_like(box)

        done = run_entrypoint(box, env, "--fix-ownership-only", as_service_uid=False)

        assert done.returncode == 0, done.stderr
        assert "ran uid=" not in done.stdout
        assert f"set to {SERVICE_UID}:{SERVICE_UID}" in done.stderr
        assert owners(box) == {SERVICE_UID}

    def test_loopback_listen_host_is_replaced_inside_the_container(self, box: Path) -> None:
        """
        LISTEN_HOST=127.0.0.1 from a copied .env.example would be unreachable through the port mapping: the
        entrypoint listens on the container's own interfaces instead and says how to stay on the host's loopback.
        """
        env = container_like(box)
        for name in ("workspace", "data", "home"):
            (box / name).chmod(0o777)
        env["LISTEN_HOST"] = "127.0.0.1"

        done = run_entrypoint(box, env, "serve", as_service_uid=True)

        assert done.returncode == 0, done.stderr
        assert "listen=0.0.0.0" in done.stdout
        assert "-p 127.0.0.1:8080:8080" in done.stderr


# --- compose and the Dockerfile, read as Docker reads them ----------------------------------------


@pytest.fixture(name="compose", scope="module")
def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "") for line in logical if (parts := line.split(None, 1))
    ]


class TestCompose:
    def test_only_caddy_is_a_trusted_proxy(self, compose: dict[str, Any]) -> None:
        """
        TRUSTED_PROXIES is Caddy's fixed address on the bot's own network, never 0.0.0.0/0: with the IP
        allow-list on, X-Forwarded-For is believed from Caddy alone.
        """
        services = compose["services"]
        trusted = services["voicecoder"]["environment"]["TRUSTED_PROXIES"].split(",")
        caddy_address = services["caddy"]["networks"]["proxy"]["ipv4_address"]
        subnet = ipaddress.ip_network(compose["networks"]["proxy"]["ipam"]["config"][0]["subnet"])

        assert trusted == [caddy_address]
        assert ipaddress.ip_address(caddy_address) in subnet
        assert services["voicecoder"]["networks"]["proxy"]["ipv4_address"] != caddy_address
        assert all(ipaddress.ip_network(t).num_addresses == 1 for t in trusted)

    def test_bot_port_published_on_loopback_only(self, compose: dict[str, Any]) -> None:
        """The bot's port reaches the host's loopback (for /metrics), never its public interfaces."""
        ports = compose["services"]["voicecoder"]["ports"]

        assert ports
        assert all(str(p).startswith("127.0.0.1:") for p in ports)
        assert compose["services"]["voicecoder"]["environment"]["LISTEN_HOST"] == "0.0.0.0"

    def test_local_speech_engine_is_built_in(self, compose: dict[str, Any]) -> None:
        """.env.example defaults to STT_PROVIDER=local, so the compose build carries the embedded model."""
        assert read_dotenv(REPO / ".env.example")["STT_PROVIDER"] == "local"
        for name in ("init", "voicecoder"):
            assert compose["services"][name]["build"]["args"]["LOCAL_STT"] == "1"

    def test_init_fixes_what_the_bot_mounts(self, compose: dict[str, Any]) -> None:
        """
        A one-shot root `init` service fixes ownership of exactly the bot's mounts, and the bot starts only
        after it succeeded, as the service uid (so `docker compose exec` runs as that uid too).
        """
        init, bot = compose["services"]["init"], compose["services"]["voicecoder"]

        assert init["user"] == "0:0"
        assert init["command"] == ["--fix-ownership-only"]
        assert init["volumes"] == bot["volumes"]
        assert init["restart"] == "no"
        assert bot["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert bot["user"] == "${VOICECODER_UID:-10001}:${VOICECODER_GID:-10001}"
        for key in ("WORKSPACE_DIR", "DATA_DIR", "CLAUDE_CONFIG_DIR"):
            assert init["environment"][key] == bot["environment"][key]
        mounted = {v.split(":")[1] for v in bot["volumes"]}
        assert {bot["environment"]["WORKSPACE_DIR"], bot["environment"]["DATA_DIR"]} <= mounted
        assert bot["environment"]["CLAUDE_CONFIG_DIR"] in mounted

    def test_domain_is_required_where_it_is_used(self, compose: dict[str, Any]) -> None:
        """An unset VOICECODER_DOMAIN stops `docker compose up` with a message instead of PUBLIC_URL=https://."""
        bot, caddy = compose["services"]["voicecoder"], compose["services"]["caddy"]

        assert bot["environment"]["PUBLIC_URL"].startswith("https://${VOICECODER_DOMAIN:?")
        assert caddy["environment"]["VOICECODER_DOMAIN"].startswith("${VOICECODER_DOMAIN:?")
        assert caddy["environment"]["VOICECODER_UPSTREAM"] == "voicecoder:8080"
        assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]

    def test_stop_grace_covers_the_bots_own(self, compose: dict[str, Any]) -> None:
        """Docker waits long enough for the dispatcher's grace period and the site's shutdown before SIGKILL."""
        grace = compose["services"]["voicecoder"]["stop_grace_period"]

        assert grace.endswith("s")
        assert int(grace[:-1]) >= 30


class TestDockerfile:
    def test_node_satisfies_the_pinned_cli(self) -> None:
        """
        The Node major the image copies in satisfies the pinned CLI's engines.node, read from the real
        package.json of the version in requirements/claude-code-version.txt; npm enforces it at build time.
        """
        if not CLI_PACKAGE_JSON.exists():
            pytest.skip(reason="the pinned Claude Code CLI is not installed (python3 dev.py test installs it)")
        package = json.loads(CLI_PACKAGE_JSON.read_text())
        pinned = (REPO / "requirements" / "claude-code-version.txt").read_text().strip()
        instructions = dockerfile()
        args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in instructions if k == "ARG" and "=" in v}
        froms = [v for k, v in instructions if k == "FROM"]
        runs = " ".join(v for k, v in instructions if k == "RUN")

        assert package["version"] == pinned
        assert satisfies((int(args["NODE_MAJOR"]), 0, 0), package["engines"]["node"])
        assert froms[0] == "node:${NODE_MAJOR}-bookworm-slim AS node"
        assert "--engine-strict" in runs
        assert "apt-get install" in runs
        assert "nodejs" not in runs

    def test_runs_as_the_service_user_through_the_entrypoint(self) -> None:
        """
        The image runs as uid 10001 by default, through tini and the entrypoint script, with the local speech
        model built in by default and a health check on /healthz.
        """
        instructions = dockerfile()
        args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in instructions if k == "ARG" and "=" in v}
        last = dict(instructions)
        copies = [v for k, v in instructions if k == "COPY"]
        runs = " ".join(v for k, v in instructions if k == "RUN")

        assert args["LOCAL_STT"] == "1"
        assert last["USER"] == "voicecoder"
        assert f"--uid {SERVICE_UID}" in runs
        assert json.loads(last["ENTRYPOINT"]) == ["tini", "--", "voicecoder-entrypoint"]
        assert json.loads(last["CMD"]) == ["serve"]
        assert "deploy/docker-entrypoint.sh /usr/local/bin/voicecoder-entrypoint" in copies
        assert "/healthz" in last["HEALTHCHECK"]
        assert "CLAUDE_CONFIG_DIR=/home/voicecoder/.claude" in " ".join(v for k, v in instructions if k == "ENV")


class TestIgnoreFiles:
    def test_dockerignore_keeps_secrets_and_state_out(self) -> None:
        """The build context never carries .env, the workspace, the data dir, the venv or the CLI download."""
        patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}

        assert {".env", "*.env", "workspace/", "data/", ".venv/", ".tools/", ".git"} <= patterns

    def test_gitignore_keeps_secrets_and_state_out(self) -> None:
        """`git status` never offers .env or the bot's workspace for committing."""
        done = subprocess.run(
            ["git", "check-ignore", "--no-index", ".env", "workspace/x.py", "data/state.sqlite3"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )

        assert done.stdout.split() == [".env", "workspace/x.py", "data/state.sqlite3"]
        assert stat.S_ISREG((REPO / ".env.example").stat().st_mode)

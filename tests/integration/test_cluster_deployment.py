"""The cluster's deployment files: compose as compose reads it, Debian's caddy on the Caddyfile, the image's extra."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.cluster.yml"
CADDYFILE = REPO / "deploy" / "Caddyfile.cluster"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return dict(loaded["services"])


def caddy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("caddy")
    if found is None:
        pytest.skip(reason="caddy is not installed (python3 dev.py test installs it from Debian as root)")
    return subprocess.run(
        [found, *args, "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "VOICECODER_DOMAIN": "bot.example.org",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_caddyfile_balances_every_request_over_both_replicas(tmp_path: Path) -> None:
    assert caddy(tmp_path, "validate").returncode == 0
    adapted = caddy(tmp_path, "adapt")
    config = json.loads(adapted.stdout)
    route = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["routes"]
    proxy = next(h for r in route for h in r["handle"] if h["handler"] == "reverse_proxy")
    internal = next(r for r in route if r["handle"][0]["handler"] == "static_response")

    assert [u["dial"] for u in proxy["upstreams"]] == ["ingress-1:8080", "ingress-2:8080"]
    assert proxy["load_balancing"]["selection_policy"]["policy"] == "round_robin"
    assert proxy["health_checks"]["active"]["uri"] == "/readyz"
    assert "/readyz" in internal["match"][0]["path"]


def test_the_compose_file_runs_postgres_two_ingresses_two_workers_and_caddy(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "ingress-1", "ingress-2", "worker-1", "worker-2", "caddy"}
    for name in ("ingress-1", "ingress-2"):
        assert services[name]["command"] == ["serve", "--role", "ingress"]
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://voicecoder:${POSTGRES_PASSWORD:?")
        assert (
            services[name]["environment"]["TRUSTED_PROXIES"] == services["caddy"]["networks"]["proxy"]["ipv4_address"]
        )
        assert "volumes" not in services[name]  # stateless
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"][:3] == ["serve", "--role", "worker"]
        assert services[name]["build"]["args"]["POSTGRES"] == "1"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Both workers are on this host: the same tree and DATA_DIR, so either may own the workspace.
    assert services["worker-1"]["volumes"] == services["worker-2"]["volumes"]
    # ... and one PID namespace, so a new owner can find and kill a paused one that holds the tree (ADR 0030).
    assert services["worker-1"]["pid"] == services["worker-2"]["pid"] == "host"
    assert services["caddy"]["volumes"][0].startswith("./deploy/Caddyfile.cluster:")


def test_the_image_can_carry_the_postgres_extra() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG POSTGRES=0" in dockerfile
    assert 'pip install --no-cache-dir ".[postgres]"' in dockerfile

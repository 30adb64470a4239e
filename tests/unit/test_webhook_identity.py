from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from voicecoder.bootstrap.webhook_identity import identity_path, resolve_webhook_identity
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError

PATH = "/telegram/configured-path-0123"
SECRET = "configured-secret_0123"


def config(tmp_path: Path, **env: str) -> Config:
    return Config.from_mapping({"DATA_DIR": str(tmp_path / "data"), **env})


class TestResolveWebhookIdentity:
    def test_configured_values_are_never_replaced(self, tmp_path: Path) -> None:
        """WEBHOOK_PATH and WEBHOOK_SECRET from the configuration win over a stored identity; nothing is written."""
        stored = identity_path(config(tmp_path))
        stored.parent.mkdir(parents=True)
        stored.write_text(json.dumps({"path": "/telegram/stored", "secret": "stored-secret"}))

        resolved = resolve_webhook_identity(config(tmp_path, WEBHOOK_PATH=PATH, WEBHOOK_SECRET=SECRET), create=True)

        assert (resolved.webhook_path, resolved.webhook_secret) == (PATH, SECRET)
        assert json.loads(stored.read_text()) == {"path": "/telegram/stored", "secret": "stored-secret"}

    def test_dotenv_values_count_as_configured(self, tmp_path: Path) -> None:
        """Values that came only from the env file (nothing exported) are used as is."""
        dotenv = tmp_path / ".env"
        dotenv.write_text(f"DATA_DIR={tmp_path / 'data'}\nWEBHOOK_PATH={PATH}\nWEBHOOK_SECRET={SECRET}\n")

        resolved = resolve_webhook_identity(Config.from_env({}, dotenv=dotenv, required=True), create=True)

        assert (resolved.webhook_path, resolved.webhook_secret) == (PATH, SECRET)
        assert not (tmp_path / "data").exists()

    def test_generated_once_then_reused(self, tmp_path: Path) -> None:
        """Unset values are generated once, stored 0600, and the next resolution returns the same ones."""
        first = resolve_webhook_identity(config(tmp_path), create=True)
        second = resolve_webhook_identity(config(tmp_path), create=True)
        looked = resolve_webhook_identity(config(tmp_path), create=False)

        assert first.webhook_path is not None
        assert first.webhook_path.startswith("/telegram/")
        assert (first.webhook_path, first.webhook_secret) == (second.webhook_path, second.webhook_secret)
        assert (looked.webhook_path, looked.webhook_secret) == (first.webhook_path, first.webhook_secret)
        assert stat.S_IMODE(identity_path(first).stat().st_mode) == 0o600

    def test_only_the_missing_half_is_generated(self, tmp_path: Path) -> None:
        """A configured path with no secret: the secret is generated and stored, the path is not."""
        resolved = resolve_webhook_identity(config(tmp_path, WEBHOOK_PATH=PATH), create=True)

        assert resolved.webhook_path == PATH
        assert json.loads(identity_path(resolved).read_text()) == {"secret": resolved.webhook_secret}

    def test_looking_writes_nothing(self, tmp_path: Path) -> None:
        """Without create (doctor, webhook info) nothing is generated and no file or directory appears."""
        resolved = resolve_webhook_identity(config(tmp_path), create=False)

        assert (resolved.webhook_path, resolved.webhook_secret) == (None, None)
        assert list(tmp_path.iterdir()) == []

    def test_damaged_file_is_an_error_not_a_new_identity(self, tmp_path: Path) -> None:
        """A damaged webhook.json is reported with the fix instead of silently replaced."""
        stored = identity_path(config(tmp_path))
        stored.parent.mkdir(parents=True)
        stored.write_text("{not json")

        with pytest.raises(ConfigurationError, match=r"is damaged\. Delete it"):
            resolve_webhook_identity(config(tmp_path), create=True)
        assert stored.read_text() == "{not json"

    def test_unreadable_file_names_the_owner_problem(self, tmp_path: Path) -> None:
        """
        A webhook.json this user cannot read (created by `webhook set` run as another user) is an error that
        says to run as the service user, never a reason to generate a different identity.
        """
        box = Path(tempfile.mkdtemp(prefix="voicecoder-identity-"))
        try:
            box.chmod(0o755)
            (box / "data").mkdir(mode=0o755)
            stored = box / "data" / "webhook.json"
            stored.write_text(json.dumps({"path": "/telegram/theirs", "secret": "their-secret"}))
            stored.chmod(0o600 if os.geteuid() == 0 else 0)
            code = (
                "import sys; from voicecoder.config import Config; "
                "from voicecoder.bootstrap.webhook_identity import resolve_webhook_identity as r\n"
                f"try: r(Config.from_mapping({{'DATA_DIR': {str(box / 'data')!r}}}), create=True)\n"
                "except Exception as e: print(e); sys.exit(3)"
            )
            prefix = []
            if os.geteuid() == 0:
                setpriv = shutil.which("setpriv")
                if setpriv is None:
                    pytest.skip(reason="setpriv (util-linux) is needed to run as another user")
                prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

            done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, check=False)

            assert done.returncode == 3, done.stderr
            assert "cannot be read (Permission denied)" in done.stdout
            assert "same user as the service" in done.stdout
            assert json.loads(stored.read_text()) == {"path": "/telegram/theirs", "secret": "their-secret"}
        finally:
            shutil.rmtree(box, ignore_errors=True)

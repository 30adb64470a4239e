"""
Generate the speech-to-text corpora of `bench/stt.py`: synthetic voice notes of coding requests.

Four sets, never mixed:

* ``tuning``: the clips recognition settings may be tuned on (50 requests, 10 voices);
* ``tuning2``: more clips to tune on (72 new requests, its own project, 12 voices: six of the tuning set's and six
  new variants of the held-out families that no held-out set uses; the generator refuses a held-out voice in a
  tuning set), because 50 clips let a one-word difference pass for a gain (ADR 0018, follow-up 7);
* ``heldout``: the clips the benchmark reports on, kept apart from any tuning (50 requests, 10 voices
  and variants not used for tuning, 130-190 words per minute);
* ``heldout2``: a second held-apart set written after the first had been reported on many times, from the same
  recipe (50 new requests, its own project, 10 voices and variants of the same four families none of which the
  tuning set uses, the same speeds), so there is a set nobody has seen the errors of: the situation of an outside
  checker with voices and sentences of its own.

Each set has its own synthetic project (file names and function names the requests talk about, plus
distractors) that `bench/stt.py` materialises as a git workspace, so hints come from the real
`WorkspaceVocabulary` scan.

espeak-ng (Debian package ``espeak-ng``) speaks each request into a 22.05 kHz WAV; PyAV (shipped with
faster-whisper) resamples it to 48 kHz and encodes Ogg/Opus mono 32 kbit/s VoIP, like a Telegram voice
note. espeak-ng is installed with apt-get when it is missing and this runs as root.

``--contract-clips`` instead (re)writes the clips the `TranscriberContract` ships beside the project's
fixtures (``src/voicecoder/testing/data/voice``): a request with a made-up word that only a hint makes
recoverable, the "git log" regression clip, and a gzipped silent note longer than the 600 s limit.

Run: ``.venv/bin/python bench/make_stt_corpus.py [--out bench/stt_corpus] [--contract-clips]``. Other espeak-ng or
libopus versions give other bytes: the committed clips are the reference, regenerate only on purpose.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "stt_corpus"

#: Voices the tuning set uses; the held-out set uses none of them.
TUNING_VOICES = (
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-us+m1",
    "en-gb-x-gbcwmd",
    "en-us+f1",
    "en-gb-scotland+f2",
    "en-gb-x-gbclan+m4",
    "en-gb-x-gbcwmd+klatt2",
    "en-us+m6",
)
HELDOUT_VOICES = (
    "en-us+f3",
    "en-us+m3",
    "en-gb",
    "en-gb+f2",
    "en-gb-x-rp",
    "en-gb-x-rp+m5",
    "en-029",
    "en-029+f4",
    "en-us+klatt4",
    "en-gb+m7",
)
SPEEDS = (130, 145, 160, 175, 190)

TUNING_REQUESTS = (
    "rename the method load data to read records",
    "add logging to the function process batch in worker dot py",
    "run the linter on api dot py",
    "show me the git log",
    "commit everything with the message fix typo",
    "create a branch named feature login",
    "write tests for the function parse args",
    "change the default port in server dot py",
    "push the current branch to origin",
    "install numpy with pip",
    "add a readme section about configuration",
    "delete the function old handler from routes dot py",
    "run npm run build",
    "fix the import error in main dot py",
    "show the diff for the last commit",
    "add a docstring to the class user repository",
    "update requirements dot txt with flask",
    "check the git status",
    "merge the develop branch",
    "make the function send request async",
    "add a unit test for calculate tax",
    "open the dockerfile and use python slim",
    "revert the changes in config dot json",
    "rename the variable tmp to buffer in cache dot py",
    "run pytest with verbose output",
    "add a retry decorator to fetch page in crawler dot py",
    "show the git diff for the staged files",
    "create a pull request for this branch",
    "run mypy on the whole package",
    "rename the module helpers to common",
    "delete the branch feature signup",
    "write a docstring for parse header",
    "move the tests into the tests folder",
    "update the version in setup dot py",
    "install the dev dependencies with pip",
    "check out the main branch and pull",
    "add caching to get profile in service dot py",
    "fix the typo in the readme",
    "log the error in handle request",
    "make load config return a dictionary",
    "run the unit tests for the parser",
    "add a new endpoint to routes dot py",
    "remove the debug print from worker dot py",
    "squash the last three commits",
    "open package dot json and add a test script",
    "cherry pick the fix from develop",
    "add a type hint to the return value of read file",
    "split the function process batch into two",
    "rename the variable data to payload in api dot py",
    "show me which files changed since yesterday",
)
TUNING_WORKSPACE: dict[str, Any] = {
    "files": [
        "worker.py",
        "api.py",
        "server.py",
        "routes.py",
        "main.py",
        "cache.py",
        "config.json",
        "requirements.txt",
        "Dockerfile",
        "README.md",
        "package.json",
        "tests/test_tax.py",
        "docs/index.md",
        "scripts/deploy.sh",
        "crawler.py",
        "helpers.py",
        "service.py",
        "setup.py",
        "parser.py",
        "tests/test_parser.py",
    ],
    "symbols": {
        "crawler.py": ["fetch_page", "Crawler"],
        "helpers.py": ["read_file", "load_config"],
        "service.py": ["get_profile", "handle_request"],
        "parser.py": ["parse_header", "Parser"],
        "worker.py": ["process_batch", "load_data", "read_records", "send_request"],
        "routes.py": ["old_handler", "new_handler", "index"],
        "main.py": ["main", "parse_args"],
        "api.py": ["calculate_tax", "UserRepository", "get_invoice"],
        "cache.py": ["get", "put", "evict"],
    },
    "branches": ["main", "develop", "feature/login", "feature/signup"],
}

HELDOUT_REQUESTS = (
    "rename the function parse config to load settings",
    "open utils dot py and add a docstring to format date",
    "run pytest on test models dot py",
    "add type hints to fetch orders in models dot py",
    "show me the git log for app dot py",
    "commit the changes to config dot yaml",
    "create a new branch called fix invoice totals",
    "merge the feature branch into main",
    "write a unit test for validate token",
    "delete the unused import in views dot py",
    "move compute total from views dot py into utils dot py",
    "add retry request to the http client with three attempts",
    "update the readme with the install steps",
    "pin the requests version in requirements dot txt",
    "run npm install and then npm test",
    "fix the failing test in test api dot py",
    "add a return type to send email",
    "show the diff of settings dot py",
    "check out the previous commit of cli dot py",
    "rename the class order service to order manager",
    "replace print with logging in render page",
    "refactor get user to use the cache",
    "add an index to the orders table in schema dot sql",
    "install pytest with pip and run the tests",
    "make create invoice raise an error when the amount is negative",
    "add a discount parameter to apply discount",
    "stash my changes and pull the latest main",
    "revert the last commit on this branch",
    "add a docker compose file with a postgres service",
    "update the python version in the dockerfile",
    "read csv should skip empty lines",
    "export report should write a json file",
    "check stock returns false when the quantity is zero",
    "add a test for update price with a negative value",
    "normalize email should lowercase the domain",
    "hash password must use a random salt",
    "add the build folder to dot gitignore",
    "bump the version in pyproject dot toml",
    "add a changelog entry for the new export feature",
    "lint the project with ruff and fix the warnings",
    "rebase this branch on top of main",
    "format the code with black",
    "open index dot html and fix the broken link",
    "move the colors from styles dot css into variables",
    "add error handling to main dot js",
    "list the branches that are already merged",
    "tag this commit as version two",
    "show the stack trace of the last failing test",
    "split models dot py into two modules",
    "add a make target that runs the linter",
)
HELDOUT_WORKSPACE: dict[str, Any] = {
    "files": [
        "app.py",
        "utils.py",
        "models.py",
        "views.py",
        "settings.py",
        "cli.py",
        "config.yaml",
        "schema.sql",
        "requirements.txt",
        "pyproject.toml",
        "Dockerfile",
        "Makefile",
        "README.md",
        "CHANGELOG.md",
        ".gitignore",
        "docker-compose.yml",
        "tests/test_api.py",
        "tests/test_models.py",
        "web/index.html",
        "web/styles.css",
        "web/main.js",
        "docs/architecture.md",
        "scripts/backup.sh",
    ],
    "symbols": {
        "app.py": ["create_app", "parse_config", "load_settings"],
        "utils.py": ["format_date", "retry_request", "read_csv", "normalize_email", "hash_password"],
        "models.py": ["fetch_orders", "get_user", "OrderService", "create_invoice", "InvoiceRepository"],
        "views.py": ["compute_total", "render_page", "apply_discount", "export_report"],
        "settings.py": ["validate_token", "send_email"],
        "cli.py": ["check_stock", "update_price", "StockChecker", "main"],
    },
    "branches": ["main", "feature/export", "fix/invoice-totals"],
}


#: Voices of the second held-out set: none is a tuning voice; the same families as the first held-out set.
HELDOUT2_VOICES = (
    "en-us+f2",
    "en-us+m4",
    "en-gb+f4",
    "en-gb+m2",
    "en-gb-x-rp+f3",
    "en-gb-x-rp+m1",
    "en-029+m3",
    "en-029+f1",
    "en-us+klatt3",
    "en-gb+m6",
)
HELDOUT2_REQUESTS = (
    "rename the function run jobs to run pending jobs",
    "add a timeout to connect in db dot py",
    "run pytest on test inventory dot py",
    "show me the git blame for scheduler dot py",
    "commit the staged changes with the message update schema",
    "create a branch called feature export",
    "write a test for the function stock level",
    "change the log level in settings dot toml",
    "push the staging branch to origin",
    "install requests with pip",
    "add a section about backups to the readme",
    "delete the function close pool from db dot py",
    "run make lint",
    "fix the syntax error in report dot py",
    "show the diff between main and staging",
    "add a docstring to the class warehouse",
    "add pandas to pyproject dot toml",
    "stash my changes and switch to main",
    "rebase this branch on main",
    "make the function send invoice retry twice",
    "add a unit test for verify signature",
    "update the changelog for the new release",
    "revert the last commit in webhooks dot py",
    "rename the variable count to total in metrics dot py",
    "run the tests with coverage",
    "add input validation to add item in inventory dot py",
    "show the git log for the last week",
    "open a pull request against staging",
    "run black on the whole project",
    "rename the class export job to export task",
    "delete the branch bugfix timezone",
    "write a docstring for render template",
    "move build report into its own module",
    "set the version to one point two in pyproject dot toml",
    "install the test dependencies with pip",
    "check out the staging branch and pull",
    "add logging to handle event in webhooks dot py",
    "fix the broken link in the changelog",
    "raise an error in migrate when the table is missing",
    "make flush counters run every minute",
    "run the integration tests for the scheduler",
    "add a new column to schema dot sql",
    "remove the unused imports from exporter dot py",
    "tag the release commit as stable",
    "open app dot js and fix the click handler",
    "cherry pick the timezone fix onto main",
    "add a return type to next run",
    "split the function build report into smaller parts",
    "rename the argument path to target in export csv",
    "list the files that changed today",
)
HELDOUT2_WORKSPACE: dict[str, Any] = {
    "files": [
        "scheduler.py",
        "inventory.py",
        "emailer.py",
        "db.py",
        "metrics.py",
        "report.py",
        "exporter.py",
        "webhooks.py",
        "settings.toml",
        "pyproject.toml",
        "schema.sql",
        "app.js",
        "Makefile",
        "CHANGELOG.md",
        "README.md",
        ".gitignore",
        "tests/test_inventory.py",
        "tests/test_scheduler.py",
        "docs/setup.md",
        "scripts/backup.sh",
    ],
    "symbols": {
        "scheduler.py": ["run_jobs", "next_run", "Scheduler"],
        "inventory.py": ["add_item", "remove_item", "stock_level", "Warehouse"],
        "emailer.py": ["send_invoice", "render_template"],
        "db.py": ["connect", "migrate", "close_pool"],
        "metrics.py": ["record_latency", "flush_counters"],
        "report.py": ["build_report", "export_csv"],
        "exporter.py": ["to_json", "ExportJob"],
        "webhooks.py": ["verify_signature", "handle_event"],
    },
    "branches": ["main", "staging", "feature/export", "bugfix/timezone"],
}
#: Voices of the second tuning set: six of the tuning set's, and six new variants of the held-out sets'
#: families that no held-out set uses (so tuning hears female and Caribbean variants too, never a held-out voice).
TUNING2_VOICES = (
    "en-us+f4",
    "en-us",
    "en-gb+m3",
    "en-gb-scotland",
    "en-gb-x-rp+f4",
    "en-gb-x-gbclan+m4",
    "en-029+m1",
    "en-us+f1",
    "en-029+f2",
    "en-gb-x-gbcwmd",
    "en-us+klatt5",
    "en-us+m6",
)
TUNING2_REQUESTS = (
    "rename the function charge card to capture payment",
    "add a docstring to refund payment in billing dot py",
    "run pytest on test ledger dot py",
    "show me the git log for auth dot py",
    "commit the fix with the message handle empty cart",
    "create a branch called feature refunds",
    "write a unit test for check password",
    "change the retry limit in settings dot yaml",
    "push the release branch to origin",
    "install redis with pip",
    "add a usage section to the readme",
    "delete the function purge sessions from tasks dot py",
    "run make test",
    "fix the attribute error in storage dot py",
    "show the diff between main and release",
    "add a docstring to the class ledger",
    "add celery to requirements dot txt",
    "stash my work and check out release",
    "rebase the feature branch onto main",
    "make the function send sms async",
    "add a unit test for post entry",
    "update the changelog with the refund fix",
    "revert the last commit in notifier dot py",
    "rename the variable amount to total cents in billing dot py",
    "run the tests with the verbose flag",
    "add input validation to upload blob in storage dot py",
    "show the git log since monday",
    "open a pull request for the refund feature",
    "run ruff on the whole repo",
    "rename the class token store to session store",
    "delete the branch hotfix login",
    "write a docstring for build index",
    "move notify admins into its own module",
    "set the version to two point one in pyproject dot toml",
    "install the docs dependencies with pip",
    "check out the feature branch and merge main",
    "add logging to sync accounts in tasks dot py",
    "fix the failing assertion in test billing dot py",
    "raise a value error in post entry when the amount is zero",
    "make seed data create ten users",
    "run the end to end tests for checkout",
    "add an index to the users table in the migration",
    "remove the unused variable from search dot py",
    "tag the current commit as beta",
    "open app dot css and fix the button color",
    "cherry pick the login fix onto release",
    "add a return type to login user",
    "split the function charge card into two functions",
    "rename the argument key to bucket name in delete blob",
    "list the commits on this branch",
    "show me the git status",
    "add a test that refund payment rejects negative amounts",
    "replace the print calls with logging in manage dot py",
    "make the bucket client use a connection pool",
    "run mypy on billing dot py",
    "amend the last commit message",
    "add a type hint to the return value of query products",
    "fix the flaky test in test auth dot py",
    "add a health check endpoint to the flask app",
    "format billing dot py with black",
    "update the base image in the dockerfile",
    "show the stack trace for the failed job",
    "move the email template into the templates folder",
    "create user should hash the password",
    "notify admins must not send duplicate messages",
    "add pagination to query products",
    "rename ledger dot py to accounts dot py",
    "write a migration that adds an email column",
    "pull the latest changes and run the tests",
    "add a retry with backoff to send sms",
    "undo my local changes to auth dot py",
    "squash the fixup commits before merging",
)
TUNING2_WORKSPACE: dict[str, Any] = {
    "files": [
        "billing.py",
        "auth.py",
        "ledger.py",
        "notifier.py",
        "storage.py",
        "tasks.py",
        "search.py",
        "manage.py",
        "settings.yaml",
        "requirements.txt",
        "pyproject.toml",
        "Dockerfile",
        "Makefile",
        "CHANGELOG.md",
        "README.md",
        "static/app.css",
        "templates/email.html",
        "tests/test_ledger.py",
        "tests/test_billing.py",
        "tests/test_auth.py",
    ],
    "symbols": {
        "billing.py": ["charge_card", "refund_payment", "Invoice"],
        "auth.py": ["login_user", "check_password", "TokenStore"],
        "ledger.py": ["post_entry", "balance_for", "Ledger"],
        "notifier.py": ["send_sms", "notify_admins"],
        "storage.py": ["upload_blob", "delete_blob", "BucketClient"],
        "tasks.py": ["sync_accounts", "purge_sessions"],
        "search.py": ["build_index", "query_products"],
        "manage.py": ["create_user", "seed_data"],
    },
    "branches": ["main", "release", "feature/refunds", "hotfix/login"],
}
#: The sets recognition settings may be tuned on (`bench/stt_ab.py`; `bench/stt.py --set tuning-all`).
TUNING_SETS = ("tuning", "tuning2")
#: name -> (requests, voices, workspace), in the order they are written.
SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]] = {
    "tuning": (TUNING_REQUESTS, TUNING_VOICES, TUNING_WORKSPACE),
    "heldout": (HELDOUT_REQUESTS, HELDOUT_VOICES, HELDOUT_WORKSPACE),
    "heldout2": (HELDOUT2_REQUESTS, HELDOUT2_VOICES, HELDOUT2_WORKSPACE),
    "tuning2": (TUNING2_REQUESTS, TUNING2_VOICES, TUNING2_WORKSPACE),
}


def check_apart() -> None:
    """Exit unless no tuning set shares a voice with a held-out set and no two sets share a request."""
    tuning_voices = {v for name in TUNING_SETS for v in SETS[name][1]}
    heldout_voices = {v for name, (_, voices, _) in SETS.items() if name not in TUNING_SETS for v in voices}
    for name, (requests, voices, _) in SETS.items():
        if len(set(requests)) != len(requests):
            sys.exit(f"the {name} set repeats a request")
        if name in TUNING_SETS and (shared := set(voices) & heldout_voices):
            sys.exit(f"the {name} set must not use a held-out voice: {', '.join(sorted(shared))}")
        if name not in TUNING_SETS and (shared := set(voices) & tuning_voices):
            sys.exit(f"the {name} set must not use a tuning voice: {', '.join(sorted(shared))}")
        for other, (other_requests, _, _) in SETS.items():
            if other < name and set(requests) & set(other_requests):
                sys.exit(f"the {other} and {name} sets must not share requests")


def ensure_espeak() -> str:
    """The espeak-ng binary, installed from Debian's packages when missing (as root, best effort)."""
    found = shutil.which("espeak-ng")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        quiet = {"DEBIAN_FRONTEND": "noninteractive", **os.environ}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=quiet, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "espeak-ng"],
            check=False,
            env=quiet,
            stdout=subprocess.DEVNULL,
        )
    found = shutil.which("espeak-ng")
    if not found:
        sys.exit("espeak-ng is missing: install the Debian package espeak-ng (apt-get install espeak-ng).")
    return found


def speak(espeak: str, voice: str, speed: int, text: str) -> tuple[bytes, int]:
    """16-bit mono PCM of *text* and its sample rate."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "speech.wav"
        subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(target), text], check=True)
        with wave.open(str(target), "rb") as reader:
            return reader.readframes(reader.getnframes()), reader.getframerate()


def encode_opus(pcm: bytes, rate: int) -> tuple[bytes, float]:
    """Ogg/Opus, mono 48 kHz, 32 kbit/s, VoIP tuning (a Telegram voice note) and the duration in seconds."""
    import av  # noqa: PLC0415 - comes with faster-whisper
    import numpy as np  # noqa: PLC0415

    samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000, options={"application": "voip"})
        stream.bit_rate = 32_000
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return out_buffer.getvalue(), samples.shape[1] / rate


def slug(text: str) -> str:
    return "_".join(text.split()[:4])


def build_set(
    espeak: str, out: Path, name: str, requests: tuple[str, ...], voices: tuple[str, ...], workspace: dict[str, Any]
) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    clips: list[dict[str, Any]] = []
    for index, text in enumerate(requests):
        voice = voices[index % len(voices)]
        speed = SPEEDS[(index // len(voices) + index) % len(SPEEDS)]
        pcm, rate = speak(espeak, voice, speed, text)
        data, duration = encode_opus(pcm, rate)
        file = f"{index + 1:02d}_{slug(text)}.ogg"
        (folder / file).write_bytes(data)
        clips.append(
            {
                "file": file,
                "text": text,
                "voice": voice,
                "wpm": speed,
                "duration_s": round(duration, 3),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    version = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    import av  # noqa: PLC0415

    meta = {
        "set": name,
        "description": (
            "Tuning clips: recognition settings may be tuned on these."
            if name in TUNING_SETS
            else "Held-out clips: reported by bench/stt.py, never used to tune anything; do not read them."
        ),
        "generator": {
            "script": "bench/make_stt_corpus.py",
            "espeak-ng": version,
            "pyav": av.__version__,
            "encoding": "Ogg/Opus mono 48 kHz 32 kbit/s application=voip (PyAV libopus)",
        },
        "voices": sorted(set(voices)),
        "workspace": workspace,
        "clips": clips,
    }
    (folder / "transcripts.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    total = sum(c["bytes"] for c in clips)
    print(f"{name}: {len(clips)} clips, {len(set(voices))} voices, {total / 1024:.0f} KiB in {folder}")


CONTRACT_DATA = HERE.parent / "src" / "voicecoder" / "testing" / "data" / "voice"
#: (file, text): spoken by en-us at 150 wpm like the project's fixtures.
CONTRACT_SPEECH = (
    ("hint_quillmesh.ogg", "deploy the quillmesh service to staging"),
    ("git_log.ogg", "show me the git log"),
)
TOO_LONG_S = 605


def silent_note(seconds: int) -> bytes:
    """*seconds* of digital silence as Ogg/Opus (it compresses to a few KB with gzip)."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000, options={"application": "voip", "frame_duration": "120"})
        stream.bit_rate = 6_000
        stream.layout = "mono"
        for start in range(0, seconds, 10):
            chunk = np.zeros((1, 48_000 * min(10, seconds - start)), dtype=np.int16)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = 48_000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def contract_clips(espeak: str) -> None:
    import gzip  # noqa: PLC0415

    for file, text in CONTRACT_SPEECH:
        pcm, rate = speak(espeak, "en-us", 150, text)
        data, duration = encode_opus(pcm, rate)
        (CONTRACT_DATA / file).write_bytes(data)
        print(f"{file}: {duration:.3f} s, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    data = silent_note(TOO_LONG_S)
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    (CONTRACT_DATA / f"silence_{TOO_LONG_S}s.ogg.gz").write_bytes(packed)
    print(f"silence_{TOO_LONG_S}s.ogg.gz: {len(data)} bytes, {len(packed)} gzipped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--contract-clips", action="store_true", help="write the contract's extra clips instead")
    parser.add_argument("--only", choices=tuple(SETS), help="write only this set")
    args = parser.parse_args(argv)
    espeak = ensure_espeak()
    if args.contract_clips:
        contract_clips(espeak)
        return 0
    check_apart()
    for name, (requests, voices, workspace) in SETS.items():
        if args.only in {None, name}:
            build_set(espeak, args.out, name, requests, voices, workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())

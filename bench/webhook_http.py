"""
The webhook's HTTP layer alone, A/B: CPU per request of aiohttp's ``web.Application`` router against ``Routes``.

One server process, pinned to the bot's core, serves the same :class:`WebhookIngress` handler (checks, body read,
parse, route; the inbox is an in-memory set, so only the HTTP layer differs) on three ports: ``router`` (the way
the webhook was served up to ADR 0033: ``web.Application`` + ``AppRunner``, the same four routes) and ``routes``
(:mod:`voicecoder.adapters.telegram.http_server`, what ``serve`` uses), and as a floor ``bare``: ``Routes`` with a
handler that only reads the body and answers 200 (what aiohttp itself costs per request). wrk, pinned to the other
core, loads each for a short slice, in turn, so a busy machine slows all alike; the server's CPU seconds (``/proc``)
per slice give µs per request. Run: ``.venv/bin/python bench/webhook_http.py [--slices 10] [--slice 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from webhook import BOT_CORE, LOAD_CORE, SRC, cpu_seconds, ensure_wrk, pinned
from webhook_shapes import PATH, SECRET, USER_BASE, wrk_script

HERE = Path(__file__).resolve().parent
LAYERS = ("router", "routes", "bare")

SERVER = r"""
import asyncio, sys
from typing import Any
from aiohttp import web
from voicecoder.adapters.telegram.health import Readiness
from voicecoder.adapters.telegram.http_server import Routes, listen
from voicecoder.adapters.telegram.routing import lane_of
from voicecoder.adapters.telegram.webhook import WebhookSettings, create_webhook_app

class MemoryInbox:
    def __init__(self) -> None:
        self.ids: set[int] = set()
    async def put(self, update_id: int, lane: str, body: bytes, *, on_inserted: Any = None) -> bool:
        fresh = update_id not in self.ids
        self.ids.add(update_id)
        if on_inserted is not None:
            on_inserted(fresh)
        return fresh
    async def check_writable(self) -> None:
        pass

async def metrics(_request: web.BaseRequest) -> web.Response:
    return web.Response(text="")

async def bare(request: web.BaseRequest) -> web.Response:
    await request.read()
    return web.Response(status=200)

async def main() -> None:
    settings = WebhookSettings(secret_token=sys.argv[2], path=sys.argv[1])
    webhook = create_webhook_app(settings, inbox=MemoryInbox(), dispatcher=None, lane_of=lane_of)
    webhook.routes.add_get("/metrics", metrics)
    ingress, readiness = webhook.ingress, Readiness(webhook.ingress.inbox, None)
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app.router.add_post(settings.path, ingress.on_update)
    app.router.add_get("/healthz", readiness.healthz)
    app.router.add_get("/readyz", readiness.readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    low = await listen(webhook.routes, "127.0.0.1", 0, client_max_size=settings.max_body_bytes + 1)
    floor = Routes()
    floor.add_post(settings.path, bare)
    bottom = await listen(floor, "127.0.0.1", 0, client_max_size=settings.max_body_bytes + 1)
    print(runner.addresses[0][1], low.addresses[0][1], bottom.addresses[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def run_wrk(wrk: str, script: Path, port: int, seconds: float, first_id: int, connections: int) -> dict[str, float]:
    command = [
        *pinned(LOAD_CORE),
        wrk,
        *("-t", str(connections), "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "-s", str(script)),
        f"http://127.0.0.1:{port}{PATH}",
        "--",
        *(str(first_id), str(connections), "50", str(USER_BASE), PATH, SECRET),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    if result["non200"] or result["errors"]:
        raise SystemExit(f"wrk saw {result['non200']} non-200 answers and {result['errors']} errors")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--slices", type=int, default=10, help="alternations of the two layers")
    parser.add_argument("--slice", type=int, default=2, help="seconds of load per slice")
    parser.add_argument("--connections", type=int, default=40)
    args = parser.parse_args()
    wrk, why = ensure_wrk()
    if wrk is None:
        print(why)
        return 1
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    server = subprocess.Popen(
        [*pinned(BOT_CORE), sys.executable, "-c", SERVER, PATH, SECRET], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ports = dict(zip(LAYERS, map(int, server.stdout.readline().split()), strict=True))
        per_request: dict[str, list[float]] = {layer: [] for layer in LAYERS}
        rates: dict[str, list[float]] = {layer: [] for layer in LAYERS}
        p99: dict[str, list[float]] = {layer: [] for layer in LAYERS}
        loads = [os.getloadavg()[0]]
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "load.lua"
            script.write_text(wrk_script())
            next_id = 1_000_000
            for layer in LAYERS:  # warm both up
                next_id = int(run_wrk(wrk, script, ports[layer], 1.0, next_id, args.connections)["next_id"])
            for n in range(args.slices):
                for layer in LAYERS if n % 2 == 0 else LAYERS[::-1]:  # each layer first and last alike
                    before = cpu_seconds(server.pid)
                    result = run_wrk(wrk, script, ports[layer], args.slice, next_id, args.connections)
                    used = cpu_seconds(server.pid) - before
                    next_id = int(result["next_id"])
                    per_request[layer].append(used * 1e6 / result["requests"])
                    rates[layer].append(result["requests"] / (result["duration_us"] / 1e6))
                    p99[layer].append(result["p99_us"] / 1000)
            loads.append(os.getloadavg()[0])
    finally:
        server.kill()
        server.wait()
    print(
        f"\nwebhook HTTP layer A/B: {args.slices} alternating slices of {args.slice:g} s, {args.connections} "
        f"connections, server on core {BOT_CORE}, wrk on core {LOAD_CORE}; load average {loads[0]:.2f} → "
        f"{loads[-1]:.2f} on {os.cpu_count()} cores"
    )
    print(f"  {'layer':<8}{'µs CPU/request (median)':>25}{'min':>8}{'requests/s':>12}{'p99':>10}")
    for layer in LAYERS:
        print(
            f"  {layer:<8}{statistics.median(per_request[layer]):>25.1f}{min(per_request[layer]):>8.1f}"
            f"{statistics.median(rates[layer]):>12,.0f}{statistics.median(p99[layer]):>7.2f} ms"
        )
    paired = [b / a for a, b in zip(per_request["router"], per_request["routes"], strict=True)]
    print(f"  routes/router CPU per request, median of paired slices: {statistics.median(paired):.3f}")
    floor = [b / a for a, b in zip(per_request["routes"], per_request["bare"], strict=True)]
    print(
        f"  bare/routes (aiohttp's own share of the ack path), median of paired slices: {statistics.median(floor):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

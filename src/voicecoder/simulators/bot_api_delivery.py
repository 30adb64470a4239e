"""How the Bot API simulator delivers updates to a webhook: per-queue order, retries, Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import time
import urllib.parse

import aiohttp

from voicecoder.simulators.bot_api_core import BotApiCore
from voicecoder.simulators.bot_api_records import (
    PendingUpdate,
    WebhookState,
)


class WebhookDelivery(BotApiCore):
    """Delivers queued updates to the webhook that setWebhook registered, as Telegram does."""

    async def _delivery_loop(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            next_due: float | None = None
            hook = self._webhook
            if hook is not None:
                now = time.monotonic()
                seen: set[int] = set()
                for pending in list(self._updates):
                    if pending.queue in seen:
                        continue
                    seen.add(pending.queue)
                    if pending.queue in self._inflight:
                        continue
                    if len(self._inflight) >= hook.max_connections:
                        break
                    if pending.not_before > now:
                        next_due = pending.not_before if next_due is None else min(next_due, pending.not_before)
                        continue
                    self._inflight[pending.queue] = asyncio.create_task(self._deliver(hook, pending))
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, hook: WebhookState, pending: PendingUpdate) -> None:
        assert self._session is not None
        update_id = pending.update["update_id"]
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        retry_after: float | None = None
        error: str | None = None
        try:
            async with self._session.post(
                self._delivery_url(hook.url),
                data=json.dumps(pending.update),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                self.webhook_deliveries.append((update_id, resp.status))
                if not 200 <= resp.status < 300:
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    header = resp.headers.get("Retry-After")
                    if header is not None and header.strip().isdigit():
                        retry_after = min(3600.0, float(header))
        except TimeoutError:
            error = "Read timeout expired"
            self.webhook_deliveries.append((update_id, "timeout"))
        except aiohttp.ServerDisconnectedError:
            error = "Webhook connection closed"
            self.webhook_deliveries.append((update_id, "closed"))
        except aiohttp.ClientError as exc:
            error = f"Connection refused: {type(exc).__name__}"
            self.webhook_deliveries.append((update_id, "refused"))
        finally:
            self._inflight.pop(pending.queue, None)
        if error is None:
            if pending in self._updates:
                self._updates.remove(pending)
        else:
            self._last_error_date = int(time.time())
            self._last_error_message = error
            pending.attempts += 1
            if retry_after is not None:
                delay = retry_after
            elif pending.attempts == 1:
                delay = 0.0
            else:
                delay = min(60.0, 2.0 ** (pending.attempts - 1))
            delay *= self.time_scale
            pending.not_before = time.monotonic() + delay
            out_of_attempts = self.webhook_max_attempts is not None and pending.attempts >= self.webhook_max_attempts
            if (out_of_attempts or pending.not_before > pending.expires_at) and pending in self._updates:
                self._updates.remove(pending)
                self.dropped_updates.append(update_id)
        await self._notify()

    def _delivery_url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        base = self.routes.get(f"{host}:{parts.port}") or self.routes.get(host)
        if base is None:
            return url
        target = urllib.parse.urlsplit(base)
        return urllib.parse.urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))

    def _resolved_ip(self, hook: WebhookState) -> str | None:
        if hook.ip_address:
            return hook.ip_address
        host = urllib.parse.urlsplit(hook.url).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return self.dns.get(host.lower())
        return str(literal) if literal.version == 4 else None

"""What ``bench/webhook.py`` sends: realistic Update JSON, one shape for wrk's Lua script and the Python drivers."""

from __future__ import annotations

import json

SECRET = "bench-secret-token_0123456789"
PATH = "/tg-bench-hook"
USER_BASE = 100_000
BOT_TOKEN = "7000000001:AAFakeTokenForLocalTestsOnly_0123456789"


def _user(chat: int, user_base: int) -> tuple[dict[str, object], dict[str, object]]:
    user_id = user_base + chat
    user = {"id": user_id, "is_bot": False, "first_name": "Bench", "username": f"u{chat}", "language_code": "en"}
    return user, {"id": user_id, "first_name": "Bench", "username": f"u{chat}", "type": "private"}


def text_update(update_id: int, chat: int, user_base: int = USER_BASE, text: str = "/help") -> bytes:
    user, chat_json = _user(chat, user_base)
    message = {"message_id": update_id, "from": user, "chat": chat_json, "date": 1764000000, "text": text}
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split(maxsplit=1)[0]), "type": "bot_command"}]
    return json.dumps({"update_id": update_id, "message": message}, separators=(",", ":")).encode()


def voice_update(update_id: int, chat: int, user_base: int = USER_BASE) -> bytes:
    user, chat_json = _user(chat, user_base)
    voice = {"duration": 37, "mime_type": "audio/ogg", "file_id": "voice", "file_unique_id": "v", "file_size": 146918}
    message = {"message_id": update_id, "from": user, "chat": chat_json, "date": 1764000000, "voice": voice}
    return json.dumps({"update_id": update_id, "message": message}, separators=(",", ":")).encode()


PACED = """
function delay()
  return %d
end
"""


def wrk_script(pause_ms: int = 0) -> str:
    """The Lua script; with *pause_ms* each connection waits that long before each request (a paced load)."""
    return WRK_SCRIPT.replace("%(delay)s", PACED % pause_ms if pause_ms > 0 else "")


# wrk runs one Lua state per thread. Thread t of T owns the chats c ≡ t (mod T), one connection per thread, so a
# chat's updates go one at a time as Telegram sends them; update ids are unique (first + n·T + t) and rise per chat.
WRK_SCRIPT = r"""
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_id = tonumber(args[1]); nthreads = tonumber(args[2]); chats = tonumber(args[3])
  user_base = tonumber(args[4]); path = args[5]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = args[6]
  sent = 0
  non200 = 0
  mine = {}
  for c = tid, chats - 1, nthreads do table.insert(mine, c) end
end

function request()
  local chat = mine[(sent % #mine) + 1]
  local id = first_id + sent * nthreads + tid
  sent = sent + 1
  local user = user_base + chat
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,"first_name":"Bench",' ..
    '"username":"u%d","language_code":"en"},"chat":{"id":%d,"first_name":"Bench","username":"u%d",' ..
    '"type":"private"},"date":1764000000,"text":"/help","entities":[{"offset":0,"length":5,"type":"bot_command"}]}}',
    id, id, user, chat, user, chat)
  return wrk.format(nil, path, nil, body)
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

%(delay)s
function done(summary, latency, requests)
  local bad, last = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    last = math.max(last, t:get("first_id") + t:get("sent") * t:get("nthreads"))
  end
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"non200":%d,"errors":%d,"next_id":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout, last,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""

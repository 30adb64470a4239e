"""
Telegram over the Bot API, in one package.

* ``api``, ``http``: the thin Bot API client and its JSON HTTP client.
* ``messenger``: the `Messenger` port (rendering replies as Telegram HTML, buttons as callback data).
* ``routing``: `route()`, the one place that says which update types voicecoder processes and in which lane.
* ``updates``: Update → use case (the intake of messages, voice notes and button presses).
* ``dispatcher``: the per-lane worker pool behind the durable `Inbox`.
* ``intake``: one ingress runner (`run_intake`); ``webhook`` and ``polling`` are its two update sources,
  ``health`` their /healthz and /readyz, ``ingress`` what `voicecoder serve` runs around them.
* ``identity``: the one rule for the webhook's path and secret, and their generators.
* ``webhook_health``, ``admin``, ``selftest``: what the operator commands ask Telegram and report.
"""

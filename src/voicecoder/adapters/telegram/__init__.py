"""
Telegram over the Bot API, in one package.

* ``api``, ``http``: the thin Bot API client and its JSON HTTP client.
* ``messenger``: the `Messenger` port (rendering replies as Telegram HTML, buttons as callback data).
* ``routing``: `route()`, the one place that says which update types voicecoder processes and in which lane.
* ``updates``: Update → use case (the intake of messages, voice notes and button presses).
* ``dispatcher``: the per-lane worker pool behind the durable `Inbox`.
* ``ingress``, ``webhook``, ``polling``, ``health``: one ingress runner with two update sources.
* ``webhook_health``, ``admin``, ``selftest``: what the operator commands ask Telegram and report.
"""

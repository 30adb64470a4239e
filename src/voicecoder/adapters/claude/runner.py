"""
The Claude Code CLI as voicecoder's `AgentRunner`: one long-lived process per conversation.

A session's process runs ``claude -p --input-format stream-json --output-format stream-json --verbose
--permission-mode <mode> [--permission-prompt-tool stdio] … (--session-id <uuid> | --resume <uuid>)`` in the
workspace. Each prompt is one ``user`` line on its stdin; the turn ends with the ``result`` line, after
which the process waits, warm, for the session's next prompt (``keep_warm_s``, at most ``max_warm``
processes; idle ones are closed by `keep_warm`, or at the start of the next run when nothing runs
`keep_warm`, and all of them by `aclose` / ``async with``). A session without a live process (the first
turn, an idle process that was reaped, one that crashed, a restart of voicecoder) is started with
``--resume`` and carries on with its history; a session the CLI no longer knows starts afresh, with a
`Notice`. Flags go on every start (``--resume`` keeps none).

With ``ask_tools`` the CLI asks about every tool its own permission mode does not allow, with a
``can_use_tool`` control request; the runner turns it into a `ToolRequest`, awaits the caller's `ToolGate`
(while it waits the turn's time limit is paused and the CLI's output is still read, so a withdrawn request,
``control_cancel_request``, cancels the question) and writes the decision back.

Stopping a turn (the caller is cancelled, or the time limit passes) sends an ``interrupt`` control request:
the CLI ends the turn (killing the tool it was running) with an error result within milliseconds, and the
process stays usable. Whatever else the turn started is killed. If the CLI does not answer within
``interrupt_grace_s`` its process group gets SIGINT, SIGTERM and SIGKILL (see `CliProcess.close`). After
every normal turn, processes the turn left running outside the CLI's own tree (background jobs) are killed.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Self

import anyio
import anyio.abc
import attrs

from voicecoder.adapters.claude.config import PINNED_VERSION, TESTED_RANGE_TEXT, TESTED_VERSION_RANGE, ClaudeCliConfig
from voicecoder.adapters.claude.environment import agent_environment, config_dir_problem, effective_config_dir
from voicecoder.adapters.claude.events import NO_CONVERSATION, StreamParser, parse_version, redact
from voicecoder.adapters.claude.process import CliProcess, marked_pids
from voicecoder.adapters.claude.tools import control_response, tool_request
from voicecoder.domain.errors import AgentNotInstalledError, AgentRunError, AgentTimeoutError
from voicecoder.domain.model import AgentRequest, AgentResult, Diagnostic, Notice, ToolDecision
from voicecoder.domain.ports import EventSink, ToolGate

__all__ = ["ClaudeCliAgent"]

log = logging.getLogger(__name__)

_NOBODY_TO_ASK = (
    "voicecoder had nobody to ask about this tool use, so it was refused. Say what you wanted to do instead."
)
_TURN_OVER = "The turn is being stopped."


class _GoneError(Exception):
    """A warm process turned out to be dead before the turn began; start one with --resume instead."""


@attrs.define
class _Clock:
    """The turn's time limit, paused while a tool question waits for a person."""

    scope: anyio.CancelScope
    budget: float
    waiting: int = 0
    since: float = 0.0

    def start(self) -> None:
        self.since = anyio.current_time()
        self.scope.deadline = self.since + self.budget

    def pause(self) -> None:
        if self.waiting == 0:
            self.budget -= anyio.current_time() - self.since
            self.scope.deadline = math.inf
        self.waiting += 1

    def resume(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.start()


@attrs.define
class ClaudeCliAgent:
    """Runs prompts through the Claude Code CLI; see the module docstring for the protocol."""

    config: ClaudeCliConfig
    new_session_id: Callable[[], str] = attrs.field(default=lambda: str(uuid.uuid4()), repr=False)
    _warm: collections.OrderedDict[str, CliProcess] = attrs.field(
        factory=collections.OrderedDict, init=False, repr=False
    )
    spawned: int = attrs.field(default=0, init=False)
    """How many CLI processes this runner started (a warm turn starts none)."""

    # --- AgentRunner ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def run(self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None) -> AgentResult:
        await self.reap_idle()
        notices: list[str] = []
        if request.resume and request.session_id:
            parser = await self._resumed_turn(request.session_id, request.prompt, on_event, on_tool)
            if parser.conversation_missing:
                fresh = self.new_session_id()
                notice = (
                    f"The previous Claude conversation ({request.session_id[:8]}…) no longer exists; "
                    "started a new one without its history."
                )
                log.warning("resume of session %s failed: not found; starting %s", request.session_id, fresh)
                notices.append(notice)
                await on_event(Notice(notice))
                proc = await self._spawn(fresh, resume=False)
                parser = await self._turn(proc, request.prompt, on_event, on_tool)
        else:
            session_id = request.session_id or self.new_session_id()
            await self.end_session(session_id)
            proc = await self._spawn(session_id, resume=False)
            parser = await self._turn(proc, request.prompt, on_event, on_tool)
        return parser.agent_result(notices)

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        await self.reap_idle()
        parser = await self._resumed_turn(session_id, "/compact", on_event, None)
        result = parser.agent_result()
        compacted = parser.compacted
        if compacted is None:
            detail = result.text or " ".join(parser.assistant_texts) or "the CLI reported no compaction"
            return attrs.evolve(result, success=False, text=detail)
        text = result.text
        if not text:
            before, after = compacted.pre_tokens, parser.compacted_to_tokens
            if before is not None and after is not None:
                text = f"Conversation compacted: {before} → {after} tokens."
            elif before is not None:
                text = f"Conversation compacted (was {before} tokens)."
            else:
                text = "Conversation compacted."
        return attrs.evolve(result, text=text)

    async def end_session(self, session_id: str, /) -> None:
        proc = self._warm.pop(session_id, None)
        if proc is not None:
            log.info("closing the warm claude process of session %s", session_id)
            await proc.close()

    # --- warm processes ---------------------------------------------------------------------

    @property
    def warm_sessions(self) -> tuple[str, ...]:
        """Sessions with an idle process waiting for their next turn."""
        return tuple(self._warm)

    async def reap_idle(self) -> None:
        """Close processes idle for longer than ``keep_warm_s``."""
        now = anyio.current_time()
        for session_id, proc in list(self._warm.items()):
            idle = now - (proc.idle_since if proc.idle_since is not None else now)
            # Another task may have taken the process while this one awaited a close.
            if (idle >= self.config.keep_warm_s or not proc.alive) and self._warm.get(session_id) is proc:
                del self._warm[session_id]
                log.info("closing claude process of session %s (idle %.0f s)", session_id, idle)
                await proc.close()

    async def keep_warm(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Reap idle processes until cancelled; then close every process (run it in the runtime's task group)."""
        task_status.started()
        try:
            while True:
                await anyio.sleep(max(1.0, min(60.0, self.config.keep_warm_s / 4)))
                await self.reap_idle()
        finally:
            with anyio.CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        """Close every warm process and whatever it started."""
        while self._warm:
            _, proc = self._warm.popitem(last=False)
            await proc.close()

    async def _resumed_turn(
        self, session_id: str, prompt: str, on_event: EventSink, on_tool: ToolGate | None
    ) -> StreamParser:
        """A turn of an existing session: on its warm process, or on one started with --resume."""
        proc = await self._checkout(session_id)
        try:
            return await self._turn(proc, prompt, on_event, on_tool)
        except _GoneError:
            log.info("the warm claude process of session %s was gone; resuming", session_id)
            return await self._turn(await self._spawn(session_id, resume=True), prompt, on_event, on_tool)

    async def _checkout(self, session_id: str) -> CliProcess:
        proc = self._warm.pop(session_id, None)
        if proc is not None and proc.alive:
            return proc
        if proc is not None:
            log.info("the warm claude process of session %s died (rc=%s); resuming", session_id, proc.returncode)
            await proc.close()
        return await self._spawn(session_id, resume=True)

    async def _park(self, proc: CliProcess) -> None:
        if self.config.keep_warm_s <= 0 or not proc.alive:
            await proc.close()
            return
        proc.idle_since = anyio.current_time()
        self._warm[proc.session_id] = proc
        self._warm.move_to_end(proc.session_id)
        while len(self._warm) > max(0, self.config.max_warm):
            session_id, oldest = self._warm.popitem(last=False)
            log.info("closing the least recently used claude process (session %s)", session_id)
            await oldest.close()

    # --- compatibility guard ----------------------------------------------------------------

    def resolve_binary(self) -> str:
        """
        The CLI's absolute path.

        Raises:
            AgentNotInstalledError: Not found or not executable.
        """
        binary = self.config.binary
        if os.sep in binary:
            # Absolute: the CLI runs with cwd=workdir, where a relative path would not resolve.
            path = Path(binary).expanduser().absolute()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise AgentNotInstalledError(binary)
        found = shutil.which(binary)
        if found is None:
            raise AgentNotInstalledError(binary)
        return found

    async def version(self) -> str | None:
        """``claude --version`` as ``"2.1.330"``, or None when the binary is missing or says nothing useful."""
        try:
            binary = self.resolve_binary()
        except AgentNotInstalledError:
            return None
        try:
            with anyio.fail_after(20):
                done = await anyio.run_process(
                    [binary, "--version"], check=False, env=self.environment(), stdin=subprocess.DEVNULL
                )
        except (OSError, TimeoutError) as exc:
            log.warning("claude --version failed: %s", exc)
            return None
        parsed = parse_version(done.stdout.decode("utf-8", errors="replace"))
        return None if parsed is None else ".".join(map(str, parsed))

    async def diagnose(self) -> list[Diagnostic]:
        install_fix = (
            f"Run `npm install -g @anthropic-ai/claude-code@{PINNED_VERSION}` "
            "(`python3 dev.py run` installs it into .tools/) or set CLAUDE_BINARY to the claude executable."
        )
        try:
            binary = self.resolve_binary()
        except AgentNotInstalledError:
            return [Diagnostic("Claude Code CLI", ok=False, detail=f"{self.config.binary} not found", fix=install_fix)]
        results = [Diagnostic("Claude Code CLI", ok=True, detail=f"found at {binary}")]
        version = await self.version()
        parsed = parse_version(version) if version else None
        if parsed is None:
            results.append(
                Diagnostic(
                    "Claude Code version", ok=False, detail="`claude --version` gave no version", fix=install_fix
                )
            )
        elif TESTED_VERSION_RANGE[0] <= parsed < TESTED_VERSION_RANGE[1]:
            results.append(
                Diagnostic("Claude Code version", ok=True, detail=f"{version} (tested: {TESTED_RANGE_TEXT})")
            )
        else:
            results.append(
                Diagnostic(
                    "Claude Code version",
                    ok=True,
                    warning=True,
                    detail=f"{version} is outside the tested range {TESTED_RANGE_TEXT}; output may differ",
                    fix=f"Pin @anthropic-ai/claude-code@{PINNED_VERSION} (requirements/claude-code-version.txt).",
                )
            )
        results.append(self._auth_diagnostic())
        return results

    def _auth_diagnostic(self) -> Diagnostic:
        env = self.environment()
        for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
            if env.get(var):
                return Diagnostic("Claude authentication", ok=True, detail=f"{var} is set")
        for var in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY"):
            if env.get(var):
                return Diagnostic("Claude authentication", ok=True, detail=f"{var} is set (provider credentials)")
        if env.get("ANTHROPIC_BASE_URL"):
            return Diagnostic("Claude authentication", ok=True, detail="ANTHROPIC_BASE_URL is set (gateway)")
        config_dir = effective_config_dir(env)
        credentials = config_dir / ".credentials.json"
        if credentials.is_file():
            return Diagnostic("Claude authentication", ok=True, detail=f"login credentials in {config_dir}")
        return Diagnostic(
            "Claude authentication",
            ok=False,
            detail="no ANTHROPIC_API_KEY and no login found",
            fix="Set ANTHROPIC_API_KEY, or run `claude` once and log in (with the same CLAUDE_CONFIG_DIR).",
        )

    # --- starting a process -----------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The agent's environment (an allow-list; see `agent_environment`)."""
        cfg = self.config
        return agent_environment(
            os.environ,
            passthrough=cfg.passthrough,
            extra=cfg.extra_env,
            config_dir=cfg.config_dir,
            max_retries=cfg.max_retries,
        )

    def arguments(self, session_args: Sequence[str]) -> list[str]:
        cfg = self.config
        args = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
        args += ["--permission-mode", cfg.effective_permission_mode]
        if cfg.ask_tools:
            args += ["--permission-prompt-tool", "stdio"]
        if cfg.model:
            args += ["--model", cfg.model]
        if cfg.max_turns is not None:
            args += ["--max-turns", str(cfg.max_turns)]
        if cfg.append_system_prompt:
            args += ["--append-system-prompt", cfg.append_system_prompt]
        # Variadic flags: each rule is its own argument and the next token is always another flag.
        if cfg.allowed_tools:
            args += ["--allowedTools", *cfg.allowed_tools]
        if cfg.disallowed_tools:
            args += ["--disallowedTools", *cfg.disallowed_tools]
        return [*args, *session_args]

    async def _spawn(self, session_id: str, *, resume: bool) -> CliProcess:
        cfg = self.config
        binary = self.resolve_binary()
        if not cfg.workdir.is_dir():
            raise AgentRunError(f"The workspace {cfg.workdir} does not exist; create it or choose another directory.")
        env = self.environment()
        problem = config_dir_problem(effective_config_dir(env), cfg.workdir)
        if problem is not None:
            raise AgentRunError(problem)
        session_args = ["--resume", session_id] if resume else ["--session-id", session_id]
        log.info("starting claude (%s) in %s", " ".join(session_args), cfg.workdir)
        try:
            proc = await CliProcess.start(
                [binary, *self.arguments(session_args)],
                cwd=cfg.workdir,
                env=env,
                session_id=session_id,
                max_line_bytes=cfg.max_line_bytes,
                grace_s=cfg.grace_s,
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise AgentNotInstalledError(cfg.binary) from exc
        except OSError as exc:
            raise AgentRunError(f"Could not start the Claude Code CLI: {exc.strerror or exc}") from exc
        self.spawned += 1
        return proc

    def _secrets(self) -> list[str]:
        sensitive = ("KEY", "TOKEN", "SECRET", "PASSWORD")
        return [v for k, v in self.environment().items() if any(s in k.upper() for s in sensitive) and v]

    # --- one turn ---------------------------------------------------------------------------

    async def _turn(self, proc: CliProcess, prompt: str, on_event: EventSink, on_tool: ToolGate | None) -> StreamParser:
        cfg = self.config
        # The CLI may report paths under the directory as given or with symlinks resolved.
        parser = StreamParser(workdir=(PurePath(cfg.workdir.absolute()), PurePath(cfg.workdir.resolve())))
        if proc.turns:
            proc.clear_stderr()  # only this turn's stderr explains a crash in it
        proc.idle_since = None
        finished = False
        clock = _Clock(anyio.CancelScope(), cfg.timeout_s)
        try:
            try:
                await proc.send_user(prompt)
            except anyio.BrokenResourceError:
                # The CLI is gone, or exits at start (e.g. an unknown --resume id): read what it said.
                log.info("claude did not take the prompt; reading its last words")
            clock.start()
            try:
                async with anyio.create_task_group() as questions:
                    with clock.scope:
                        await self._converse(proc, parser, on_event, on_tool, clock, questions)
                    questions.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The task group only answers tool questions: give the caller its own exception back.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            finished = parser.result is not None
        finally:
            if not finished and proc.alive:
                await self._abort(proc)
        if clock.scope.cancelled_caught and parser.result is None:
            log.warning("claude timed out after %.0f s and was stopped", cfg.timeout_s)
            raise AgentTimeoutError(cfg.timeout_s)
        if parser.result is None and proc.turns > 0 and parser.session_id is None:
            # A warm process that died while idle (killed, crashed): nothing of this turn happened yet.
            await proc.close()
            raise _GoneError
        if parser.result is None:
            with anyio.move_on_after(cfg.grace_s):
                await proc.wait()  # its exit status explains the end of its output
            tail = redact((await proc.stderr_tail()).strip(), self._secrets())[-1000:]
            await proc.close()
            returncode = proc.returncode
            if NO_CONVERSATION in tail:
                parser.result = {"subtype": "error_during_execution", "is_error": True, "errors": [tail]}
                return parser
            log.error("claude exited with code %s and no result: %s", returncode, tail)
            raise AgentRunError(
                f"Claude Code exited (code {returncode}) without a result"
                + (f": {tail}" if tail else ". Run `voicecoder doctor` to check the installation.")
            )
        log.info(
            "claude turn finished: subtype=%s is_error=%s", parser.result.get("subtype"), parser.result.get("is_error")
        )
        if parser.conversation_missing or not proc.alive:
            await proc.close()
        else:
            proc.turns += 1
            await proc.sweep_strays()
            await self._park(proc)
        return parser

    async def _converse(
        self,
        proc: CliProcess,
        parser: StreamParser,
        on_event: EventSink,
        on_tool: ToolGate | None,
        clock: _Clock,
        questions: anyio.abc.TaskGroup,
    ) -> None:
        """Read the turn's output up to its result; tool requests are answered in *questions*' tasks."""
        open_questions: dict[str, anyio.CancelScope] = {}
        while parser.result is None:
            obj = await proc.receive()
            if obj is None:
                return
            kind = obj.get("type")
            if kind == "control_request":
                request_id = obj.get("request_id")
                body = obj.get("request")
                if not isinstance(request_id, str) or not isinstance(body, Mapping):
                    continue
                if body.get("subtype") == "can_use_tool":
                    scope = anyio.CancelScope()
                    open_questions[request_id] = scope
                    questions.start_soon(self._answer, proc, request_id, body, on_tool, clock, scope, open_questions)
                else:
                    await self._refuse_control(proc, request_id, body.get("subtype"))
            elif kind == "control_cancel_request":
                withdrawn = open_questions.get(str(obj.get("request_id")))
                if withdrawn is not None:
                    withdrawn.cancel()
            elif kind != "control_response":
                for event in parser.feed(obj):
                    await on_event(event)

    async def _answer(
        self,
        proc: CliProcess,
        request_id: str,
        body: Mapping[str, Any],
        on_tool: ToolGate | None,
        clock: _Clock,
        scope: anyio.CancelScope,
        open_questions: dict[str, anyio.CancelScope],
    ) -> None:
        decision = ToolDecision.denied(_NOBODY_TO_ASK)
        clock.pause()
        try:
            with scope:
                request = await anyio.to_thread.run_sync(tool_request, request_id, body, self.config.workdir)
                if on_tool is not None:
                    decision = await on_tool(request)
        finally:
            clock.resume()
            open_questions.pop(request_id, None)
        if scope.cancelled_caught:
            return  # the CLI withdrew the request: it expects no answer
        try:
            await proc.send(control_response(request_id, decision, body.get("input")))
        except anyio.BrokenResourceError:
            log.info("claude went away before the answer to %s", request_id)

    async def _refuse_control(self, proc: CliProcess, request_id: str, subtype: object) -> None:
        log.info("refusing an unsupported control request from claude: %s", subtype)
        message = {
            "type": "control_response",
            "response": {"subtype": "error", "request_id": request_id, "error": f"unsupported: {subtype}"},
        }
        try:
            await proc.send(message)
        except anyio.BrokenResourceError:
            return

    async def _abort(self, proc: CliProcess) -> None:
        """Stop the running turn: interrupt, then (if the CLI does not end the turn) kill. Shielded."""
        with anyio.CancelScope(shield=True):
            ended = False
            try:
                await proc.interrupt()
                with anyio.move_on_after(self.config.interrupt_grace_s):
                    while True:
                        obj = await proc.receive()
                        if obj is None:
                            break
                        if obj.get("type") == "control_request" and isinstance(obj.get("request_id"), str):
                            await self._deny_late(proc, obj)
                        elif obj.get("type") == "result":
                            ended = True
                            break
            except anyio.BrokenResourceError:
                ended = False
            if not ended:
                log.warning("claude did not end the turn after an interrupt; stopping its process group")
                await proc.close()
                return
            # The turn is over: nothing it started may outlive it, only the CLI itself stays (warm).
            leftovers = [p for p in await anyio.to_thread.run_sync(marked_pids, proc.marker) if p != proc.pid]
            if leftovers:
                await proc.close()
                return
            await self._park(proc)

    async def _deny_late(self, proc: CliProcess, obj: Mapping[str, Any]) -> None:
        body = obj.get("request")
        if isinstance(body, Mapping) and body.get("subtype") == "can_use_tool":
            await proc.send(control_response(str(obj["request_id"]), ToolDecision.denied(_TURN_OVER), None))

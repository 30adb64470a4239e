"""The ports: what the domain needs from the outside world, as typing.Protocols."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from voicecoder.domain.inbox import InboxCounts, InboxItem, NewUpdate
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    ApprovalChoice,
    Audio,
    AuditRecord,
    Baseline,
    ChangeId,
    ChatId,
    CommitInfo,
    CommitMessage,
    Diagnostic,
    Diff,
    EndedTurn,
    PendingChange,
    Restored,
    SecretFinding,
    Session,
    ToolDecision,
    ToolRequest,
    Transcript,
    TranscriptionHints,
    TurnId,
    WorkspaceStatus,
)
from voicecoder.domain.replies import MessageRef, Reply

EventSink = Callable[[AgentEvent], Awaitable[None]]
ToolGate = Callable[[ToolRequest], Awaitable[ToolDecision]]
"""Answers the agent's tool requests; it may wait for a person (the runner keeps waiting, not timing out)."""


@runtime_checkable
class Transcriber(Protocol):
    """Turns recorded speech into text."""

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        """
        Transcribe *audio*, using *hints* (code vocabulary, language) where the engine supports them.

        Size, format and duration limits are checked before any upload or decoding work. Nothing but
        `TranscriptionError` subclasses escapes (cancellation aside): no vendor or builtin exception, and a
        cancelled call leaves no task behind and delivers no late result. The transcript's ``language`` is the
        language that was spoken (the one requested, or the one detected) or None when unknown, and its
        ``confidence`` the engine's own estimate or None: never a constant.

        Raises:
            UnsupportedAudioError: The bytes are not decodable audio.
            NoSpeechError: The audio holds no speech (silence never yields invented text).
            AudioTooLargeError: The input is larger than the configured limit.
            AudioTooLongError: The recording is longer than the configured limit.
            ProviderAuthError: The provider rejected the credentials.
            ProviderRejectedError: The provider refused the request for good (unknown model, wrong endpoint,
                exhausted quota); retrying cannot help.
            ProviderUnavailableError: The provider is down, rate limiting, or timed out (ProviderTimeoutError).
        """
        ...


@runtime_checkable
class AgentRunner(Protocol):
    """Runs the coding agent headless in the workspace."""

    async def run(self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None) -> AgentResult:
        """
        Run one prompt; stream progress to *on_event*; return the final result.

        A result with ``success=False`` is a normal outcome (the agent reported an error); the
        adapter raises only when no result could be obtained. Cancelling the calling task stops
        the agent and everything it started, also while *on_tool* is being awaited.

        Every tool use the agent's own settings do not already allow is passed to *on_tool* as a
        `ToolRequest` before it runs; the tool runs only if the `ToolDecision` allows it, and a
        denial's message reaches the agent as the reason. Time spent in *on_tool* does not count
        against the run's time limit. Without *on_tool* such tool uses are refused.

        Raises:
            AgentNotInstalledError: The agent binary is missing.
            AgentTimeoutError: The run exceeded its time limit and was stopped.
            AgentRunError: The agent crashed or produced no result.
        """
        ...

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        """
        Compact the conversation *session_id* so it can go on with a smaller context.

        Raises:
            AgentRunError: Compaction failed.
        """
        ...

    async def end_session(self, session_id: str, /) -> None:
        """
        Let go of what the runner keeps for *session_id* between turns (e.g. a warm process).

        A later run may still resume the conversation. Calling it for an unknown session is harmless.
        Raises nothing.
        """
        ...


@runtime_checkable
class Workspace(Protocol):
    """
    A git working tree on which each agent turn is a transaction.

    A turn has two checkpoints: the baseline (`begin_turn`, before the agent starts) and the turn-end snapshot
    (`end_turn`, when the agent has finished). From them, HEAD and the current tree every path has an owner:
    the agent (changed between the checkpoints), the developer (uncommitted edits before the turn, or any edit
    after the turn end), or both. Approve commits the agent's hunks onto HEAD and nothing of the developer's;
    Reject takes the agent's hunks out and writes no path the agent did not touch. A baseline without a
    turn-end snapshot treats the current tree as the turn end.
    """

    async def begin_turn(self, turn_id: TurnId, /, *, extends: Baseline | None = None) -> Baseline:
        """
        Snapshot the working tree (tracked and untracked-but-not-ignored files) and the index before a turn.

        The snapshot is durable: it survives a restart. With *extends* (the ended baseline of a change that is
        still pending), the new turn continues that change: the developer's edits made since its turn end
        become part of the new baseline, so they stay the developer's; where they overlap the earlier agent
        edits the path is marked overlapping for good.

        Raises:
            NotARepositoryError: The workspace is not a usable repository.
            WorkspaceError: The snapshot could not be written, *extends* is unknown, or the index is broken
                (e.g. it lists a path both as a file and as a directory); the message says how to repair it
                and nothing was changed.
        """
        ...

    async def end_turn(self, baseline: Baseline, /) -> EndedTurn:
        """
        Snapshot what the agent left (working tree and index) as *baseline*'s turn end; durable like the baseline.

        Returns the baseline with its turn end, and the turn's diff as `changes_since` would give it at that
        moment (read from the same look at the tree, so it has no late edits).

        Raises:
            WorkspaceError: The baseline is unknown or the snapshot could not be written.
        """
        ...

    async def changes_since(self, baseline: Baseline, /) -> Diff:
        """
        The turn three ways apart, with a fingerprint of all of it (see `Diff`).

        That is the agent's change as Approve commits it, the developer's uncommitted edits in the same files,
        and late edits made after the turn end.

        Raises:
            WorkspaceError: The baseline is unknown or the tree cannot be read.
        """
        ...

    async def commit_turn(
        self,
        baseline: Baseline,
        /,
        *,
        fingerprint: str,
        message: CommitMessage,
        author: str | None = None,
        choice: ApprovalChoice | None = None,
    ) -> CommitInfo:
        """
        Commit the agent's change onto HEAD exactly as `changes_since` shows it; the working tree is not written.

        The developer's staged and unstaged edits stay exactly as they were (staged ones stay staged), and
        late edits stay uncommitted. Overlapping files follow *choice*.

        Raises:
            StaleChangeError: The current changes no longer match *fingerprint* (prefix allowed), e.g. late edits
                appeared since the diff was shown; nothing was committed.
            ApprovalChoiceRequiredError: Some files overlap the developer's edits and *choice* is None.
            WorkspaceError: Nothing to commit, or the commit failed; nothing was committed.
        """
        ...

    async def restore_turn(self, baseline: Baseline, /) -> Restored:
        """
        Take the agent's change back, and say what was restored and what was kept.

        The agent's paths return to the baseline, keeping the developer's later edits in them (three-way); a
        path where those overlap the agent's edits is left alone and reported as kept. Paths the agent never
        touched are never written.

        Raises:
            WorkspaceError: The baseline is unknown or the files or index cannot be written; nothing was changed.
        """
        ...

    async def release_turn(self, baseline: Baseline, /) -> None:
        """
        Forget the checkpoints of a settled turn (approved, rejected, or one that changed nothing).

        The working tree and history are untouched; calling it twice is harmless.

        Raises:
            WorkspaceError: The checkpoints could not be removed.
        """
        ...

    async def status(self) -> WorkspaceStatus:
        """
        Branch, HEAD, staged/unstaged/untracked files and the latest commit.

        Raises:
            NotARepositoryError: The workspace is not a usable repository.
        """
        ...

    async def revert_commit(self, sha: str, /, *, message: CommitMessage, author: str | None = None) -> CommitInfo:
        """
        Undo commit *sha* with a new commit.

        Raises:
            WorkspaceConflictError: The commit's paths changed since, or have uncommitted edits; nothing was changed.
            WorkspaceError: The commit is unknown, or cannot be reverted (a merge, or it changed nothing).
        """
        ...


@runtime_checkable
class SecretScanner(Protocol):
    """Finds likely secrets in the lines a diff adds."""

    async def scan(self, diff: Diff, /) -> Sequence[SecretFinding]:
        """Findings (path, line, kind), never the secret itself. Raises nothing: a scanner failure is a finding."""
        ...


@runtime_checkable
class VocabularySource(Protocol):
    """Words from the workspace that a recogniser should know (file names, symbols, branches)."""

    async def vocabulary(self) -> tuple[str, ...]:
        """A capped, deduplicated list of terms. Raises nothing: an unreadable workspace gives ()."""
        ...


@runtime_checkable
class Messenger(Protocol):
    """
    Sends the domain's structured replies to a chat; adapters decide how they look.

    Buttons: a reply carries exactly the buttons `voicecoder.domain.replies.buttons_of` gives — `ChangeSummary`
    (✅ Approve ❌ Reject 📝 Show Diff 📊 Git Status; only 📝 once decided), `DiffView` of a pending change (✅ ❌)
    and a running `Working` (⏹ Cancel); each button's callback data is
    `voicecoder.domain.callbacks.encode_callback(button)`, unchanged.
    `voicecoder.testing.contracts.messenger.MessengerContract` checks all of this.
    """

    async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
        """
        Send *reply* with its buttons; long content may become several messages or a document.

        Returns the message later edits apply to: the last part, the one that carries the buttons.

        Raises:
            DeliveryError: The reply could not be delivered after retries.
        """
        ...

    async def edit(self, ref: MessageRef, reply: Reply, /) -> None:
        """
        Replace the message *ref* with *reply*, text and keyboard ("not modified" is success).

        Three replies are edited: `Working` (the progress of a turn; its final edit, ``finished=True``, has no
        buttons, so ⏹ Cancel must disappear), and a `ChangeSummary` or `DiffView` once its change is decided or
        replaced (``decision`` set: Approve and Reject must disappear). The keyboard is always replaced by the new
        reply's buttons. A reply that was sent as a document keeps its file; only its buttons change.

        Raises:
            DeliveryError: The edit failed after retries.
        """
        ...

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        """
        Acknowledge a button press (the client stops its spinner).

        Raises:
            DeliveryError: The acknowledgement failed.
        """
        ...

    async def typing(self, chat: ChatId, /) -> None:
        """Show the 'typing…' indicator. Raises nothing: it is cosmetic."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Durable sessions, changes and the audit trail."""

    async def load_session(self, chat: ChatId, /) -> Session | None:
        """
        The session of *chat*, with its pending change, or None.

        Raises:
            StateStoreError: The store cannot be read.
        """
        ...

    async def save_session(self, session: Session, /) -> None:
        """
        Persist *session* and its pending change atomically.

        Raises:
            StateStoreError: The store cannot be written.
        """
        ...

    async def load_change(self, chat: ChatId, change: ChangeId, /) -> PendingChange | None:
        """
        The change *change* of *chat*, pending or decided, or None if *chat* never had it.

        A change that was pending when a newer one replaced it in its session loads as superseded.

        Raises:
            StateStoreError: The store cannot be read.
        """
        ...

    async def save_change(self, change: PendingChange, /) -> None:
        """
        Persist a change its chat already has, e.g. an approved one /undo reverted.

        Raises:
            StateStoreError: The store cannot be written, or the chat has no change with this id.
        """
        ...

    async def approved_changes(self, chat: ChatId, /, limit: int = 20) -> Sequence[PendingChange]:
        """
        The latest *limit* approved (or auto-approved) changes of *chat* not reverted yet, the last decided first.

        None for a *limit* below 1.

        Raises:
            StateStoreError: The store cannot be read.
        """
        ...

    async def append_audit(self, record: AuditRecord, /) -> None:
        """
        Append one audit record.

        Raises:
            StateStoreError: The store cannot be written.
        """
        ...

    async def audit_trail(self, chat: ChatId, /, limit: int = 20) -> Sequence[AuditRecord]:
        """
        The latest *limit* records of *chat*, oldest first.

        Raises:
            StateStoreError: The store cannot be read.
        """
        ...


@runtime_checkable
class Clock(Protocol):
    """Wall time and a monotonic counter, brought in from the edge."""

    def now(self) -> datetime:
        """Timezone-aware current time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...


@runtime_checkable
class Inbox(Protocol):
    """
    The durable store of incoming updates: written before anything runs, so an update is never lost.

    Every update is stored once (keyed by its ``update_id``), processed at least once, and ends done or failed.
    Writes are applied in the order they are made, the fire-and-forget ones (``*_nowait``) included. Every method
    but ``open`` and ``aclose`` needs the inbox open. ``voicecoder.testing.InboxContract`` checks all of this.
    """

    async def open(self) -> None:
        """
        Make the inbox usable (creating its storage if needed); opening an open inbox does nothing.

        Raises:
            StateStoreError: The storage cannot be opened or created.
        """
        ...

    async def aclose(self) -> None:
        """Commit what was queued and release the storage; closing twice is harmless. Raises nothing."""
        ...

    async def put(
        self, update_id: int, lane: str, body: bytes, *, on_inserted: Callable[[bool], None] | None = None
    ) -> bool:
        """
        Store one update durably: True when it is new, False for an ``update_id`` already stored (nothing changes).

        *on_inserted*, if given, is told the same answer as soon as the update is stored, possibly before it is
        durable (so processing can overlap the commit); the return waits until it is durable.

        Raises:
            StateStoreError: It could not be stored (the sender must deliver it again).
        """
        ...

    async def put_many(self, updates: Iterable[NewUpdate], *, offset: int | None = None) -> list[bool]:
        """
        Store several updates, and the next polling *offset* if given, all or nothing; True per new update.

        Raises:
            StateStoreError: Nothing was stored.
        """
        ...

    def claim_nowait(self, update_id: int) -> None:
        """
        Queue one more processing attempt of a pending update (its ``attempts`` grows by one).

        Raises:
            StateStoreError: The inbox is not open.
        """
        ...

    def mark_done_nowait(self, update_id: int) -> None:
        """
        Queue "done" for *update_id*; it is durable after the next write that is waited for, or soon after.

        Raises:
            StateStoreError: The inbox is not open.
        """
        ...

    async def mark_failed(self, update_id: int, error: str) -> None:
        """
        Record that *update_id* failed for good, with *error*.

        Raises:
            StateStoreError: It could not be recorded.
        """
        ...

    async def record_error(self, update_id: int, error: str) -> None:
        """
        Remember the latest *error* of an attempt; the update stays pending.

        Raises:
            StateStoreError: It could not be recorded.
        """
        ...

    async def pending(self) -> list[InboxItem]:
        """Every pending update in ``update_id`` order: what a restart resumes. Raises StateStoreError."""
        ...

    async def get(self, update_id: int) -> InboxItem | None:
        """The stored update *update_id* in any state, or None. Raises StateStoreError."""
        ...

    async def failed(self) -> list[InboxItem]:
        """The updates given up on, in ``update_id`` order. Raises StateStoreError."""
        ...

    async def counts(self) -> InboxCounts:
        """How many updates are pending, done and failed. Raises StateStoreError."""
        ...

    async def depth(self) -> int:
        """How many updates are pending (the backlog). Raises StateStoreError."""
        ...

    async def offset(self) -> int | None:
        """The stored polling offset, or None before the first one. Raises StateStoreError."""
        ...

    async def check_writable(self) -> None:
        """
        Prove the inbox can be written now (the readiness check).

        Raises:
            StateStoreError: It cannot.
        """
        ...

    async def purge_finished(self, *, older_than_s: float) -> int:
        """
        Delete done and failed updates finished more than *older_than_s* ago; return how many went.

        Pending updates are never purged. Raises StateStoreError.
        """
        ...


@runtime_checkable
class Closeable(Protocol):
    """
    An adapter that holds resources (HTTP sessions, processes) until closed; whoever built it closes it.

    Optional for every port: the runtime closes what it built when it is one (a speech engine, a plug-in's too).
    """

    async def aclose(self) -> None:
        """Release everything held; closing twice is harmless. Raises nothing."""
        ...


@runtime_checkable
class Diagnosable(Protocol):
    """Something /info and `voicecoder doctor` can check."""

    async def diagnose(self) -> Sequence[Diagnostic]:
        """Checks with a fix for each failure. Raises nothing."""
        ...

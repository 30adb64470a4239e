"""
The one exception hierarchy of voicecoder.

* VoicecoderError
  + DomainError
    - NoPendingChangeError, ChangeNotPendingError, StaleChangeError, NothingToUndoError
    - ApprovalBlockedError, ApprovalChoiceRequiredError, TurnInProgressError, EmptyPromptError
    - MalformedUpdateError
  + PortError
    - TranscriptionError
      . UnsupportedAudioError, NoSpeechError, AudioTooLargeError, AudioTooLongError
      . ProviderAuthError, ProviderRejectedError, ProviderUnavailableError (ProviderTimeoutError)
    - AgentRunError (AgentTimeoutError, AgentNotInstalledError)
    - WorkspaceError (NotARepositoryError, WorkspaceConflictError)
    - DeliveryError
    - StateStoreError
    - UnexpectedAdapterError
  + ConfigurationError
  + StartupError

Every message says what the user can do about it. No message ever contains a secret, and none names one of
voicecoder's own environment variables: inside someone else's bot they mean nothing. The `voicecoder` CLI adds
such hints itself (`ErrorReply.hint`, `voicecoder.bootstrap.cli_error_hint`).
"""

from __future__ import annotations


class VoicecoderError(Exception):
    """Base of every error voicecoder raises on purpose."""


class DomainError(VoicecoderError):
    """A request the domain refuses; the message is shown to the user as is."""


class NotAuthorizedError(DomainError):
    """The sender is not in the allowed users (`Settings.allowed_users`)."""

    def __init__(self, user_id: int) -> None:
        super().__init__("⛔ You are not authorized to use this bot.")
        self.user_id = user_id


class NoPendingChangeError(DomainError):
    """There is no change waiting for a decision."""

    def __init__(self) -> None:
        super().__init__("There is no pending change. Send a prompt first.")


class ChangeNotPendingError(DomainError):
    """The change a button refers to was already decided or replaced."""

    def __init__(self, change_id: str, status: str) -> None:
        super().__init__(f"This change is no longer pending (it was {status}).")
        self.change_id = change_id
        self.status = status


class NothingToUndoError(DomainError):
    """/undo found no approved change of the chat that is not reverted yet."""

    def __init__(self) -> None:
        super().__init__("Nothing to undo: no approved change of this chat is left.")


class StaleChangeError(DomainError):
    """The workspace no longer matches the diff the user saw."""

    def __init__(self, detail: str = "") -> None:
        message = (
            "The workspace changed since this diff was shown; nothing was committed. "
            "Tap 📝 Show Diff to review the current changes, then approve again."
        )
        super().__init__(f"{message} ({detail})" if detail else message)


class ApprovalBlockedError(DomainError):
    """A policy rule (e.g. a secret finding) forbids approving this change."""

    def __init__(self, reasons: list[str]) -> None:
        joined = "; ".join(reasons)
        super().__init__(
            f"Approval is blocked: {joined}. Remove the secret (or ask Claude to), then approve the new diff."
        )
        self.reasons = reasons


class ApprovalChoiceRequiredError(DomainError):
    """The agent's edits overlap the developer's uncommitted edits in some files: Approve needs a choice."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        super().__init__(
            f"Claude's change overlaps your uncommitted edits in {shown}. Choose ✅ Commit with my edits "
            "(those files are committed as they are) or ✅ Leave out (nothing of those files is committed)."
        )
        self.paths = paths


class TurnInProgressError(DomainError):
    """A turn is already running for this workspace."""

    def __init__(self) -> None:
        super().__init__("Claude is still working on the previous request. Wait for it or tap ⏹ Cancel.")


class EmptyPromptError(DomainError):
    """The prompt has no text."""

    def __init__(self) -> None:
        super().__init__("The message is empty. Send a text or a voice note describing what to do.")


class MalformedUpdateError(DomainError):
    """A transport update (e.g. a Telegram Update or callback_data) does not have the expected shape; skip it."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Malformed update: {detail}")
        self.detail = detail


class PortError(VoicecoderError):
    """An adapter behind a port failed."""


class TranscriptionError(PortError):
    """Speech could not be turned into text."""


class UnsupportedAudioError(TranscriptionError):
    """The file is not audio we can decode."""

    def __init__(self, detail: str = "") -> None:
        base = "This file is not audio I can read. Send a voice note, or an mp3/m4a/wav/ogg/webm file."
        super().__init__(f"{base} ({detail})" if detail else base)


class NoSpeechError(TranscriptionError):
    """The audio holds no recognisable speech."""

    def __init__(self) -> None:
        super().__init__("🎤 I heard no speech in that recording. Try again closer to the microphone.")


class AudioTooLargeError(TranscriptionError):
    """The file exceeds the configured size limit."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"The recording is {size_bytes / 1_000_000:.1f} MB; the limit is {limit_bytes / 1_000_000:.0f} MB. "
            "Send a shorter note."
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class AudioTooLongError(TranscriptionError):
    """The recording exceeds the configured duration limit."""

    def __init__(self, duration_s: float, limit_s: float) -> None:
        super().__init__(
            f"The recording is {duration_s:.0f} s long; the limit is {limit_s:.0f} s. Send a shorter note."
        )
        self.duration_s = duration_s
        self.limit_s = limit_s


class ProviderAuthError(TranscriptionError):
    """The speech provider rejected our credentials."""

    def __init__(self, provider: str) -> None:
        super().__init__(
            f"The {provider} speech service rejected its API key. Check the key, or use another speech-to-text "
            "provider."
        )
        self.provider = provider


class ProviderRejectedError(TranscriptionError):
    """
    The speech provider refused this request for good: an unknown model, a wrong endpoint, an exhausted quota.

    Retrying the same request cannot help, so the message names the setting to check instead of saying "try again".
    """

    def __init__(self, provider: str, detail: str, fix: str = "Check the speech-to-text settings") -> None:
        super().__init__(f"The {provider} speech service refused the request: {detail.rstrip('.')}. {fix.rstrip('.')}.")
        self.provider = provider
        self.detail = detail
        self.fix = fix


class ProviderUnavailableError(TranscriptionError):
    """The speech provider is down, overloaded or rate limiting us."""

    def __init__(self, provider: str, detail: str = "", retry_after: float | None = None) -> None:
        base = f"The {provider} speech service is unavailable right now"
        if retry_after is not None:
            base += f" (retry in {retry_after:.0f} s)"
        super().__init__(f"{base}. Try again shortly{': ' + detail if detail else ''}.")
        self.provider = provider
        self.retry_after = retry_after


class ProviderTimeoutError(ProviderUnavailableError):
    """The speech provider did not answer in time."""

    def __init__(self, provider: str, timeout_s: float) -> None:
        super().__init__(provider, f"no answer within {timeout_s:.0f} s")
        self.timeout_s = timeout_s


class AgentRunError(PortError):
    """The coding agent failed to produce a result."""


class AgentTimeoutError(AgentRunError):
    """The agent ran longer than the configured timeout and was stopped."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"Claude did not finish within {timeout_s:.0f} s and was stopped. "
            "Split the task into smaller steps, or allow Claude more time."
        )
        self.timeout_s = timeout_s


class AgentNotInstalledError(AgentRunError):
    """The agent CLI binary cannot be found or started."""

    def __init__(self, binary: str) -> None:
        super().__init__(
            f"The Claude Code CLI ({binary}) is not installed. Install it with "
            "`npm install -g @anthropic-ai/claude-code`, or configure the path of the claude executable."
        )
        self.binary = binary


class WorkspaceError(PortError):
    """A git operation on the workspace failed."""


class NotARepositoryError(WorkspaceError):
    """The workspace directory is not a usable git repository."""


class WorkspaceConflictError(WorkspaceError):
    """The workspace is in a state we must not touch (e.g. paths changed under us)."""


class DeliveryError(PortError):
    """A message could not be delivered to the user."""


class StateStoreError(PortError):
    """The state store could not read or write."""


class OwnershipLostError(StateStoreError):
    """This process no longer owns the workspace (lease expired or taken over): its write was refused, unchanged."""


class UnexpectedAdapterError(PortError):
    """
    An adapter failed with an exception that is not part of its port's contract (a bug, or a third-party adapter).

    The use cases translate such exceptions into this one, so callers only ever catch `VoicecoderError`s; the
    original is chained as ``__cause__`` and logged.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"Something failed inside voicecoder ({detail}); the details are in the log.")
        self.detail = detail


class ConfigurationError(VoicecoderError):
    """A setting is missing or invalid; the message names the variable and the fix."""


class StartupError(VoicecoderError):
    """
    The service cannot start, or cannot go on, in the environment it finds.

    For example a port in use, or a webhook set while polling; the message says what to do.
    """

"""The error taxonomy.

Provider errors are classified once, at the adapter edge, into a ``ProviderError`` with an
``ErrorKind``; everything above the adapters (router, pipeline, cogs) reasons only in kinds.

    StorybotError                    every error we raise on purpose; its message is safe to show
    ├── ConfigError                  bad setting or environment variable (the CLI exits 2)
    ├── UserInputError               bad prompt, option, attachment... (shown to the user as is)
    │   ├── UnknownModelError        a model key the registry does not know
    │   ├── LimitExceeded            a quota or the server's settings stop the request
    │   └── ActionRefused            a button press that changes nothing (.busy: being made already)
    ├── ModelUnavailableError        no model in the chain can do the job right now (.retry_after)
    ├── DeliveryBlocked              the bot may not post where a story goes (a permission it lacks)
    ├── StorageError                 database problems (locked too long, cannot open...)
    │   ├── SchemaTooNewError        the file was written by a newer storybot
    │   ├── DatabaseDamaged          the file is corrupt: every command refuses it
    │   ├── DatabaseMissing          no file at DATABASE_PATH where one must exist
    │   └── BadJobRow                a jobs row that cannot be read (.salvaged: what could be)
    ├── MediaError (ValueError)      a media file does not decode, is cut short, cannot be made to fit
    │   └── ImageTooLarge            an image declares more pixels than allowed
    ├── MediaWriteError              a media file could not be written (disk full...); nothing half-written
    ├── MediaStoreError              the object storage of MEDIA_URL is unreachable or refused a request
    └── ProviderError                one failed provider call, with .kind (ErrorKind)
        ├── UnusableAnswer           the provider answered with something that cannot be used (transient)
        └── ProviderTimeout          the call did not finish within its deadline (transient)

    Terminated                       a one-shot CLI command stopped by a signal (exits 143); not ours to show
    IllegalTransition (ValueError)   a state change the domain's tables forbid: a bug, never a user's doing

The jobs' control-flow signals (Reschedule, PermanentFailure, LeaseLost) are not errors and live with
the handler contract in bot/jobs/contract.py.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.domain import GenerationJob  # an annotation only: bot.domain imports this module


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    CONTENT_POLICY = "content_policy"
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    MODEL_RETIRED = "model_retired"

    @property
    def retry_same_model(self) -> bool:
        return self in (ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT)

    @property
    def disables_model(self) -> bool:
        """Errors that mark the model unavailable for a cooldown and go straight to the fallback."""
        return self in (ErrorKind.AUTH, ErrorKind.QUOTA_EXHAUSTED, ErrorKind.MODEL_RETIRED)


# What a user reads for each kind; the model's name is filled in.
PLAIN_WORDS: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMITED: "{model} was rate-limited",
    ErrorKind.TRANSIENT: "{model} had a temporary outage",
    ErrorKind.CONTENT_POLICY: "{model} blocked the prompt under its content policy",
    ErrorKind.QUOTA_EXHAUSTED: "{model} has used up its quota",
    ErrorKind.AUTH: "{model} rejected the API key",
    ErrorKind.BAD_REQUEST: "{model} rejected the request",
    ErrorKind.MODEL_RETIRED: "{model} has been retired",
}


class StorybotError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(StorybotError):
    """A setting or environment variable is invalid. The message names it and what is allowed."""


class UserInputError(StorybotError):
    """Bad user input. The message is short, says what to fix, and is safe to show."""


class UnknownModelError(UserInputError):
    pass


class LimitExceeded(UserInputError):
    """A limit stops this request; the message names the limit and when it resets."""


class ActionRefused(UserInputError):
    """A button press that changes nothing: not allowed, not possible now, or (``busy``) being made already."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


class ModelUnavailableError(StorybotError):
    """No model that can do this job is usable now."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryBlocked(StorybotError):
    """A publisher may not post a delivery where it goes, and retrying soon cannot help (a missing
    permission). The message says what is missing, in plain words; the delivery is parked, not failed."""


class StorageError(StorybotError):
    pass


class SchemaTooNewError(StorageError):
    pass


RESTORE_HINT = "restore a backup, or move the file away to start afresh"


class DatabaseDamaged(StorageError):
    """The database file is corrupt: every command refuses it with one line instead of half-working."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the database at DATABASE_PATH is damaged ({reason}); run `storybot db check`, then "
                         f"{RESTORE_HINT}")  # fmt: skip
        self.reason = reason


class DatabaseMissing(StorageError):
    """There is no database file where DATABASE_PATH points, and the command must not create one."""


class BadJobRow(StorageError):
    """A jobs row that cannot become a GenerationJob (a payload that is not JSON, an unknown kind...).

    ``salvaged`` is the same job with its unreadable JSON columns at their defaults, when that much
    can be read (its kind is known), so a give-up hook can still mark what it was making as failed.
    """

    def __init__(self, job_id: str, reason: str, salvaged: GenerationJob | None) -> None:
        super().__init__(f"job {job_id}: its row cannot be read ({reason})")
        self.job_id = job_id
        self.reason = reason
        self.salvaged = salvaged


class MediaError(StorybotError, ValueError):
    """A media file is not what it should be: it does not decode, is truncated, or cannot be made to fit."""


class ImageTooLarge(MediaError):
    """An image declares more pixels than allowed (found from its header, before anything was decoded)."""


class MediaWriteError(StorybotError):
    """Writing a media file failed (disk full, permissions...); nothing was left at the final path."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class MediaStoreError(StorybotError):
    """The object storage that MEDIA_URL names could not be reached, refused our credentials or failed a request.

    The message is plain words naming the settings to check, never a key, a secret or the store's own reply;
    a write that raises it left nothing at the final key.
    """


class ProviderError(StorybotError):
    """One failed provider call, already classified."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        model: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        request_id: str | None = None,
        successor: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.model = model
        self.retry_after = retry_after
        self.status = status
        self.request_id = request_id
        self.successor = successor

    def plain(self) -> str:
        """The error in plain words, safe to show a user (no bodies, no keys)."""
        text = PLAIN_WORDS[self.kind].format(model=self.model or "the model")
        if self.kind is ErrorKind.CONTENT_POLICY:
            text += "; try rephrasing the scene or the prompt"
        if self.kind is ErrorKind.MODEL_RETIRED and self.successor:
            text += f"; use {self.successor} instead"
        return text

    def __repr__(self) -> str:
        return f"ProviderError({self.kind.value}, {str(self)!r}, model={self.model!r}, status={self.status})"


class UnusableAnswer(ProviderError):
    """The provider answered, but not with what it was asked for: bytes that are not the picture or clip
    they claim to be (HTML, cut short, another format, over a cap), a story of the wrong shape.

    Transient, so the router retries it and falls back like an outage (a new answer may be fine), and it
    is never stored. ``what`` ("a picture") names it in the sentence a user reads.
    """

    def __init__(
        self,
        message: str,
        *,
        what: str,
        model: str | None = None,
        request_id: str | None = None,
        kind: ErrorKind = ErrorKind.TRANSIENT,
    ) -> None:
        super().__init__(kind, message, model=model, request_id=request_id)
        self.what = what

    def plain(self) -> str:
        return f"{self.model or 'the model'} sent {self.what} that could not be used"


class ProviderTimeout(ProviderError):
    """A call that did not finish, last byte included, within its deadline (a server that stalls or drips)."""

    def __init__(self, seconds: float, *, model: str | None = None) -> None:
        super().__init__(ErrorKind.TRANSIENT, f"the call did not finish within {seconds:g} s", model=model)
        self.seconds = seconds

    def plain(self) -> str:
        return f"{self.model or 'the model'} did not answer within {self.seconds:g} s"


def plain_words(exc: BaseException) -> str:
    """What a user may read of a failure: a plain sentence chosen by the error's kind.

    Our own errors say what happened in words written for users. Anything else (an OSError naming a
    server path, a library's message quoting a request) is summed up by its kind; its details go only to
    the log.
    """
    if isinstance(exc, ProviderError):
        return exc.plain()
    if isinstance(exc, StorybotError):
        return str(exc) or "something went wrong on our side"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the server's disk is full"
    if isinstance(exc, OSError):
        return "a file on the server could not be read or written"
    if isinstance(exc, MemoryError):
        return "the server ran out of memory"
    if isinstance(exc, TimeoutError):
        return "it took too long"
    return "something went wrong on our side"


class Terminated(Exception):
    """A one-shot command was stopped by a signal before it finished (the CLI exits 143)."""


class IllegalTransition(ValueError):
    """A state change that the transition table does not allow."""

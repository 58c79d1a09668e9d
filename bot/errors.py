"""The error taxonomy.

Provider errors are classified once, at the adapter edge, into a ``ProviderError`` with an
``ErrorKind``; everything above the adapters (router, pipeline, cogs) reasons only in kinds.

    StorybotError
    ├── ConfigError            bad setting or environment variable (CLI exits 2)
    ├── UserInputError         bad prompt, option, attachment... (shown to the user as is)
    ├── UnknownModelError      a model key the registry does not know (UserInputError)
    ├── ModelUnavailableError  no model in the chain can do the job right now
    ├── StorageError           database problems (locked too long, newer schema...)
    └── ProviderError          one failed provider call, with .kind
"""

from __future__ import annotations

from enum import StrEnum


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


class ModelUnavailableError(StorybotError):
    """No model that can do this job is usable now."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(StorybotError):
    pass


class SchemaTooNewError(StorageError):
    pass


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

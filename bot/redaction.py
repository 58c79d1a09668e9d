"""Secrets out of everything we write: the forms a secret can take, and a log-record hook that masks them.

Keys and tokens come only from the environment (Settings, as SecretStr). They can still come back in an
error: echoed by a provider, by Discord or by a proxy, inside a URL (percent-encoded), inside JSON
(escaped), or with the whitespace an .env file left around them. Every secret the settings hold is
registered here when they load, and each form of it is masked in every log record (message, arguments
and traceback, whichever handler writes it) and in every error text stored or shown (``redact``).
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
MIN_SECRET_CHARS = 8  # a shorter value would mask ordinary words; no real key or token is that short


def forms_of(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a text: as set, trimmed, percent-encoded (path and form style),
    and escaped inside a JSON string."""
    core = secret.strip()
    if len(core) < MIN_SECRET_CHARS:
        return set()
    found = {core, quote(core, safe=""), quote(core), quote_plus(core), json.dumps(core)[1:-1]}
    if secret != core:
        found.add(secret)
    return {form for form in found if len(form) >= MIN_SECRET_CHARS}


class Redactor:
    def __init__(self) -> None:
        self._forms: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            known = set(self._forms)
            for secret in secrets:
                known |= forms_of(secret)
            self._forms = tuple(sorted(known, key=len, reverse=True))  # longest first: a form inside another

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


REDACTOR = Redactor()
_installed = False


def redact(text: str) -> str:
    """``text`` with every form of every registered secret masked."""
    return REDACTOR(text)


def register_secrets(secrets: Iterable[str]) -> None:
    """Mask these from now on, in every log record and every ``redact``ed text of this process."""
    REDACTOR.add(secrets)
    _install_record_hook()


def _install_record_hook() -> None:
    """Mask records as they are made, so every handler (files, stderr, pytest's) gets them masked."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)  # type: ignore[arg-type]
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging reports that itself when it emits
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = redact(text)
            if clean != text:  # the formatter prints exc_text instead of formatting the exception itself
                record.exc_text = clean
        return record

    logging.setLogRecordFactory(masked_record)

"""Secrets are masked in every form they can take, in log records whichever handler writes them, and what a
user reads of an unexpected failure is a plain sentence, never a path."""

from __future__ import annotations

import errno
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from bot.errors import UserInputError, plain_words
from bot.settings import MASK, Redactor, forms_of, register_secrets

SECRET = "sk-test/CANARY+value=="


def test_every_form_of_a_secret_is_masked() -> None:
    redactor = Redactor()
    redactor.add([f"  {SECRET}\n"])
    for form in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET), json.dumps(SECRET)[1:-1]):
        assert redactor(f"echo: <{form}> end") == f"echo: <{MASK}> end"
    assert redactor("nothing secret here") == "nothing secret here"
    assert forms_of("short") == set()  # too short to be a key: masking it would mask ordinary words


def test_log_records_are_masked_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    register_secrets([SECRET])
    log = logging.getLogger("tests.redaction")
    with caplog.at_level(logging.INFO, logger="tests.redaction"):
        log.info("the proxy said %s", quote(SECRET, safe=""))
        try:
            raise RuntimeError(f"upstream refused Bearer {SECRET}")
        except RuntimeError:
            log.exception("call failed")
    text = "\n".join(logging.Formatter("%(message)s").format(record) for record in caplog.records)
    assert "CANARY" not in text and text.count(MASK) == 2


def test_unexpected_errors_are_told_by_their_kind_without_paths() -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/srv/storybot/media/ab/cd.png")
    full = OSError(errno.ENOSPC, "No space left on device", "/srv/storybot/media/x.part")
    assert plain_words(missing) == "a file on the server could not be read or written"
    assert plain_words(full) == "the server's disk is full"
    assert plain_words(KeyError("/etc/secret")) == "something went wrong on our side"
    assert plain_words(UserInputError("the prompt is empty")) == "the prompt is empty"

"""Edges of the provider error rules that the recorded bodies in tests/fakes do not reach."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import ErrorKind
from bot.providers.google import quota_exhausted
from bot.providers.xai.http import kind_for

QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


def _violation(**fields: str) -> list[dict[str, Any]]:
    return [{"@type": QUOTA_FAILURE, "violations": [fields]}]


@pytest.mark.parametrize(
    ("message", "details", "retry_after", "spent"),
    [
        ("Quota exceeded for metric: x, limit: 0, model: m", [], 30.0, True),
        ("Quota exceeded for metric: x, limit: 0.5, model: m", [], 30.0, False),
        ("Quota exceeded for metric: x, limit: 1000, model: m", [], 30.0, False),
        ("Resource has been exhausted", _violation(quotaId="GenerateRequestsPerMinute", quotaValue="0"), 5.0, True),
        ("Resource has been exhausted", _violation(quotaId="GenerateRequestsPerMinute", quotaValue="10"), 5.0, False),
        ("You exceeded your current quota", [], None, True),
        ("You exceeded your current quota", [], 26.0, False),
    ],
    ids=["limit-0", "limit-0.5", "limit-1000", "quota-value-0", "quota-value-10", "no-retry-info", "retry-info"],
)
def test_which_gemini_429s_mean_the_quota_is_spent(
    message: str, details: list[Any], retry_after: float | None, spent: bool
) -> None:
    assert quota_exhausted(message, details, retry_after=retry_after) is spent


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (403, "Content violates usage guidelines. Failed check: SAFETY_CHECK_TYPE_BIO", ErrorKind.CONTENT_POLICY),
        (403, "Your team t has either used all available credits", ErrorKind.QUOTA_EXHAUSTED),
        (403, "The API key is blocked.", ErrorKind.AUTH),
        (400, "Bad credentials. [WKE=unauthenticated:bad-credentials]", ErrorKind.AUTH),
        (400, "Argument not supported: size", ErrorKind.BAD_REQUEST),
    ],
)
def test_xai_statuses_read_with_their_words(status: int, message: str, kind: ErrorKind) -> None:
    assert kind_for(status, message, "") is kind

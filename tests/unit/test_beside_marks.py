"""The "in progress" marks commit beside the provider call: both have ended whenever the handler goes on."""

from __future__ import annotations

import asyncio

import pytest

from bot.pipeline.flow import beside_marks


class Marks:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.started = asyncio.Event()
        self.finished = False

    async def commit(self) -> None:
        self.started.set()
        await asyncio.sleep(0.01)
        self.finished = True
        if self.fail:
            raise RuntimeError("the database refused the marks")


async def call(result: str, *, fail: bool = False, delay_s: float = 0) -> str:
    await asyncio.sleep(delay_s)
    if fail:
        raise ValueError("the provider failed")
    return result


async def test_the_calls_result_comes_back_once_the_marks_are_committed() -> None:
    marks = Marks()
    assert await beside_marks(marks.commit(), call("picture")) == "picture"
    assert marks.finished


async def test_marks_that_fail_fail_the_attempt_after_the_call() -> None:
    marks = Marks(fail=True)
    with pytest.raises(RuntimeError, match="refused"):
        await beside_marks(marks.commit(), call("picture"))
    assert marks.finished


async def test_the_calls_error_wins_over_the_marks_error() -> None:
    marks = Marks(fail=True)
    with pytest.raises(ValueError, match="provider failed"):
        await beside_marks(marks.commit(), call("picture", fail=True))
    assert marks.finished


async def test_a_cancelled_call_still_lets_the_marks_finish() -> None:
    marks = Marks()
    task = asyncio.create_task(beside_marks(marks.commit(), call("picture", delay_s=30)))
    await marks.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert marks.finished

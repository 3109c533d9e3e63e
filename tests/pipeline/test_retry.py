"""The one retry helper: retries what it is told to, gives up with the last error, polls until a value."""

from __future__ import annotations

import time

import pytest

from imagepipe.exec.retry import retry, wait_until


class Flaky(Exception):
    pass


def test_retry_until_success_and_the_last_error_raised():
    calls = []

    def twice_then_ok() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky("not yet")
        return "ok"

    assert retry(twice_then_ok, attempts=3, on=Flaky, backoff=0.01) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(Flaky, match="not yet"):
        retry(twice_then_ok, attempts=2, on=Flaky, backoff=0.01)
    assert len(calls) == 2


def test_unless_and_other_errors_are_not_retried():
    calls = []

    def refused() -> None:
        calls.append(1)
        raise Flaky("denied")

    with pytest.raises(Flaky):
        retry(refused, attempts=3, on=Flaky, unless=lambda e: "denied" in str(e), backoff=0.01)
    assert len(calls) == 1

    def broken() -> None:
        calls.append(1)
        raise KeyError("x")

    calls.clear()
    with pytest.raises(KeyError):
        retry(broken, attempts=3, on=Flaky, backoff=0.01)
    assert len(calls) == 1


def test_wait_until_returns_the_value_or_none_on_timeout():
    t0 = time.monotonic()
    assert wait_until(lambda: "v" if time.monotonic() - t0 > 0.05 else None, timeout=2, interval=0.01) == "v"
    assert wait_until(lambda: False, timeout=0.1, interval=0.02) is None
    assert wait_until(lambda: 0, timeout=0.05, interval=0.01) == 0, "0 is a value, not a miss"

"""The one retry helper, on tenacity: `retry` repeats an action that failed transiently, `wait_until` polls
until a condition holds. Both sleep with time.sleep, so a cancelling signal interrupts them at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

log = logging.getLogger("imagepipe")
T = TypeVar("T")


def retry(fn: Callable[[], T], *, attempts: int, on: type[BaseException] | tuple[type[BaseException], ...],
          unless: Callable[[BaseException], bool] = lambda _: False, backoff: float = 1.0, what: str = "") -> T:
    """fn(), again after `on` up to `attempts` times in all (waiting backoff, 2*backoff, …); an error for
    which `unless` says True is raised at once. The last error is raised as it is."""

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s attempt %d failed (%s); retrying", what or "attempt", state.attempt_number, error)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_incrementing(start=backoff, increment=backoff),
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, on) and not unless(e)),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(fn)


def wait_until(probe: Callable[[], T | None], *, timeout: float, interval: float = 0.1) -> T | None:
    """probe() until it returns something other than None or False, for at most `timeout` seconds; that
    value, or None when time ran out. Exceptions from probe propagate."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(lambda value: value is None or value is False),
        retry_error_callback=lambda _state: None,
    )
    return retrying(probe)

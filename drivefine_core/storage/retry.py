"""Retry with exponential backoff, for the transient failures of a network store."""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from drivefine_core.storage.params import StorageParams
from drivefine_core.storage.uri import StorageError

T = TypeVar("T")
log = logging.getLogger(__name__)

_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "500",
    "502",
    "503",
    "504",
}


def is_transient(exc: BaseException) -> bool:
    """Connection trouble and 5xx / throttling answers are worth another try; 4xx answers are not."""
    if isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        return str(err.get("Code", "")) in _TRANSIENT_CODES or int(status) >= 500
    return False


def with_retries(fn: Callable[[], T], what: str, params: StorageParams | None = None) -> T:
    """Call fn until it succeeds, retrying transient errors with jittered exponential backoff.

    `what` names the operation and URI in the final error.
    """
    p = params or StorageParams()
    for attempt in range(1, p.retry_attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            if attempt == p.retry_attempts:
                raise StorageError(f"{what}: failed after {attempt} tries: {exc}") from exc
            delay = min(p.retry_max_delay_s, p.retry_base_delay_s * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: concurrent writers do not retry in lockstep
            log.warning("%s: transient error (try %d/%d), retrying in %.2fs: %s", what, attempt, p.retry_attempts, delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")

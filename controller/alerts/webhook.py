"""Webhook delivery of alerts: signing (pure), retry schedule (pure), one POST (async).

A delivery is ``POST url`` with the alert's canonical JSON as the body and three headers:

* ``X-Streetlight-Timestamp: <unix seconds>``: when this attempt was signed;
* ``X-Streetlight-Signature: sha256=<hex>``: HMAC-SHA256, keyed with the shared secret
  (UTF-8), of ``<timestamp> + "." + <body bytes>``;
* ``Idempotency-Key: <key>``: the alert's idempotency key, the same on every retry.

A receiver verifies (see :func:`verify`): recompute the HMAC over the timestamp header, a
dot and the raw body, compare in constant time, reject timestamps more than
:data:`REPLAY_WINDOW_S` away from its clock, and drop an Idempotency-Key it has already
processed. Signing the timestamp with the body is what makes the replay window hold: an
old body cannot be replayed under a fresh timestamp.

:func:`deliver` never raises for HTTP or network failures; it returns a
:class:`DeliveryResult` whose ``retryable`` decides whether to try again after
:func:`retry_delay_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_ATTEMPTS",
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "backoff_s",
    "classify_status",
    "deliver",
    "retry_delay_s",
    "sign",
    "signed_headers",
    "verify",
]

SIGNATURE_HEADER = "X-Streetlight-Signature"
TIMESTAMP_HEADER = "X-Streetlight-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="
REPLAY_WINDOW_S = 300.0
"""A receiver rejects a timestamp further than this (s) from its own clock."""
MAX_ATTEMPTS = 10
"""Attempts per alert (the first included) before giving up: 9 waits, about 1.4 h in all."""
DEFAULT_TIMEOUT_S = 10.0
USER_AGENT = "streetlight-webhook/1"


# --- signing ------------------------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp_s: int | None = None) -> str:
    """Hex HMAC-SHA256 of ``body`` keyed with ``secret``.

    With ``timestamp_s`` (what the headers carry) the signed bytes are
    ``b"<timestamp_s>." + body``.
    """
    message = body if timestamp_s is None else f"{timestamp_s}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes, secret: str, *, timestamp_s: int, idempotency_key: str
) -> dict[str, str]:
    """The headers of one delivery attempt of ``body``."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: SIGNATURE_PREFIX + sign(body, secret, timestamp_s),
        IDEMPOTENCY_HEADER: idempotency_key,
    }


def verify(
    body: bytes,
    secret: str,
    *,
    signature: str,
    timestamp: str,
    now_s: float,
    window_s: float = REPLAY_WINDOW_S,
) -> bool:
    """Receiver side: whether the header values authenticate ``body`` at ``now_s``.

    ``signature`` and ``timestamp`` are the raw header values; ``now_s`` is the receiver's
    clock (unix seconds). False for a bad signature, a malformed header, or a timestamp
    more than ``window_s`` seconds away.
    """
    if not signature.startswith(SIGNATURE_PREFIX):
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now_s - ts) > window_s:
        return False
    expected = sign(body, secret, ts)
    return hmac.compare_digest(signature[len(SIGNATURE_PREFIX) :], expected)


# --- retry schedule -----------------------------------------------------------------------


def backoff_s(
    attempt: int,
    key: str = "",
    *,
    base_s: float = 10.0,
    factor: float = 2.0,
    cap_s: float = 3600.0,
    jitter: float = 0.25,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    Exponential, ``base_s x factor^(attempt-1)`` capped at ``cap_s``, minus a
    deterministic jitter of up to ``jitter`` of it drawn from ``key`` and ``attempt`` (so
    alerts failing together do not retry together, and a schedule is reproducible).
    Always in ``[(1 - jitter) x d, d]`` with ``d`` the capped delay.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if not 0.0 <= jitter < 1.0 or base_s <= 0 or factor < 1.0 or cap_s < base_s:
        raise ValueError("need base_s > 0, factor >= 1, cap_s >= base_s, 0 <= jitter < 1")
    exponent = min(attempt - 1, 1024)  # factor ** 1024 overflows long before; the cap wins
    try:
        delay = min(cap_s, base_s * factor**exponent)
    except OverflowError:
        delay = cap_s
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / float(1 << 64)
    return delay * (1.0 - jitter * u)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of one attempt.

    ``ok``: the receiver answered 2xx. ``status``: the HTTP status, None when no response
    came. ``error``: what went wrong, None when ok. ``retryable``: trying again later may
    succeed (timeouts, connection errors, 408/409/425/429/5xx). ``retry_after_s``: the
    receiver's ``Retry-After``, seconds, when it sent one.
    """

    ok: bool
    status: int | None
    error: str | None
    retryable: bool
    retry_after_s: float | None = None


_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def classify_status(status: int) -> tuple[bool, bool]:
    """(ok, retryable) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, status >= 500 or status in _RETRYABLE_4XX


def retry_delay_s(
    result: DeliveryResult, attempt: int, key: str = "", *, max_attempts: int = MAX_ATTEMPTS
) -> float | None:
    """Seconds before the next attempt after ``attempt`` attempts ended in ``result``.

    None: do not retry (delivered, a permanent failure, or ``max_attempts`` used). A
    ``Retry-After`` longer than the backoff wins.
    """
    if result.ok or not result.retryable or attempt >= max_attempts:
        return None
    delay = backoff_s(attempt, key)
    if result.retry_after_s is not None:
        delay = max(delay, result.retry_after_s)
    return delay


def _retry_after_s(value: str | None, now_s: float) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date relative to ``now_s``."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - now_s
    return max(0.0, seconds) if math.isfinite(seconds) else None


# --- delivery -----------------------------------------------------------------------------


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: str,
    *,
    timestamp_s: int,
    idempotency_key: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DeliveryResult:
    """POST ``body`` to ``url``, signed; never raises for HTTP or network failures.

    ``timestamp_s`` is the signing instant (unix seconds, from the caller's clock);
    ``idempotency_key`` must be the same on every retry of one alert. Redirects are not
    followed (a 3xx is a permanent failure: fix the URL).
    """
    headers = signed_headers(body, secret, timestamp_s=timestamp_s, idempotency_key=idempotency_key)
    try:
        response = await client.post(
            url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return DeliveryResult(False, None, f"invalid webhook URL: {exc}", retryable=False)
    except httpx.TimeoutException as exc:
        return DeliveryResult(False, None, f"timeout: {type(exc).__name__}", retryable=True)
    except httpx.TransportError as exc:
        return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}", retryable=True)
    except httpx.HTTPError as exc:
        return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}", retryable=False)
    ok, retryable = classify_status(response.status_code)
    if ok:
        return DeliveryResult(True, response.status_code, None, retryable=False)
    reason = response.reason_phrase or "error"
    return DeliveryResult(
        False,
        response.status_code,
        f"HTTP {response.status_code} {reason}",
        retryable=retryable,
        retry_after_s=_retry_after_s(response.headers.get("Retry-After"), float(timestamp_s)),
    )

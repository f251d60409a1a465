"""One JSON request to a market API, its failures turned into :mod:`errors`."""

from __future__ import annotations

import json
from typing import Any

import httpx

from reconciler.markets.errors import MarketMalformed, MarketRejected, MarketUnavailable

DEFAULT_TIMEOUT_S = 10.0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def request_json(
    client: httpx.AsyncClient,
    source: str,
    method: str,
    url: str,
    *,
    what: str,
    **kwargs: Any,
) -> Any:
    """Send one request and return its decoded JSON body; raise MarketUnavailable
    (network, timeout, 429, 5xx), MarketRejected (other 4xx) or MarketMalformed (not
    JSON). ``what`` says which call this is, for messages ("GET niv-live")."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise MarketUnavailable(source, what, "timed out; will retry") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise MarketUnavailable(source, what, f"cannot reach {url}: {reason}") from None
    status = response.status_code
    if status == 429:
        raise MarketUnavailable(
            source, what, "rate limited (HTTP 429); backing off",
            retry_after_s=_retry_after(response),
        )  # fmt: skip
    if status >= 500:
        raise MarketUnavailable(
            source, what, f"HTTP {status} from the server; will retry",
            retry_after_s=_retry_after(response),
        )  # fmt: skip
    if status in (401, 403):
        raise MarketRejected(
            source, what, f"HTTP {status}: credentials refused; check the key or login"
        )
    if status >= 400:
        raise MarketRejected(source, what, f"HTTP {status}: {response.text[:200]!r}")
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MarketMalformed(
            source, what, f"the reply is not JSON: {response.text[:120]!r}"
        ) from None

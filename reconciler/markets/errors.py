"""What can go wrong talking to a market API, in words an operator can act on.

Every error names the source and the request, and says whether waiting helps:
``MarketUnavailable`` (network, timeout, 5xx, rate limit: try again later),
``MarketRejected`` (401/403 or a refused login: fix the credentials), ``MarketMalformed``
(a reply not shaped as documented: the API changed or a proxy answered).
"""

from __future__ import annotations


class MarketError(Exception):
    """A market API call that did not give usable data."""

    def __init__(self, source: str, what: str, problem: str) -> None:
        self.source = source
        self.what = what
        self.problem = problem
        super().__init__(f"{source}: {what}: {problem}")

    @property
    def retry_later(self) -> bool:
        """Whether the same call may succeed later without anyone changing anything."""
        return False


class MarketUnavailable(MarketError):
    """Network trouble, a timeout, a 5xx or a rate limit: retry with backoff."""

    def __init__(
        self, source: str, what: str, problem: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(source, what, problem)
        self.retry_after_s = retry_after_s

    @property
    def retry_later(self) -> bool:
        return True


class MarketRejected(MarketError):
    """The API refused our credentials or request (401/403/4xx)."""


class MarketMalformed(MarketError):
    """The reply was not shaped as documented (docs/domain.md): no value from it is used."""

"""When a meter's next pass runs: every interval, and after failures an exponential backoff with a ceiling.

Shared by the gateway meter and the server meter, so both recover from an outage (the gateway's database, the hub's
API) the same way: the first failed pass retries after two intervals, then four, ... up to ``max_backoff``.
"""

from __future__ import annotations


def backoff_delay(interval: float, max_backoff: float, failures: int) -> float:
    """Seconds before the next pass after ``failures`` failed passes in a row (0: the plain interval)."""
    if failures <= 0:
        return interval
    return min(max_backoff, interval * 2 ** min(failures, 16))

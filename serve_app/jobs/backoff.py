"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "full jitter": a uniform delay in ``[0, min(cap, base * 2**(n-1))]``.

    Full jitter spreads retries of jobs that failed together (a replica died under a batch) so they do not
    come back as one herd.

    Attributes:
        base_s: The ceiling of the first retry's delay.
        cap_s: The largest ceiling.
        rng: Random source; tests pass a seeded one.
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"backoff base_s and cap_s must be >= 0, got {self.base_s} and {self.cap_s}")

    def ceiling(self, attempt: int) -> float:
        """Return the largest delay after failed attempt number ``attempt`` (1 for the first)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        # Cap the exponent too: 2**attempt overflows a float long before attempts run out otherwise.
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 62))

    def delay(self, attempt: int) -> float:
        """Return a random delay in seconds before retrying after failed attempt ``attempt``."""
        return self.rng.uniform(0.0, self.ceiling(attempt))

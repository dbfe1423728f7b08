"""Bit accounting of the team link: the token bucket every sender spends from and every receiver replays (no ROS).

A bucket gains ``bits_per_step`` B each step, up to ``bucket_depth`` bits; a packet goes out only when the bucket
holds its whole ``payload_bits``, which count every payload bit, the section headers inside the payload included.
The authentication tag and the envelope are counted apart (:func:`.security.envelope_bytes`). Receivers replay each
sender's bucket from the budget windows and drop packets that overdraw it.

Why this is its own module: the same bucket is the sender's budget and the receiver's flood check, so neither side
owns it.
"""
from __future__ import annotations

from spatial_memory_ros.comm.codec import MAX_PAYLOAD_BITS

MIN_BITS_PER_STEP, MAX_BITS_PER_STEP = 1, 1024


class TokenBucket:
    """``bits_per_step`` tokens a step, at most ``depth``; a packet is sent only if the bucket holds all of it."""

    def __init__(self, bits_per_step: int, depth: int | None = None, start_full: bool = False) -> None:
        if isinstance(bits_per_step, bool) or not MIN_BITS_PER_STEP <= int(bits_per_step) <= MAX_BITS_PER_STEP:
            raise ValueError(f"bits_per_step must be an integer in {MIN_BITS_PER_STEP}..{MAX_BITS_PER_STEP}, "
                             f"got {bits_per_step!r}")
        self.bits_per_step = int(bits_per_step)
        self.depth = default_bucket_depth(self.bits_per_step) if depth is None else int(depth)
        if not self.bits_per_step <= self.depth <= MAX_PAYLOAD_BITS:
            raise ValueError(f"bucket depth must lie in {self.bits_per_step}..{MAX_PAYLOAD_BITS} bits, got {depth}")
        self.tokens = float(self.depth if start_full else 0)
        self.window: int | None = None

    def advance(self, window: int) -> None:
        """Add the tokens of the steps since the last call (the first call adds one step's)."""
        elapsed = 1 if self.window is None else window - self.window
        if elapsed < 0:
            raise ValueError(f"budget window went back from {self.window} to {window}")
        self.tokens = min(float(self.depth), self.tokens + elapsed * self.bits_per_step)
        self.window = window

    def can_spend(self, bits: int) -> bool:
        """Whether the bucket holds ``bits``."""
        return bits <= self.tokens

    def spend(self, bits: int) -> None:
        """Take ``bits`` out; ValueError if the bucket does not hold them."""
        if not self.can_spend(bits):
            raise ValueError(f"a {bits}-bit packet does not fit the {self.tokens:.0f} bits in the bucket")
        self.tokens -= bits

    @property
    def fill(self) -> float:
        """Fraction of the depth held."""
        return self.tokens / self.depth


def default_bucket_depth(bits_per_step: int) -> int:
    """16 steps of budget, at least 256 bits, at most the largest payload."""
    return int(min(MAX_PAYLOAD_BITS, max(256, 16 * bits_per_step)))

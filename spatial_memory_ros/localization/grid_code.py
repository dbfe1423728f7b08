"""An analytic multi-module hexagonal grid code: the compact position code teammates send each other.

Each module m has a hexagonal lattice of spacing ``period_m`` (periods grow by ``ratio`` ~ 1.4 from module to
module, as measured in entorhinal cortex) and its own orientation. A position's phase in a module is its
coordinate in the lattice basis modulo 1: two numbers in [0, 1). Moving by d adds B_m^-1 d to the phases
(path integration is exact, mod 1). Decoding finds the position whose phases best match (a von Mises score summed
over modules, searched on a grid, then refined by least squares with the lattice wraps fixed).

Quantisation sends each phase as a k-bit integer q = round(phase * 2^k) mod 2^k; dequantisation is q / 2^k, so
``quantise(dequantise(q)) == q`` exactly and a round trip moves a phase by at most 2^-(k+1) of a period. A message
of M modules is 2 M k bits. The code repeats only approximately, so decoding is unique within a limited range;
``decoding_stats`` measures the error and the rate of far-off (wrong-period) decodes inside a region, and a
receiver that knows roughly where the sender is (``near``, ``radius``) decodes far more robustly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridModule:
    """One hexagonal module: field spacing (metres) and lattice orientation (radians)."""

    period: float
    orientation: float

    @property
    def basis(self) -> np.ndarray:
        """2x2 matrix whose columns are the lattice vectors (60 degrees apart, length ``period``)."""
        angles = np.array([self.orientation, self.orientation + math.pi / 3])
        return self.period * np.stack([np.cos(angles), np.sin(angles)])

    @property
    def inverse_basis(self) -> np.ndarray:
        """Maps a displacement (metres) to a phase change (periods)."""
        return np.linalg.inv(self.basis)


class GridCode:
    """``num_modules`` hexagonal modules with periods ``base_period * ratio**m`` around ``origin``."""

    def __init__(self, num_modules: int = 5, base_period: float = 1.0, ratio: float = 1.4,
                 orientations: tuple[float, ...] | None = None, origin: tuple[float, float] = (0.0, 0.0)) -> None:
        """Orientations default to steps of 13 degrees (mod 60), so no two modules share lattice axes."""
        if num_modules < 3:
            raise ValueError(f"a grid code needs at least 3 modules, got {num_modules}")
        if not (math.isfinite(base_period) and base_period > 0 and math.isfinite(ratio) and ratio > 1):
            raise ValueError(f"need base_period > 0 and ratio > 1, got {base_period}, {ratio}")
        if orientations is None:
            orientations = tuple(math.radians((13.0 * m) % 60.0) for m in range(num_modules))
        if len(orientations) != num_modules:
            raise ValueError(f"need one orientation per module ({num_modules}), got {len(orientations)}")
        self.modules = tuple(GridModule(base_period * ratio ** m, float(o)) for m, o in enumerate(orientations))
        self.origin = np.asarray(origin, dtype=float)
        self._inverse = np.stack([module.inverse_basis for module in self.modules])
        self._basis = np.stack([module.basis for module in self.modules])

    @property
    def num_modules(self) -> int:
        """Number of modules M."""
        return len(self.modules)

    @property
    def periods(self) -> np.ndarray:
        """Field spacing of each module, metres."""
        return np.array([module.period for module in self.modules])

    def message_bits(self, bits: int) -> int:
        """Bits in one position message at ``bits`` per phase: 2 phases per module."""
        return 2 * self.num_modules * int(bits)

    # ---------------------------------------------------------------------------------- encode, integrate

    def phases(self, position: np.ndarray) -> np.ndarray:
        """Phases (..., M, 2) in [0, 1) of positions (..., 2) in metres."""
        offset = _finite(position, "position") - self.origin
        return np.einsum("mij,...j->...mi", self._inverse, offset) % 1.0

    def integrate(self, phases: np.ndarray, displacement: np.ndarray) -> np.ndarray:
        """Path integration: the phases (..., M, 2) after moving by ``displacement`` (..., 2) metres."""
        change = np.einsum("mij,...j->...mi", self._inverse, _finite(displacement, "displacement"))
        return (_check_phases(phases, self.num_modules) + change) % 1.0

    def firing_rates(self, position: np.ndarray) -> np.ndarray:
        """Idealised grid-cell rate (..., M) in [0, 1] at each module's zero phase: three plane waves at 60 deg."""
        phase = self.phases(position)
        waves = [phase[..., 0], phase[..., 1], phase[..., 1] - phase[..., 0]]
        return (sum(np.cos(2 * math.pi * w) for w in waves) + 1.5) / 4.5

    # ------------------------------------------------------------------------------------------ decode

    def decode(self, phases: np.ndarray, near: tuple[float, float] | None = None, radius: float | None = None,
               extent: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """The position (2,) whose phases best match ``phases`` (M, 2).

        Searches a disc of ``radius`` around ``near`` if given (a receiver's prior), else the rectangle
        ``extent`` = (x0, y0, x1, y1), else a square of side ``default_range()`` centred on the origin.
        """
        observed = _check_phases(phases, self.num_modules)
        candidates = self._search_points(near, radius, extent)
        best = candidates[int(np.argmax(self._match(candidates, observed)))]
        return self._refine(best, observed)

    def default_range(self) -> float:
        """Side (metres) of the default search square: the largest period times the number of modules."""
        return float(self.periods[-1] * self.num_modules)

    def _search_points(self, near, radius, extent) -> np.ndarray:
        step = self.periods[0] / 8.0
        if near is not None:
            radius = float(radius) if radius is not None else self.periods[-1]
            x0, y0, x1, y1 = near[0] - radius, near[1] - radius, near[0] + radius, near[1] + radius
        elif extent is not None:
            x0, y0, x1, y1 = extent
        else:
            half = self.default_range() / 2
            x0, y0, x1, y1 = self.origin[0] - half, self.origin[1] - half, self.origin[0] + half, self.origin[1] + half
        xs, ys = np.arange(x0, x1 + step / 2, step), np.arange(y0, y1 + step / 2, step)
        points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        if near is not None:
            points = points[np.hypot(points[:, 0] - near[0], points[:, 1] - near[1]) <= radius + step]
        return points

    def _match(self, points: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Sum over modules and both axes of cos(2 pi (phase(p) - observed)): higher is a better match."""
        difference = self.phases(points) - observed
        return np.cos(2 * math.pi * difference).sum(axis=(-1, -2))

    def _refine(self, guess: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Least squares with each module's lattice wrap fixed at the guess: weights 1 / period^2."""
        raw = np.einsum("mij,j->mi", self._inverse, guess - self.origin)
        wraps = np.round(raw - observed)
        estimates = np.einsum("mij,mj->mi", self._basis, observed + wraps) + self.origin
        weights = 1.0 / self.periods ** 2
        return (weights[:, None] * estimates).sum(axis=0) / weights.sum()

    # ------------------------------------------------------------------------------------- quantise

    def quantise(self, phases: np.ndarray, bits: int) -> np.ndarray:
        """Integers (..., M, 2) in [0, 2^bits): each phase rounded to the nearest of 2^bits levels."""
        levels = _levels(bits)
        scaled = np.floor(_check_phases(phases, self.num_modules) * levels + 0.5).astype(np.int64)
        return scaled % levels

    def dequantise(self, codes: np.ndarray, bits: int) -> np.ndarray:
        """Phases (..., M, 2) from ``quantise``'s integers: q / 2^bits (exact inverse on the levels)."""
        levels = _levels(bits)
        codes = np.asarray(codes)
        if not np.issubdtype(codes.dtype, np.integer) or codes.shape[-2:] != (self.num_modules, 2):
            raise ValueError(f"codes must be integers shaped (..., {self.num_modules}, 2), got {codes.dtype} "
                             f"{codes.shape}")
        if codes.min(initial=0) < 0 or codes.max(initial=0) >= levels:
            raise ValueError(f"codes must lie in 0..{levels - 1} for {bits} bits")
        return codes.astype(float) / levels

    def pack(self, codes: np.ndarray, bits: int) -> int:
        """The codes of one position (M, 2) as a single integer of ``message_bits(bits)`` bits."""
        self.dequantise(codes, bits)
        value = 0
        for code in np.asarray(codes).reshape(-1):
            value = (value << bits) | int(code)
        return value

    def unpack(self, value: int, bits: int) -> np.ndarray:
        """Inverse of ``pack``."""
        total = self.message_bits(bits)
        if not 0 <= int(value) < (1 << total):
            raise ValueError(f"a {bits}-bit grid-code message must be an integer in [0, 2^{total}), got {value}")
        mask = (1 << bits) - 1
        codes = [(int(value) >> (bits * k)) & mask for k in range(2 * self.num_modules)][::-1]
        return np.array(codes, dtype=np.int64).reshape(self.num_modules, 2)

    def encode_position(self, position: tuple[float, float], bits: int) -> np.ndarray:
        """Quantised phases (M, 2) of a position: what a robot sends."""
        return self.quantise(self.phases(np.asarray(position, dtype=float)), bits)

    def decode_position(self, codes: np.ndarray, bits: int, near: tuple[float, float] | None = None,
                        radius: float | None = None,
                        extent: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """Position (2,) from quantised phases: what a receiver reads (see ``decode`` for the search region)."""
        return self.decode(self.dequantise(codes, bits), near=near, radius=radius, extent=extent)


def decoding_stats(code: GridCode, bits: int | None, extent: tuple[float, float, float, float],
                   samples: int = 200, seed: int = 0, near_radius: float | None = None) -> dict:
    """Decode random positions in ``extent`` after quantising to ``bits`` (None: exact phases).

    Returns mean / 95th-percentile / max error (metres) and the fraction of far-off decodes (error above half the
    smallest period). With ``near_radius`` the receiver searches only a disc of that radius around a prior that is
    off the true position by up to a quarter of that radius.
    """
    rng = np.random.default_rng([seed, 0x96C])
    x0, y0, x1, y1 = extent
    positions = rng.uniform([x0, y0], [x1, y1], size=(samples, 2))
    errors = np.empty(samples)
    for index, position in enumerate(positions):
        phases = code.phases(position)
        if bits is not None:
            phases = code.dequantise(code.quantise(phases, bits), bits)
        if near_radius is None:
            decoded = code.decode(phases, extent=extent)
        else:
            prior = position + rng.uniform(-0.25, 0.25, size=2) * near_radius / math.sqrt(2)
            decoded = code.decode(phases, near=tuple(prior), radius=near_radius)
        errors[index] = float(np.linalg.norm(decoded - position))
    far = errors > code.periods[0] / 2
    return {"bits": bits, "mean_error_m": float(errors[~far].mean()) if (~far).any() else float("nan"),
            "p95_error_m": float(np.percentile(errors, 95)), "max_error_m": float(errors.max()),
            "far_off_rate": float(far.mean()), "samples": samples}


def _levels(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise ValueError(f"bits per phase must be an integer in 1..16, got {bits!r}")
    return 1 << int(bits)


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.shape[-1:] != (2,) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (..., 2) metres, got shape {array.shape}")
    return array


def _check_phases(phases: np.ndarray, modules: int) -> np.ndarray:
    array = np.asarray(phases, dtype=float)
    if array.shape[-2:] != (modules, 2) or not np.isfinite(array).all():
        raise ValueError(f"phases must be finite (..., {modules}, 2), got shape {array.shape}")
    return array

"""What the team-link tests share: a team, its key, a robot map, the object classes, and a growing explored map."""
import numpy as np

from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.types import GridGeometry

KEY = b"0123456789abcdef-team-key"
TEAM = ["robot1", "robot2", "robot3"]
MAP = GridGeometry(0.25, 60, 60)
CLASSES = ("red", "green", "blue", "yellow", "magenta", "cyan")  # the object classes these tests' worlds hold


def make_layout() -> CommLayout:
    """The comm grid the tests use: 0.5 m cells over MAP."""
    return CommLayout.for_map(MAP, CLASSES, 0.5)


def explored_map(step: int) -> np.ndarray:
    """A map that grows by a few cells per step, with walls, as a robot's would."""
    occupancy = np.full((60, 60), -1, np.int8)
    cells = min(3600, 40 + 12 * step)
    flat = occupancy.reshape(-1)
    flat[:cells] = 0
    flat[:cells][np.arange(cells) % 7 == 0] = 100
    return occupancy

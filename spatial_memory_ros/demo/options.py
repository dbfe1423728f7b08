"""What ``spatial-memory demo`` is asked to do, and the text goal it gives the team."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spatial_memory_ros.graph import Sources


@dataclass
class DemoOptions:
    """What ``spatial-memory demo`` was asked to do."""

    duration: float = 60.0
    robots: int = 3
    seed: int = 0
    maze_size: int = 15
    world: str = "builtin"          # or "memory_maze" (sim/interface.py)
    out: Path = Path("runs")
    composed: bool = False
    real_time_factor: float = 0.0
    wall_timeout: float | None = None
    progress: bool = True
    query: str | None = None
    record: bool = False
    bev: str = "predicted"          # or "oracle", "scan", "depth" (geometric_bev from the sim's laser / depth)
    bits: int = 16                  # team link budget, bits per step
    comm: str = "ours"              # ours | broadcast | quota | none
    pose: str = "estimate"          # or "ground_truth"
    reach_radius: float = 0.6       # a robot has reached the goal within this distance of the true target (m)
    stop_at_goal: bool = False      # end the run once every robot has reached the goal (benchmarks)

    def sources(self) -> Sources:
        """The graph's BEV and pose sources for these options."""
        return Sources(bev="ground_truth/bev" if self.bev == "oracle" else "bev",
                       pose="pose" if self.pose == "estimate" else "ground_truth/pose",
                       bev_source={"scan": "scan", "depth": "depth"}.get(self.bev, "camera"))


def demo_query(options: DemoOptions) -> str:
    """The demo's text query: the target colour given, else the colour of the maze's first target."""
    if options.query:
        return options.query
    from spatial_memory_ros.sim.interface import world_layout

    return f"the {world_layout(options.world, options.maze_size, options.seed).targets[0].color} target"

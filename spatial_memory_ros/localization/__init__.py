"""Where a robot is (ROS-free): the TEM belief localizer, the grid-cell path integrator, the analytic grid code and
the stamp ordering that makes replays equal live runs."""

"""What a robot does (ROS-free): the planner, the random walker and the one robot loop that the explorer node and
every benchmark run."""

"""Worlds the robots live in (ROS-free): the built-in ray-cast maze, its cameras, drive and odometry, and the BEV
oracle that builds ground truth from a world's layout."""

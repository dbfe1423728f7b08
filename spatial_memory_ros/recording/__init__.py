"""rosbag2 files without ROS: typed writing, reading and validation of the bags that runs are recorded to."""

"""ROS-free core of spatial_memory_ros: simulation, models and algorithms (numpy/torch only)."""

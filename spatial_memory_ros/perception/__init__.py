"""What a robot sees (ROS-free): the learned camera -> BEV predictor, its data, training and metrics."""

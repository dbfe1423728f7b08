"""What a robot tells its team (ROS-free): the codec, bit budget, partner model, predictive-coding policy and
packet security of the team link."""

"""What a robot remembers (ROS-free): seed 004's spatial memory at scale, sentence semantics, persistence, and the
BEV -> map bookkeeping of one robot's memory."""

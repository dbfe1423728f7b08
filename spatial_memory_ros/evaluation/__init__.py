"""How runs are judged and shown (ROS-free): metrics, the in-process team task, renders and plots."""

"""``spatial-memory demo`` on a machine without ros2 launch: start the graph (processes.py), observe the run
(observer.py), score it (scoring.py), write the run folder (report.py); run.py ties them together."""

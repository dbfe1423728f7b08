"""Grid cells from path integration (Sorscher et al. 2019; SSM-PC's grid-cell module), in numpy and torch.

Modules, in the order a training run uses them (the layout of ganguli-lab/grid-pattern-formation):

- ``trajectories``: ``generate_trajectories``, rat-like random walks in a square box with Sorscher's statistics
  (dt 0.02 s, Rayleigh forward speed of scale 0.13 * 2 pi m/s, rotation noise 11.52 rad/s, slowdown and turn-away
  near walls) and seed 003's movement flags (speed scale and maximum, velocity smoothing, turn-noise scale, border
  region, wall slowdown, wall turn scale) in ``TrajectoryConfig``.
- ``cells``: ``PlaceCells`` (Gaussian or difference of Gaussians, softmax over cells) and ``HeadDirectionCells``
  (von Mises): the targets, and position / heading decoders.
- ``model``: two path integrators, ``VanillaRNNIntegrator`` (seed 003: ReLU RNN without bias, started from the
  place code, cross-entropy + L2 on the recurrent weights) and ``LSTMBottleneckIntegrator`` (SSM-PC / Banino et
  al.: LSTM, linear bottleneck with dropout, place and head-direction heads); ``ModelConfig``, a batch's tensors
  and its loss.
- ``scores``: ``rate_maps``, ``autocorrelograms``, ``GridScorer`` (grid scores 60 and 90 over ring masks, the
  DeepMind scorer's method).
- ``analysis``: a trained model measured: ``decoding_error_cm``, ``analyse``, ``plot_rate_maps``, ``write_report``.
- ``training``: ``train_path_integrator`` with checkpoints, resume and a seed; ``load_path_integrator`` for the
  shipped model (spatial_memory_ros/models/grid_cells.pt).

torch is imported lazily by everything that needs it, so importing these modules stays cheap.
"""

"""Tests of the in-process team task (evaluation/team_task.py): short episodes end to end, faults, determinism."""
import math

import numpy as np
import pytest

from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamEpisode, TeamTaskConfig, run_episode, task_texts


@pytest.fixture(scope="module")
def embedder() -> LabelEmbedder:
    return LabelEmbedder.synthetic()


def short(**overrides) -> TeamTaskConfig:
    settings = dict(maze_size=9, max_steps=120, strategy="ours", bits_per_step=16, seed=3)
    settings.update(overrides)
    return TeamTaskConfig(**settings)


@pytest.mark.slow
def test_a_short_episode_runs_end_to_end(embedder):
    result = run_episode(short(), embedder)
    assert 1 <= result.steps <= 120 and result.goal.startswith("the ") and result.goal.endswith(" target")
    assert 0.0 < result.coverage <= 1.0 and 0.0 < result.map_iou <= 1.0
    assert 0.0 < result.bits_used_per_step <= 16.0 and result.packets_sent > 0 and result.drops == 0
    assert math.isfinite(result.partner_error_m) and result.partner_error_m < 3.0
    assert len(result.reached_step) == 3
    assert result.success == all(step is not None for step in result.reached_step)
    assert set(result.to_dict()) >= {"success", "time_to_success_s", "map_iou", "partner_error_m"}


@pytest.mark.slow
def test_the_link_shares_sightings_and_maps(embedder):
    episode = TeamEpisode(short(max_steps=100, bits_per_step=128), embedder)
    episode.run()
    heard = [len(r.comm.team_layer.nonzero()[0]) for r in episode.robots]
    assert all(count > 0 for count in heard)
    assert all(r.comm.stats.packets_received > 0 for r in episode.robots)


@pytest.mark.slow
def test_faults_packet_loss_and_a_robot_dropping_out_do_not_crash(embedder):
    result = run_episode(short(packet_loss=0.5, dropout_step=40, strategy="broadcast"), embedder)
    assert result.dropout_step == 40 and result.drops == 0
    episode = TeamEpisode(short(max_steps=60, dropout_step=10), embedder)
    episode.run()
    assert not episode.robots[-1].active
    assert episode.world.distance_travelled(2) < 1.0 + 0.1  # it stopped at step 10


def test_no_communication_uses_no_bits_and_knows_no_partner(embedder):
    result = run_episode(short(strategy="none", max_steps=60), embedder)
    assert result.bits_used_per_step == 0.0 and result.packets_sent == 0
    assert result.partner_error_m > 0.5


@pytest.mark.slow
def test_same_seed_same_episode(embedder):
    first, second = run_episode(short(max_steps=80), embedder), run_episode(short(max_steps=80), embedder)
    assert first.reached_step == second.reached_step and first.coverage == second.coverage
    assert first.bits_used_per_step == second.bits_used_per_step


def test_configs_and_embedder_say_what_is_wrong(embedder):
    with pytest.raises(ValueError, match="packet_loss"):
        TeamTaskConfig(packet_loss=1.0)
    with pytest.raises(ValueError, match="precomputed"):
        embedder.embed("a purple elephant")
    assert embedder.embed(task_texts()).shape == (len(task_texts()), 384)
    assert np.allclose(embedder.embed("the red target"), embedder.embed("red target"))


@pytest.mark.parametrize("retry", [False, True])
def test_a_robot_arrived_where_the_target_is_not_looks_again_only_with_retry(embedder, retry):
    episode = TeamEpisode(short(retry_false_arrivals=retry), embedder)
    member = episode.robots[0]
    start = episode.world.true_pose(0)
    assert math.hypot(start.x - episode.target.x, start.y - episode.target.y) > episode.config.reach_radius
    label = f"{episode.target.color} target"
    member.robot.take_answer(np.array([[start.x, start.y], [start.x, start.y]]), [label, label])
    member.robot.arrived = True  # it believes it is at the goal, where the target is not
    episode.step()
    assert member.reached_step is None
    if retry:
        assert not member.robot.arrived and [place[:2] for place in member.robot.not_here] == [pytest.approx((start.x, start.y))]
        assert episode.result(0.0).false_arrivals == 1
    else:
        assert member.robot.arrived and member.robot.status == "arrived" and member.robot.not_here == []
        assert episode.result(0.0).false_arrivals == 0

"""Tests of one robot's end of the team link (comm/link.py TeamComm) and what it ties together: the token bucket
(comm/budget.py), pose prediction (comm/partners.py), the sending strategies (comm/policy.py) and the team map."""
import math

import numpy as np
import pytest

from comm_samples import KEY, MAP, TEAM, explored_map, make_layout
from spatial_memory_ros.comm.budget import TokenBucket
from spatial_memory_ros.comm.codec import FREE_CELL, UNKNOWN_CELL, WALL_CELL, decode_message, encode_message
from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.link import CommConfig, TeamComm, coarse_states
from spatial_memory_ros.comm.partners import PoseAnchor, PredictionModel, Sighting
from spatial_memory_ros.types import Pose2D


@pytest.fixture(scope="module")
def layout() -> CommLayout:
    return make_layout()


def test_coarse_states_of_a_finer_map(layout):
    occupancy = np.full((60, 60), -1, np.int8)
    occupancy[0:2, 0:2] = 0
    occupancy[0:2, 2:4] = 100
    occupancy[2, 0] = 0
    states = coarse_states(occupancy, layout.geometry).reshape(30, 30)
    assert states[0, 0] == FREE_CELL and states[0, 1] == WALL_CELL and states[1, 0] == FREE_CELL
    assert states[5, 5] == UNKNOWN_CELL
    with pytest.raises(ValueError):
        coarse_states(np.zeros((61, 59), np.int8), layout.geometry)


def test_a_tie_between_wall_and_floor_is_a_wall_only_at_the_default_wall_share(layout):
    occupancy = np.full((60, 60), -1, np.int8)
    occupancy[0:2, 0:2] = 0
    occupancy[0, 0:2] = 100   # a wall face that fills half the comm cell
    occupancy[0:2, 2:4] = 100
    occupancy[1, 3] = 0       # three of four wall cells
    assert coarse_states(occupancy, layout.geometry)[[0, 1]].tolist() == [WALL_CELL, WALL_CELL]
    assert coarse_states(occupancy, layout.geometry, wall_share=0.6)[[0, 1]].tolist() == [FREE_CELL, WALL_CELL]


def test_token_bucket_gains_b_per_step_up_to_its_depth():
    bucket = TokenBucket(4, depth=256)
    bucket.advance(0)
    assert bucket.tokens == 4
    bucket.advance(10)
    assert bucket.tokens == 44 and not bucket.can_spend(45)
    with pytest.raises(ValueError):
        bucket.spend(45)
    bucket.advance(10_000)
    assert bucket.tokens == 256
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(2000)


@pytest.mark.parametrize("strategy", ["ours", "broadcast", "quota"])
@pytest.mark.parametrize("bits_per_step", [4, 64])
def test_senders_never_overdraw_the_budget_and_payload_bits_are_exact(layout, strategy, bits_per_step):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=bits_per_step, strategy=strategy))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=bits_per_step, strategy=strategy))
    spent, steps = 0, 200
    for step in range(steps):
        tokens_before = min(sender.bucket.depth, sender.bucket.tokens + bits_per_step)
        pose = Pose2D(2.0 + 0.04 * step, 3.0 + 0.02 * step, 0.3)
        sightings = [Sighting("red target", 5.5, 6.5)] if step > 30 else []
        packet = sender.make_packet(step, pose, 0.5, explored_map(step), sightings)
        if packet is None:
            continue
        assert packet.payload_bits <= tokens_before
        assert len(packet.payload) == -(-packet.payload_bits // 8)
        message = decode_message(packet.payload, packet.payload_bits, layout)
        assert encode_message(message, layout) == (packet.payload, packet.payload_bits)
        spent += packet.payload_bits
        assert receiver.receive(packet, step) is not None
    assert spent <= bits_per_step * steps
    assert sender.stats.payload_bits_sent == spent
    assert receiver.stats.payload_bits_received == spent and not receiver.stats.drops
    if strategy == "quota":
        assert sender.stats.packets_sent <= 20


@pytest.mark.parametrize("strategy", ["ours", "broadcast", "quota"])
@pytest.mark.parametrize("bits_per_step", [1, 4, 16, 64])
def test_no_sender_ever_exceeds_its_token_bucket_under_any_mix_of_news(layout, strategy, bits_per_step):
    """Issue 15, attack 4: the budget is a hard limit. Random news (bursts of sightings, the goal among them,
    growing maps, jumps in pose), steps that a late timer skips: at every step the bits sent since the first call
    are at most B x the windows passed, each packet at most what the bucket held, and critical news goes first."""
    rng = np.random.default_rng(bits_per_step * 7 + len(strategy))
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=bits_per_step, strategy=strategy))
    sender.goal_label = "red target"
    labels = ["red target", "green target", "blue target", "yellow target", "cyan target", "a chair"]
    step, spent, goals_sent, first_step, x, y = 0, 0, set(), None, 5.0, 5.0
    for _ in range(150):
        step += int(rng.choice([1, 1, 1, 2, 5]))
        first_step = step if first_step is None else first_step
        held = min(sender.bucket.depth, sender.bucket.tokens + bits_per_step * (
            step - sender.bucket.window if sender.bucket.window is not None else 1))
        sightings = [Sighting(str(rng.choice(labels)), float(rng.uniform(0, 15)), float(rng.uniform(0, 15)))
                     for _ in range(int(rng.choice([0, 0, 0, 1, 8])))]
        x, y = (rng.uniform(0, 15, 2) if rng.random() < 0.05 else np.clip((x, y) + rng.normal(0, 0.1, 2), 0, 15))
        pose = Pose2D(float(x), float(y), 0.3)
        goals_before = {key for key in sender.sightings if key[0] == 0} - goals_sent
        packet = sender.make_packet(step, pose, float(rng.uniform(0, 1)), explored_map(step), sightings)
        if packet is not None:
            assert packet.payload_bits <= held
            spent += packet.payload_bits
            sent = {(s.class_index, s.cell) for s in decode_message(packet.payload, packet.payload_bits,
                                                                     layout).sightings}
            if strategy == "ours" and goals_before:  # critical news first: a waiting goal sighting goes now
                assert sent & goals_before
            goals_sent |= sent
        assert spent == sender.stats.payload_bits_sent <= bits_per_step * sender.budget_steps
    assert spent > 0 and sender.budget_steps == step - first_step + 1


def test_no_communication_sends_nothing(layout):
    silent = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=128, strategy="none"))
    assert all(silent.make_packet(s, Pose2D(1, 1, 0), 0.5, explored_map(s)) is None for s in range(50))


# ------------------------------------------------------------------------------------ partner model, policy


def test_prediction_path_integrates_the_last_motion_and_widens_with_time():
    model = PredictionModel(dt=0.1, motion_tau=1.5, diffusion=0.25)
    anchor = PoseAnchor(2.0, 2.0, 0.0, 0.5, window=10, sd=0.05, sequence=1)
    extent = (0.0, 0.0, 15.0, 15.0)
    x1, y1, sd1 = model.predict(anchor, 20, extent)
    x2, y2, sd2 = model.predict(anchor, 60, extent)
    assert 2.0 < x1 < x2 < 2.0 + 0.5 * 1.5 and y1 == y2 == 2.0
    assert 0.05 < sd1 < sd2
    assert model.predict(anchor, 10, extent)[:2] == (2.0, 2.0)


def test_receiver_tracks_the_sender_and_decodes_exactly_what_the_sender_predicted(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=16))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=16))
    rng = np.random.default_rng(4)
    x, y, theta, errors = 3.0, 3.0, 0.0, []
    for step in range(400):
        theta += rng.normal(0, 0.1)
        x = float(np.clip(x + 0.05 * math.cos(theta), 0.5, 14.5))
        y = float(np.clip(y + 0.05 * math.sin(theta), 0.5, 14.5))
        packet = sender.make_packet(step, Pose2D(x, y, theta), 0.5, explored_map(0))
        if packet is not None:
            decoded = receiver.receive(packet, step)
            if decoded.anchor is not None:
                mine = sender._my_anchors[-1][0]
                assert (decoded.anchor.x, decoded.anchor.y) == pytest.approx((mine.x, mine.y), abs=1e-9)
        if step > 50:
            state = receiver.partner_states(step)[0]
            errors.append(math.hypot(state.x - x, state.y - y))
    assert np.mean(errors) < 0.6
    assert sender.stats.payload_bits_sent <= 16 * 400


def test_a_lost_delta_reference_leaves_the_pose_unresolved_until_a_grid_code_arrives(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    outcomes = []
    for step in range(300):
        packet = sender.make_packet(step, Pose2D(2 + 0.03 * step, 4.0, 0.0), 0.3, explored_map(0))
        if packet is None or (10 <= step < 60):  # everything in between is lost
            continue
        decoded = receiver.receive(packet, step)
        if decoded.message.pose is not None:
            outcomes.append((decoded.message.pose.delta is None, decoded.anchor is not None))
    assert any(not resolved for _, resolved in outcomes)           # a delta whose reference was lost
    assert outcomes[-1][1]                                          # tracking recovered
    assert any(is_grid and resolved for is_grid, resolved in outcomes[1:])


def test_critical_news_goes_out_even_when_the_threshold_holds_everything_else_back(layout):
    config = CommConfig(bits_per_step=4, threshold=1e9)
    sender = TeamComm("robot1", TEAM, KEY, layout, config)
    sender.goal_label = "red target"
    packets = [sender.make_packet(s, Pose2D(3, 3, 0), 0.0, explored_map(s)) for s in range(60)]
    assert all(p is None for p in packets) and sender.bucket.tokens == 240  # held back, not yet full
    receiver = TeamComm("robot2", TEAM, KEY, layout, config)
    for step in range(60, 64):
        packet = sender.make_packet(step, Pose2D(3, 3, 0), 0.0, explored_map(step),
                                    [Sighting("red target", 7.3, 8.1)])
        if packet is not None:
            decoded = receiver.receive(packet, step)
            assert [s.label for s in decoded.sightings] == ["red target"]
            assert decoded.sightings[0].x == pytest.approx(7.3, abs=0.07)
            break
    else:
        pytest.fail("the target sighting was never sent")


def test_full_broadcast_at_a_low_budget_falls_behind_in_arrival_order(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=4, strategy="broadcast"))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=4, strategy="broadcast"))
    for step in range(150):
        sightings = [Sighting("red target", 7.3, 8.1)] if step >= 20 else []
        packet = sender.make_packet(step, Pose2D(3, 3, 0), 0.0, explored_map(step), sightings)
        if packet is not None:
            receiver.receive(packet, step)
    assert not receiver.sightings           # the sighting waits behind hundreds of queued cells
    assert len(sender._fifo) > 100


def test_team_map_fills_unknown_cells_only(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=256))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=256))
    theirs = np.full((60, 60), -1, np.int8)
    theirs[:8, :8] = 0
    theirs[0, :8] = 100
    for step in range(20):
        packet = sender.make_packet(step, Pose2D(1, 1, 0), 0.0, theirs)
        if packet is not None:
            receiver.receive(packet, step)
    mine = np.full((60, 60), -1, np.int8)
    mine[4, 4] = 100  # my own view wins where I have looked
    team = receiver.team_occupancy(mine, MAP)
    assert team[0, 3] == 100 and team[5, 5] == 0 and team[4, 4] == 100 and team[30, 30] == -1


def test_configs_say_what_is_wrong(layout):
    with pytest.raises(ValueError, match="strategy"):
        CommConfig(strategy="shout")
    with pytest.raises(ValueError, match="bits_per_step"):
        CommConfig(bits_per_step=0)
    for share in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="wall_share"):
            CommConfig(wall_share=share)
    with pytest.raises(ValueError, match="including this robot"):
        TeamComm("robot7", TEAM, KEY, layout)

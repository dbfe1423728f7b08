"""Benchmark of the team link between hosts (issue 14): what crosses the air, and whether it fits a thin link.

Every robot is a host of its own (a network namespace bridged to the others, test/netns.py, built and torn down
here); bytes are read on the bridge's port to each host (interface counters, Ethernet header taken off: IP bytes),
so everything a host put on the link counts: frames, IP/UDP headers, ARP, discovery, keep-alives, acks.

1. Engine overhead for the same frames (2 hosts, each sending a ``--frame-bytes`` frame every ``--period`` s
   for ``--duration`` s and receiving the other's): plain UDP, Zenoh 1.x in peer mode with configured endpoints and
   multicast and gossip scouting off (over UDP and over TCP, default lease 10 s, and over UDP with a 60 s lease),
   and DDS (Fast DDS, rclpy, a best-effort TeamPacket topic, discovery over the bridge, UDPv4 only). This decides
   the transport.
2. The team on the air: three robots (test/link_robot.py: a TeamComm behind comm/transport.py's FrameLink) on three
   hosts with a 400 bit/s tbf share each (1,200 bit/s for the team) and 10/20/30/50% random loss (iptables, on
   each receiver): bytes on the bridge per robot against its share, packets heard, drops. Beside it, DDS carrying
   /team/packets across the same hosts at the same packet rate, unconstrained and with the same share and loss.
3. The team task (evaluation/team_task.py, in process) on >= 20 shared seeds, each robot's packets sent as frames
   through the same FrameLink, paced to a 400 bit/s air share (IP/UDP headers counted) with 20% loss per
   receiver, against the same seeds unconstrained (a packet every step, no loss), at 16 bits per step.
4. Faults: robot2 cut off for 30 s and joined again, robot3 rebooted (its sequence restarts): seconds until
   partners are heard again, and what was dropped.
5. The full ROS stack across hosts (``--parts stack``, test/team_hosts.py): the simulated team with the simulator on
   a host of its own and each robot's whole stack (memory, localizer, explorer, team_comm transport:=udp) on its own
   host, the sim reaching the robots over an uncounted control channel and only the link's frames on the radio
   (400 bit/s tbf, 20% loss), against the same seeds with the whole graph in one host (DDS link, unconstrained):
   team success and time to goal (both robots within 0.6 m of the target named by the demo's query), bytes on the
   radio and on the control channel. ``--stack-seeds`` (3), ``--stack-robots`` (2), 9x9 built-in maze, oracle BEV,
   at most ``--stack-duration`` (60) sim s, ended at the goal.

Writes benchmarks/results/link.json and prints the tables. Needs root, ip, tc, iptables (make setup-net) and
eclipse-zenoh (pip) for the Zenoh rows (left out, and said so, without it).
  .venv/bin/python benchmarks/link.py [--duration 30] [--seeds 20] [--jobs 2] [--parts air task faults stack] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "link.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

PORT = 7447
SHARE_BPS = 400


# ------------------------------------------------------------------------------------------ peer (in a host)

def run_peer(spec: dict) -> dict:
    """Inside a host: send a frame of ``size`` bytes every ``period`` s for ``duration`` s through ``engine`` to
    the peer, count what arrives. Returns {sent, received}."""
    engine, size, period, duration = spec["engine"], spec["size"], spec["period"], spec["duration"]
    frame = bytes([spec["index"]]) + bytes(size - 1)
    received = []
    if engine == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((spec["bind"], PORT))
        sock.settimeout(0.05)

        def send():
            sock.sendto(frame, (spec["peer"], PORT))

        def poll():
            try:
                received.append(sock.recv(2048))
            except (socket.timeout, OSError):
                pass
        close = sock.close
    elif engine.startswith("zenoh"):
        import zenoh
        proto = "tcp" if engine == "zenoh-tcp" else "udp"
        config = zenoh.Config()
        config.insert_json5("mode", '"peer"')
        config.insert_json5("listen/endpoints", json.dumps([f"{proto}/{spec['bind']}:{PORT}"]))
        if spec["index"] == 1:  # one side connects, the other listens: one session between them
            config.insert_json5("connect/endpoints", json.dumps([f"{proto}/{spec['peer']}:{PORT}"]))
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("scouting/gossip/enabled", "false")
        if spec.get("lease_ms"):
            config.insert_json5("transport/link/tx/lease", str(spec["lease_ms"]))
        session = zenoh.open(config)
        own = spec["index"]
        subscriber = session.declare_subscriber(  # Zenoh also hands a peer its own publications: not counted
            "team/frames", lambda sample: received.append(1) if sample.payload.to_bytes()[0] != own else None)
        publisher = session.declare_publisher("team/frames")

        def send():
            publisher.put(frame)

        def poll():
            time.sleep(0.05)

        def close():
            subscriber.undeclare()
            session.close()
    elif engine == "dds":
        import rclpy
        from spatial_memory_ros.msg import TeamPacket
        from spatial_memory_ros.nodes.team_comm import PACKET_QOS
        rclpy.init()
        node = rclpy.create_node(f"peer{spec['index']}")
        publisher = node.create_publisher(TeamPacket, "/team/packets", PACKET_QOS)
        node.create_subscription(TeamPacket, "/team/packets",
                                 lambda msg: received.append(1) if msg.sender != f"robot{spec['index']}" else None,
                                 PACKET_QOS)
        message = TeamPacket(sender=f"robot{spec['index']}", payload_bits=8 * max(1, size - 16))
        message.payload = list(bytes(max(1, size - 16)))
        message.auth_tag = list(bytes(8))

        def send():
            message.sequence += 1
            message.header.stamp = node.get_clock().now().to_msg()
            publisher.publish(message)

        def poll():
            rclpy.spin_once(node, timeout_sec=0.05)

        def close():
            node.destroy_node()
            rclpy.shutdown()
    else:
        raise ValueError(f"unknown engine {engine}")
    sent, start = 0, time.monotonic()
    next_send = start + spec.get("offset", 0.0)
    for _ in range(int(duration / 0.02) + 100):  # bounded in count and in time
        now = time.monotonic()
        if now - start >= duration:
            break
        if now >= next_send:
            send()
            sent += 1
            next_send += period
        poll()
    close()
    return {"sent": sent, "received": len(received)}


# ------------------------------------------------------------------------------------------ measurements

def _peer_command(spec: dict) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--peer", json.dumps(spec)]


def _dds_env(domain: int) -> dict:
    return dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
                ROS_LOCALHOST_ONLY="0", FASTDDS_BUILTIN_TRANSPORTS="UDPv4")


def engine_overhead(engine: str, duration: float, size: int, period: float, lease_ms: int | None = None,
                    hosts: int = 2, rate_bits: int | None = None, loss: float = 0.0) -> dict:
    """Bytes on the bridge per host for one engine carrying the same frames."""
    import netns
    with tempfile.TemporaryDirectory() as tmp, netns.Hosts(hosts, rate_bits=rate_bits, loss=loss) as net:
        env = None
        if engine == "dds":
            env = _dds_env(net.subnet)
            for k in range(hosts):
                net.run(k, ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"])
        procs = []
        for k in range(hosts):
            spec = {"engine": engine, "index": k, "bind": net.address(k), "peer": net.address((k + 1) % hosts),
                    "size": size, "period": period, "duration": duration, "lease_ms": lease_ms,
                    "offset": 0.1 * k, "out": f"{tmp}/peer{k}.json"}
            procs.append(net.popen(k, _peer_command(spec), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE))
        results = []
        for k, proc in enumerate(procs):
            _, err = proc.communicate(timeout=duration + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"{engine} peer {k} failed: {err.decode()[-1500:]}")
            results.append(json.loads(Path(f"{tmp}/peer{k}.json").read_text()))
        counters = [net.bridge_counters(k) for k in range(hosts)]
    sent = sum(r["sent"] for r in results)
    ip_bytes = sum(c["ip_bytes"] for c in counters)
    return {"engine": engine, "lease_ms": lease_ms, "hosts": hosts, "frame_bytes": size, "period_s": period,
            "duration_s": duration, "rate_bits": rate_bits, "loss": loss, "frames_sent": sent,
            "frames_received": sum(r["received"] for r in results),
            "ip_bytes_per_host_per_s": ip_bytes / hosts / duration,
            "bits_per_host_per_s": 8 * ip_bytes / hosts / duration,
            "ip_bytes_per_frame": ip_bytes / sent if sent else None,
            "ip_packets": sum(c["packets"] for c in counters)}


def team_on_air(duration: float, loss: float, link_bps: float = SHARE_BPS, seed: int = 0) -> dict:
    """Three robots on three hosts, each with a ``link_bps`` tbf share and ``loss`` on its input."""
    import netns
    from link_robot import robot_command
    with tempfile.TemporaryDirectory() as tmp, netns.Hosts(3, rate_bits=link_bps, loss=loss) as net:
        procs = [net.popen(k, robot_command(net, k, duration, f"{tmp}/r{k}.json", link_bps=link_bps, seed=seed))
                 for k in range(3)]
        for proc in procs:
            proc.wait(timeout=duration + 120)
        counters = [net.bridge_counters(k) for k in range(3)]
        reports = [json.loads(Path(f"{tmp}/r{k}.json").read_text()) for k in range(3)]
    robots = []
    for report, counter in zip(reports, counters):
        link = report["link"]
        robots.append({"robot": report["robot"], "bridge_ip_bytes": counter["ip_bytes"],
                       "bridge_bits_per_s": 8 * counter["ip_bytes"] / report["elapsed_s"],
                       "own_count_air_bytes": link["air_bytes_sent"], "frames_sent": link["frames_sent"],
                       "payload_bits_sent": link["payload_bits_sent"], "packets_accepted": link["packets_accepted"],
                       "drops": link["drops"], "cells_known_from_team": report["cells_known_from_team"]})
    frames = sum(r["frames_sent"] for r in robots)
    return {"loss": loss, "share_bps": link_bps, "duration_s": duration, "robots": robots,
            "max_bits_per_s": max(r["bridge_bits_per_s"] for r in robots),
            "delivered": sum(r["packets_accepted"] for r in robots) / (2 * frames) if frames else 0.0}


def task_success(seeds: int, jobs: int, quick: bool) -> dict:
    """Team task success with the link constrained (400 bit/s air share, 20% loss) and unconstrained."""
    import multiprocessing

    import team as team_bench  # benchmarks/team.py: the same embeddings and worker
    base = {"strategy": "ours", "bits_per_step": 16, **({"maze_size": 9, "max_steps": 600} if quick else {})}
    conditions = {"unconstrained": {}, "400 bit/s air, 20% loss": {"link_bits_per_second": SHARE_BPS,
                                                                   "packet_loss": 0.2}}
    tasks = [{**base, **extra, "seed": team_bench.FIRST_SEED + i} for i in range(seeds)
             for extra in conditions.values()]
    table = team_bench.embedding_table()
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=team_bench._init_worker,
                                                   initargs=(table,)) as pool:
        episodes = pool.map(team_bench._run, tasks)
    rows = {}
    for name, extra in conditions.items():
        mine = [e for e, t in zip(episodes, tasks) if all(t.get(k) == v for k, v in extra.items())
                and (extra or "link_bits_per_second" not in t)]
        wins = [e["success"] for e in mine]
        times = [e["time_to_success_s"] for e in mine if e["success"]]
        air = [e["air_bits_per_s"] for e in mine if e.get("air_bits_per_s") is not None]
        rows[name] = {"episodes": len(mine), "success": sum(wins) / len(mine),
                      "mean_time_to_success_s": sum(times) / len(times) if times else None,
                      "air_bits_per_robot_per_s": max(air) if air else None,
                      "packets_sent": sum(e["packets_sent"] for e in mine) / len(mine)}
    return {"settings": base, "seeds": seeds, "first_seed": team_bench.FIRST_SEED, "conditions": rows,
            "episodes": episodes}


def faults(duration: float = 50.0, cut_at: float = 8.0, cut_s: float = 30.0, off_at: float = 12.0) -> dict:
    """Three hosts at 400 bit/s and 20% loss; robot2 cut off for ``cut_s`` from ``cut_at``; robot3 stopped at
    ``off_at`` and started again at once (a reboot: its sequence restarts). Seconds until partners are heard again."""
    import netns
    from link_robot import robot_command
    with tempfile.TemporaryDirectory() as tmp, netns.Hosts(3, rate_bits=SHARE_BPS, loss=0.2) as net:
        start = time.time()
        procs = [net.popen(k, robot_command(net, k, duration, f"{tmp}/r{k}.json")) for k in range(2)]
        procs.append(net.popen(2, robot_command(net, 2, off_at, f"{tmp}/r2.json")))
        time.sleep(max(0.0, start + cut_at - time.time()))
        net.partition(1, True)
        procs[2].wait(timeout=60)
        restart = time.time()
        procs.append(net.popen(2, robot_command(net, 2, duration - (restart - start), f"{tmp}/r2b.json")))
        time.sleep(max(0.0, start + cut_at + cut_s - time.time()))
        net.partition(1, False)
        rejoin = time.time()
        for proc in procs:
            proc.wait(timeout=duration + 120)
        r1, r2, r3, r3b = (json.loads(Path(f"{tmp}/{name}.json").read_text()) for name in ("r0", "r1", "r2", "r2b"))

    def first_after(report, sender, t):
        times = [when for when, who, _ in report["accepted"] if who == sender and when >= t]
        return round(min(times) - t, 2) if times else None
    alone = [s for s in r2["samples"] if start + cut_at + 4 <= s[0] <= rejoin - 0.5]
    return {"partition_s": cut_s, "robot2_alone_while_cut": bool(alone) and all(not h for _, h in alone),
            "rejoin_s": {"robot1 hears robot2": first_after(r1, "robot2", rejoin),
                         "robot2 hears robot1": first_after(r2, "robot1", rejoin),
                         "robot2 hears robot3": first_after(r2, "robot3", rejoin),
                         "robot3 hears robot2": first_after(r3b, "robot2", rejoin)},
            "reboot_s": {"process start to robot1 hearing robot3": first_after(r1, "robot3", r3b["start"]),
                         "process start to robot2 hearing robot3": first_after(r2, "robot3", max(r3b["start"],
                                                                                                  rejoin))},
            "restarted_sequence_accepted": min((q for _, who, q in r1["accepted"] if who == "robot3" and _ >=
                                                r3b["start"]), default=None),
            "drops": {r["robot"] + ("'" if r is r3b else ""): r["link"]["drops"] for r in (r1, r2, r3, r3b)}}


# ------------------------------------------------------------------------------------------ main

def full_stack(seeds: int, robots: int, duration: float) -> dict:
    """Part 5: the simulated team's whole ROS graph split over hosts vs in one host, on the same seeds."""
    from team_hosts import run_team_on_hosts

    rows, runs = {}, []
    for hosts in (True, False):
        name = f"{robots} robots on {robots + 1} hosts, {SHARE_BPS} bit/s, 20% loss" if hosts else "one host, DDS link"
        episodes = []
        for seed in range(seeds):
            started = time.time()
            with tempfile.TemporaryDirectory(prefix="smr_stack_") as tmp:
                try:
                    result = run_team_on_hosts(Path(tmp), robots=robots, seed=seed, maze_size=9, duration=duration,
                                               rate_bits=SHARE_BPS, loss=0.2, bev="oracle", stop_at_goal=True,
                                               wall_timeout=max(240.0, 8 * duration), hosts=hosts)
                except RuntimeError as exc:
                    result = {"error": str(exc), "goal": {"team_success": False}, "per_robot": {}}
            per = result["per_robot"]
            episode = {"hosts": hosts, "seed": seed, "error": result.get("error"),
                       "success": result["goal"].get("team_success", False),
                       "time_to_success_s": result["goal"].get("time_to_success_s"),
                       "sim_seconds": result.get("sim_seconds"), "wall_seconds": round(time.time() - started, 1),
                       "radio_ip_bytes": {r: e.get("radio", {}).get("ip_bytes") for r, e in per.items()},
                       "air_bytes_counted": {r: (e.get("comm_stats") or {}).get("wire_bytes_sent")
                                             for r, e in per.items()},
                       "control_bytes": {r: e.get("control") for r, e in per.items()},
                       "radio_guard_drops": {r: e.get("radio_guard_drops") for r, e in per.items()},
                       "link_state": {r: (e.get("comm_stats") or {}).get("link_state") for r, e in per.items()}}
            print(f"  {name}, seed {seed}: {'solved in ' + str(episode['time_to_success_s']) + ' sim s' if episode['success'] else 'not solved'}"
                  f" ({episode['wall_seconds']} wall s){' ERROR ' + episode['error'] if episode['error'] else ''}")
            episodes.append(episode)
        times = [e["time_to_success_s"] for e in episodes if e["success"]]
        rows[name] = {"episodes": len(episodes), "success": sum(e["success"] for e in episodes) / len(episodes),
                      "mean_time_to_success_s": round(sum(times) / len(times), 2) if times else None,
                      "errors": sum(e["error"] is not None for e in episodes)}
        runs += episodes
    return {"settings": {"robots": robots, "maze_size": 9, "world": "builtin", "bev": "oracle",
                         "max_sim_seconds": duration, "bits_per_step": 16, "stop_at_goal": True},
            "conditions": rows, "episodes": runs}


def _print_overhead(rows: list[dict]) -> None:
    print(f"\n{'engine':<22}{'frames':>8}{'got':>6}{'IP B/frame':>12}{'bit/s/host':>12}")
    for r in rows:
        name = r["engine"] + (f" lease {r['lease_ms'] // 1000}s" if r.get("lease_ms") else "")
        if r.get("rate_bits"):
            name += f" @{r['rate_bits']}b/s {int(100 * r['loss'])}%"
        per_frame = f"{r['ip_bytes_per_frame']:.0f}" if r.get("ip_bytes_per_frame") else "-"
        print(f"{name:<22}{r['frames_sent']:>8}{r['frames_received']:>6}{per_frame:>12}"
              f"{r['bits_per_host_per_s']:>12.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measurement")
    parser.add_argument("--frame-bytes", type=int, default=24, help="frame size for the engine comparison")
    parser.add_argument("--period", type=float, default=1.5, help="seconds between frames (engine comparison)")
    parser.add_argument("--losses", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--seeds", type=int, default=20, help="team task seeds per condition")
    parser.add_argument("--jobs", type=int, default=2, help="team task worker processes")
    parser.add_argument("--stack-seeds", type=int, default=3, help="full-stack-across-hosts seeds per condition")
    parser.add_argument("--stack-robots", type=int, default=2, help="robots in the full-stack runs")
    parser.add_argument("--stack-duration", type=float, default=60.0, help="sim seconds at most per full-stack run")
    parser.add_argument("--parts", nargs="+", choices=("air", "task", "faults", "stack"),
                        default=["air", "task", "faults"],
                        help="which parts to run (the others' results are kept in the JSON)")
    parser.add_argument("--quick", action="store_true", help="10 s runs, 20%% loss only, 2 seeds of a 9x9 task")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        spec = json.loads(args.peer)
        Path(spec["out"]).write_text(json.dumps(run_peer(spec)))
        return 0
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update({"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
                    "machine": platform.platform(), "cpu_count": os.cpu_count()})
    if "task" in args.parts:
        task = task_success(2 if args.quick else args.seeds, args.jobs, args.quick)
        print("\nteam task, ours at 16 bits/step, the same seeds:")
        for name, row in task["conditions"].items():
            print(f"  {name:<26} success {row['success']:.0%} of {row['episodes']}, air "
                  f"{row['air_bits_per_robot_per_s'] or 0:.0f} bit/s per robot")
        results["team_task"] = task
    if "air" in args.parts:
        results.update(air_measurements(args))
    if "faults" in args.parts and not netns_missing():
        results["faults"] = faults()
        print(f"\nfaults: {json.dumps(results['faults'])}")
    if "stack" in args.parts and not netns_missing():
        print("\nthe full ROS stack across hosts vs in one host (oracle BEV, 9x9, the same seeds):")
        results["full_stack"] = full_stack(1 if args.quick else args.stack_seeds, args.stack_robots,
                                           20.0 if args.quick else args.stack_duration)
        for name, row in results["full_stack"]["conditions"].items():
            print(f"  {name:<40} success {row['success']:.0%} of {row['episodes']}, mean time to goal "
                  f"{row['mean_time_to_success_s']} sim s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


def netns_missing() -> str | None:
    import netns
    return netns.missing()


def air_measurements(args) -> dict:
    """Parts 1 and 2: the engines and the team on the air (namespaces)."""
    import netns
    if netns.missing():
        print(f"link benchmark needs network namespaces: {netns.missing()}")
        return {"air_skipped": netns.missing()}
    duration = 10.0 if args.quick else args.duration
    losses = [0.2] if args.quick else args.losses
    try:
        import zenoh  # noqa: F401
        zenoh_engines = [("zenoh-udp", None), ("zenoh-udp", 60000), ("zenoh-tcp", None)]
    except ImportError:
        print("eclipse-zenoh is not installed (pip install eclipse-zenoh): Zenoh rows left out")
        zenoh_engines = []
    started = time.time()
    engines = [("udp", None)] + zenoh_engines + [("dds", None)]
    overhead = [engine_overhead(e, duration, args.frame_bytes, args.period, lease) for e, lease in engines]
    _print_overhead(overhead)
    team = [team_on_air(duration, loss) for loss in losses]
    print(f"\nthree robots, {SHARE_BPS} bit/s tbf share each, UDP frames (bytes on the bridge, every header):")
    print(f"{'loss':>6}{'max bit/s':>11}{'delivered':>11}  per robot: bit/s, frames, accepted")
    for row in team:
        per = "; ".join(f"{r['bridge_bits_per_s']:.0f}, {r['frames_sent']}, {r['packets_accepted']}"
                        for r in row["robots"])
        print(f"{row['loss']:>6.0%}{row['max_bits_per_s']:>11.0f}{row['delivered']:>11.0%}  {per}")
    dds_team = [engine_overhead("dds", duration, args.frame_bytes, args.period, hosts=3),
                engine_overhead("dds", duration, args.frame_bytes, args.period, hosts=3, rate_bits=SHARE_BPS,
                                loss=0.2)]
    print("\nDDS carrying /team/packets across three hosts, the same packet rate:")
    _print_overhead(dds_team)
    return {"air_wall_s": time.time() - started, "engine_overhead": overhead, "team_udp": team,
            "team_dds": dds_team}


if __name__ == "__main__":
    sys.exit(main())

"""Several hosts on one machine for the team-link tests and benchmarks: one network namespace per robot, each
joined by a veth pair to a bridge in a namespace of its own, optionally rate limited (tc tbf on the robot's egress)
and lossy (iptables statistic drops on the robot's input: each receiver loses its own frames). Needs root, ``ip``,
``tc`` and ``iptables`` (``make setup-net`` installs them); :func:`missing` says what is absent.

    with Hosts(3, rate_bits=400, loss=0.2) as net:
        proc = net.popen(0, [python, "robot.py", ...])
        net.partition(1, True)          # host 1 hears and reaches nobody
        net.bridge_counters(0)          # bytes and packets host 0 put on the link, seen on the bridge

With ``control=True`` a simulator host ``<prefix>-sim`` is added, joined to each robot host by a veth pair of its
own (the control channel: ``ctl0`` on the robot, 10.78.<n>.<4k+2>/30, and ``c<k>`` on the sim, .<4k+1>/30; not
bridged, not rate limited, not lossy, not counted; the sim does not forward, so robots cannot reach each other
over it). With ``radio_port`` every robot host sends on its radio (``eth0``) only UDP from that port (iptables
OUTPUT): the team link's frames, and nothing else (no DDS discovery) ever leaves by the radio.

Every namespace is deleted on leaving the block, whatever happened inside it, and every process started with
:meth:`Hosts.popen` is killed first. Only addresses inside these namespaces are used (10.77.<n>.0/24, and
10.78.<n>.0/24 for the control channel).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import Sequence

ETHERNET_HEADER_BYTES = 14
TOOLS = ("ip", "tc", "iptables")


def missing() -> str | None:
    """Why multi-host tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"missing {', '.join(absent)} (make setup-net installs iproute2 and iptables)"
    return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


class Hosts:
    """``n`` robot hosts (namespaces ``<prefix>-h<k>``, address 10.77.<subnet>.<k+1>/24 on ``eth0``) bridged in
    ``<prefix>-br``."""

    def __init__(self, n: int, rate_bits: int | None = None, loss: float = 0.0, subnet: int | None = None,
                 prefix: str | None = None, control: bool = False, radio_port: int | None = None) -> None:
        if not 1 <= n <= 50:
            raise ValueError(f"1..50 hosts, got {n}")
        self.n, self.rate_bits, self.loss = n, rate_bits, loss
        self.subnet = subnet if subnet is not None else os.getpid() % 200 + 20
        self.prefix = prefix or f"smr{os.getpid() % 100000}"
        self.bridge = f"{self.prefix}-br"
        self.hosts = [f"{self.prefix}-h{k}" for k in range(n)]
        self.control, self.radio_port = control, radio_port
        self.sim = f"{self.prefix}-sim"
        self.procs: list[subprocess.Popen] = []

    def address(self, k: int) -> str:
        return f"10.77.{self.subnet}.{k + 1}"

    def control_address(self, k: int) -> str:
        """Robot host ``k``'s address on its control channel to the sim."""
        return f"10.78.{self.subnet}.{4 * k + 2}"

    def sim_address(self, k: int) -> str:
        """The sim host's address on its control channel to robot host ``k``."""
        return f"10.78.{self.subnet}.{4 * k + 1}"

    @property
    def broadcast(self) -> str:
        return f"10.77.{self.subnet}.255"

    # ---------------------------------------------------------------------------------------------- build

    def __enter__(self) -> Hosts:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _build(self) -> None:
        _run("ip", "netns", "add", self.bridge)
        self._quiet(self.bridge)
        _run("ip", "-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.bridge, "link", "set", "br0", "up")
        for k, host in enumerate(self.hosts):
            _run("ip", "netns", "add", host)
            self._quiet(host)
            _run("ip", "link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", f"p{k}", "netns",
                 self.bridge)
            _run("ip", "-n", self.bridge, "link", "set", f"p{k}", "master", "br0", "up")
            _run("ip", "-n", host, "addr", "add", f"{self.address(k)}/24", "broadcast", self.broadcast, "dev", "eth0")
            _run("ip", "-n", host, "link", "set", "eth0", "up")
            _run("ip", "-n", host, "link", "set", "lo", "up")
            if self.rate_bits:
                # burst: one full-size frame (the bucket must hold the largest packet); limit: a few seconds queued.
                _run("ip", "netns", "exec", host, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate",
                     f"{int(self.rate_bits)}bit", "burst", "1600", "limit", "4000")
            if self.loss:
                self.set_loss(k, self.loss)
            if self.radio_port is not None:
                for rule in (["-p", "udp", "--sport", str(int(self.radio_port)), "-j", "ACCEPT"], ["-j", "DROP"]):
                    _run("ip", "netns", "exec", host, "iptables", "-A", "OUTPUT", "-o", "eth0", *rule)
        if self.control:
            _run("ip", "netns", "add", self.sim)
            self._quiet(self.sim)
            _run("ip", "-n", self.sim, "link", "set", "lo", "up")
            for k, host in enumerate(self.hosts):
                _run("ip", "link", "add", "ctl0", "netns", host, "type", "veth", "peer", "name", f"c{k}", "netns",
                     self.sim)
                _run("ip", "-n", host, "addr", "add", f"{self.control_address(k)}/30", "dev", "ctl0")
                _run("ip", "-n", host, "link", "set", "ctl0", "up")
                _run("ip", "-n", self.sim, "addr", "add", f"{self.sim_address(k)}/30", "dev", f"c{k}")
                _run("ip", "-n", self.sim, "link", "set", f"c{k}", "up")

    def _quiet(self, namespace: str) -> None:
        """No IPv6 (router solicitations and neighbour discovery would add traffic the robots did not send)."""
        for key in ("all", "default"):
            _run("ip", "netns", "exec", namespace, "sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1",
                 check=False)

    def close(self) -> None:
        """Kill the processes started here, then delete every namespace (idempotent, never raises)."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, OSError):
                    proc.kill()
                    proc.wait(timeout=5)
        for namespace in self.hosts + [self.bridge] + ([self.sim] if self.control else []):
            _run("ip", "netns", "del", namespace, check=False)

    # ------------------------------------------------------------------------------------------ running

    def command(self, k: int | str, args: Sequence[str]) -> list[str]:
        """``args`` run on robot host ``k``, or on the sim host for k == "sim" (``control=True``)."""
        return ["ip", "netns", "exec", self.sim if k == "sim" else self.hosts[k], *args]

    def popen(self, k: int | str, args: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a process on host ``k`` (killed on close)."""
        proc = subprocess.Popen(self.command(k, args), **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, k: int, args: Sequence[str], timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(k, args), capture_output=True, text=True, timeout=timeout)

    # ---------------------------------------------------------------------------------------- faults

    def set_loss(self, k: int, probability: float) -> None:
        """Drop each frame arriving at host ``k`` by the radio with ``probability`` (iptables statistic, chain
        SMR_LOSS, on ``eth0``'s input only: the host's loopback and control channel stay lossless)."""
        host = self.hosts[k]
        _run("ip", "netns", "exec", host, "iptables", "-N", "SMR_LOSS", check=False)
        _run("ip", "netns", "exec", host, "iptables", "-F", "SMR_LOSS")
        if not _run("ip", "netns", "exec", host, "iptables", "-C", "INPUT", "-i", "eth0", "-j", "SMR_LOSS",
                    check=False).returncode == 0:
            _run("ip", "netns", "exec", host, "iptables", "-A", "INPUT", "-i", "eth0", "-j", "SMR_LOSS")
        if probability > 0:
            _run("ip", "netns", "exec", host, "iptables", "-A", "SMR_LOSS", "-p", "udp", "-m", "statistic",
                 "--mode", "random", "--probability", f"{probability:.4f}", "-j", "DROP")

    def partition(self, k: int, cut: bool) -> None:
        """Cut host ``k`` off the link (its veth on the bridge goes down) or join it again."""
        _run("ip", "-n", self.bridge, "link", "set", f"p{k}", "down" if cut else "up")

    # --------------------------------------------------------------------------------------- counting

    def bridge_counters(self, k: int) -> dict:
        """What host ``k`` put on the link, read on the bridge's port to it: Ethernet bytes, packets, and IP bytes
        (Ethernet less its 14-byte header)."""
        out = _run("ip", "-j", "-s", "-n", self.bridge, "link", "show", f"p{k}").stdout
        rx = json.loads(out)[0]["stats64"]["rx"]
        return {"ethernet_bytes": rx["bytes"], "packets": rx["packets"],
                "ip_bytes": rx["bytes"] - ETHERNET_HEADER_BYTES * rx["packets"]}

    def radio_guard_drops(self, k: int) -> int:
        """Packets host ``k`` tried to send on its radio other than the link's (dropped by ``radio_port``'s rule)."""
        out = _run("ip", "netns", "exec", self.hosts[k], "iptables", "-L", "OUTPUT", "-v", "-x", "-n").stdout
        return sum(int(line.split()[0]) for line in out.splitlines()[2:]
                   if line.split() and line.split()[2] == "DROP" and "eth0" in line.split())

    def control_counters(self, k: int) -> dict:
        """Bytes and packets on robot host ``k``'s control channel, each way, read on the sim's end (not the
        team link: never counted against the share)."""
        out = _run("ip", "-j", "-s", "-n", self.sim, "link", "show", f"c{k}").stdout
        stats = json.loads(out)[0]["stats64"]
        return {"to_robot_bytes": stats["tx"]["bytes"], "from_robot_bytes": stats["rx"]["bytes"]}


def wait_for(predicate, timeout: float, period: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())

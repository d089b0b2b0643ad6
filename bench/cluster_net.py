"""The cluster demonstration's network: worker hosts as network namespaces on a bridge.

Each host is a network namespace ``whkcN`` joined to this machine by a veth pair: the host's
end is its ``eth0``, this machine's end (``whkcNv``) is a port of the bridge ``whkcbr``.
Addresses come only from 198.18.0.0/15, the range reserved for benchmarking (RFC 2544): the
bridge holds 198.18.0.1, host N holds 198.18.0.(10 + N), all in one /24. No host gets a default
route, so a host reaches this machine's bridge address and the other hosts, nothing else.

PostgreSQL and Redis are neither restarted nor reconfigured: they keep listening where they
were, and ``forwarder`` starts socat listening on the bridge address and connecting to them on
127.0.0.1, for the run only.

``cut`` takes this machine's end of a host's link down: to the host it is a pulled cable (no
carrier; its packets are dropped, its TCP connections stall and retransmit, nothing is
refused). ``restore`` brings it back.

Everything is named with the ``whkc`` prefix and every process started is remembered in
``bench/results/cluster-pids`` (pid and start time), as are the files they write outside the
work tree, so ``cleanup`` removes what an interrupted run left and touches nothing else:
``python bench/cluster_net.py cleanup``.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Proc  # noqa: E402

PREFIX = "whkc"
BRIDGE = f"{PREFIX}br"
# RFC 2544's benchmarking range: nothing else is ever addressed.
BENCHMARK_RANGE = ipaddress.ip_network("198.18.0.0/15")
SUBNET = ipaddress.ip_network("198.18.0.0/24")
BRIDGE_ADDRESS = "198.18.0.1"
# Host N is 198.18.0.(HOST_ADDRESS_BASE + N).
HOST_ADDRESS_BASE = 10
PID_FILE = harness.RESULTS / "cluster-pids"
# How long cleanup waits for killed processes to leave a namespace before deleting it.
EXIT_WAIT_SECONDS = 10.0

assert SUBNET.subnet_of(BENCHMARK_RANGE)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Host:
    index: int

    @property
    def name(self) -> str:
        return f"host{self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def link(self) -> str:
        """This machine's end of the host's veth pair (a bridge port)."""
        return f"{PREFIX}{self.index}v"

    @property
    def address(self) -> str:
        return str(SUBNET.network_address + HOST_ADDRESS_BASE + self.index)

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside the host."""
        return ["ip", "netns", "exec", self.netns, *args]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _check_address(address: str) -> None:
    if ipaddress.ip_address(address) not in BENCHMARK_RANGE:
        raise RuntimeError(f"{address} is outside {BENCHMARK_RANGE}: refusing to use it")


def _addresses_in_subnet() -> list[str]:
    """Interfaces of this machine already holding an address in SUBNET (another user of it)."""
    found = []
    for link in json.loads(_ip("-j", "addr", "show").stdout or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and ipaddress.ip_address(info["local"]) in SUBNET:
                found.append(f"{link['ifname']} {info['local']}")
    return found


def create(count: int) -> list[Host]:
    """The bridge and ``count`` hosts, each with its address, loopback and link up."""
    taken = _addresses_in_subnet()
    if taken:
        raise RuntimeError(f"{SUBNET} is already in use on this machine ({', '.join(taken)}); not touching it")
    _check_address(BRIDGE_ADDRESS)
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{BRIDGE_ADDRESS}/{SUBNET.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    hosts = [Host(i + 1) for i in range(count)]
    for host in hosts:
        _check_address(host.address)
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.link, "master", BRIDGE, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/{SUBNET.prefixlen}", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
    return hosts


def cut(host: Host) -> None:
    _ip("link", "set", host.link, "down")


def restore(host: Host) -> None:
    _ip("link", "set", host.link, "up")


def reaches(host: Host, port: int, timeout: float = 10.0) -> bool:
    """Whether ``host`` can open a TCP connection to the bridge address on ``port``."""
    probe = f"import socket,sys\nsocket.create_connection(('{BRIDGE_ADDRESS}', {port}), timeout={timeout}).close()\n"
    result = subprocess.run(host.command([sys.executable, "-c", probe]), capture_output=True, timeout=timeout + 5)
    return result.returncode == 0


def stalled_sockets(host: Host) -> int:
    """TCP connections between ``host`` and this machine with data sent and not yet
    acknowledged, at either end (what a cut leaves retransmitting)."""

    def unacknowledged(listing: str) -> int:
        count = 0
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] != "LISTEN" and fields[2].isdigit() and int(fields[2]) > 0:
                count += 1
        return count

    inside = subprocess.run(host.command(["ss", "-tanH"]), capture_output=True, text=True).stdout
    here = subprocess.run(["ss", "-tanH", "dst", host.address], capture_output=True, text=True).stdout
    return unacknowledged(inside) + unacknowledged(here)


def forwarder(port: int) -> Proc:
    """socat on the bridge address, forwarding each connection to 127.0.0.1:``port``."""
    proc = Proc(
        f"cluster-forward-{port}",
        [
            "socat",
            f"TCP-LISTEN:{port},bind={BRIDGE_ADDRESS},reuseaddr,fork,backlog=1024,nodelay",
            f"TCP:127.0.0.1:{port},nodelay",
        ],
        dict(os.environ),
    )
    remember(proc)
    return proc


def listeners(ports: tuple[int, ...]) -> list[str]:
    """Local addresses listening on TCP ``ports`` in this machine's namespace, sorted."""
    listing = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    found = set()
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].rsplit(":", 1)[-1] in {str(p) for p in ports}:
            found.add(fields[3])
    return sorted(found)


def listeners_on_subnet() -> list[str]:
    listing = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    found = []
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            address = fields[3].rsplit(":", 1)[0].strip("[]")
            try:
                if ipaddress.ip_address(address) in SUBNET:
                    found.append(fields[3])
            except ValueError:
                continue
    return found


# --- Remembered processes ----------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()[19]  # field 22, starttime


def remember(proc: Proc) -> None:
    """Note a started process (its own process group) so that cleanup can find it."""
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    with PID_FILE.open("a") as file:
        file.write(f"{proc.pid} {_start_time(proc.pid)} {proc.name}\n")


def remember_files(pattern: str) -> None:
    """Note files a process of the run writes (a glob pattern), for cleanup to delete."""
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    with PID_FILE.open("a") as file:
        file.write(f"files {pattern}\n")


def _remembered() -> list[list[str]]:
    try:
        return [line.split(" ", 2) for line in PID_FILE.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _remembered_alive() -> list[tuple[int, str]]:
    """(pid, name) of remembered processes still running (same pid and start time)."""
    alive = []
    for fields in _remembered():
        if fields[0].isdigit() and _start_time(int(fields[0])) == fields[1]:
            alive.append((int(fields[0]), fields[2]))
    return alive


def _remembered_files() -> list[str]:
    return sorted({path for fields in _remembered() if fields[0] == "files" for path in glob.glob(fields[1])})


# --- Cleanup -----------------------------------------------------------------------------


def _our_namespaces() -> list[str]:
    listing = _ip("netns", "list", check=False).stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX) and n[len(PREFIX) :].isdigit()]


def _our_links() -> list[str]:
    links = json.loads(_ip("-j", "link", "show", check=False).stdout or "[]")
    return [link["ifname"] for link in links if link["ifname"].startswith(PREFIX)]


def _namespace_pids(netns: str) -> list[int]:
    return [int(p) for p in _ip("netns", "pids", netns, check=False).stdout.split()]


def leftovers() -> list[str]:
    """What of ours still exists: namespaces, links, listeners on the subnet, processes."""
    found = [f"netns {n}" for n in _our_namespaces()]
    found += [f"link {link}" for link in _our_links()]
    found += [f"listener {address}" for address in listeners_on_subnet()]
    found += [f"process {pid} ({name})" for pid, name in _remembered_alive()]
    found += [f"file {path}" for path in _remembered_files()]
    return found


def cleanup() -> list[str]:
    """Remove everything of ours that exists; return what was removed. Idempotent."""
    removed = []
    for pid, name in _remembered_alive():
        try:
            os.killpg(pid, signal.SIGKILL)
            removed.append(f"process group {pid} ({name})")
        except (ProcessLookupError, PermissionError):
            continue
    for netns in _our_namespaces():
        pids = _namespace_pids(netns)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        if pids:
            removed.append(f"{len(pids)} processes in {netns}")
        deadline = time.monotonic() + EXIT_WAIT_SECONDS
        while _namespace_pids(netns) and time.monotonic() < deadline:
            time.sleep(0.1)
        _ip("netns", "del", netns, check=False)
        removed.append(f"netns {netns}")
    # Deleting a namespace deletes its veth pairs, a moment later (the kernel does it
    # asynchronously): wait for the host ends before deleting what is left.
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while any(link != BRIDGE for link in _our_links()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for link in _our_links():
        if _ip("link", "del", link, check=False).returncode == 0:
            removed.append(f"link {link}")
    for path in _remembered_files():
        Path(path).unlink(missing_ok=True)
        removed.append(f"file {path}")
    PID_FILE.unlink(missing_ok=True)
    return removed


def main() -> int:
    if sys.argv[1:] != ["cleanup"]:
        print("usage: python bench/cluster_net.py cleanup", file=sys.stderr)
        return 2
    removed = cleanup()
    if removed:
        print("cluster cleanup removed: " + ", ".join(removed))
    left = leftovers()
    if left:
        print("cluster cleanup could not remove: " + ", ".join(left), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Process management, measurements and small helpers shared by the benchmark scenarios.

Every process the benchmark starts is registered here and stopped on exit, on Ctrl-C and on
failure: each runs in its own session (process group), so its children go with it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOGS = RESULTS / "logs"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Grace between SIGTERM and SIGKILL when stopping a process group.
STOP_GRACE_SECONDS = 3.0


class Proc:
    """A started child process with its log file; stop() ends its whole process group."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = LOGS / f"{name}.log"
        LOGS.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _started.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(self.log_text()):
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early (see {self.log_path}):\n{self.log_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout}s (see {self.log_path})")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            with _suppress_lookup():
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # Children left in the group after the leader exited (a prefork pool, nginx workers).
        with _suppress_lookup():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()
        if self in _started:
            _started.remove(self)


_started: list[Proc] = []


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is not None and issubclass(exc_type, ProcessLookupError | PermissionError)


def stop_all() -> None:
    for proc in reversed(list(_started)):
        try:
            proc.stop()
        except Exception as exc:  # noqa: BLE001 - keep stopping the others
            print(f"  (could not stop {proc.name}: {exc})")


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the ``finally`` that stops everything runs."""

    def raise_interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGHUP, raise_interrupt)
    # Ctrl-C too, even when started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def wait_for_count(count: Callable[[], int], target: int, *, stall_seconds: float, interval: float = 0.05) -> bool:
    """Poll ``count()`` until it reaches ``target`` (True), or it has not grown for
    ``stall_seconds`` (False)."""
    last, last_change = -1, time.monotonic()
    while True:
        current = count()
        if current >= target:
            return True
        if current != last:
            last, last_change = current, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            return False
        time.sleep(interval)


# --- /proc readings ----------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc/*/stat parent links)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                parents[int(entry)] = int(stat[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None when it is gone."""
    stat = _read_stat(pid)
    if stat is None:
        return None
    # Fields 14 and 15 of stat; index 0 here is field 3 (state).
    return (int(stat[11]) + int(stat[12])) / CLK_TCK


def pids_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm == name:
                found.append(int(entry))
    return found


def peak_rss_mb(pid: int) -> float:
    """Max VmHWM (peak resident set) over the process and its descendants, in MB."""
    peak = 0
    for each in [pid, *children_of(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop().

    Each group's processes are sampled every SAMPLE_SECONDS, so one that starts during the run
    counts from zero and one that exits counts up to its last sample (PostgreSQL backends of
    short-lived connections come and go).
    """

    SAMPLE_SECONDS = 0.2

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.used: dict[str, float] = {}
        self._self_start = 0.0
        self._first: dict[str, dict[int, float]] = {}
        self._last: dict[str, dict[int, float]] = {}
        self._stopping = threading.Event()
        self._sampler: threading.Thread | None = None

    def _sample(self, *, first: bool = False) -> None:
        for name, pids in self.groups.items():
            for pid in pids():
                seconds = cpu_seconds(pid)
                if seconds is None:
                    continue  # gone since listed: its last sample stands
                self._last[name][pid] = seconds
                if first:
                    self._first[name][pid] = seconds

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self.SAMPLE_SECONDS):
                self._sample()
        finally:
            from django.db import connection

            connection.close()  # pg_backends may have opened one in this thread

    def start(self) -> None:
        self._first = {name: {} for name in self.groups}
        self._last = {name: {} for name in self.groups}
        self._sample(first=True)
        self._self_start = _own_cpu()
        self._stopping.clear()
        self._sampler = threading.Thread(target=self._run, daemon=True)
        self._sampler.start()

    def stop(self) -> dict[str, float]:
        self._stopping.set()
        if self._sampler is not None:
            self._sampler.join()
        self._sample()
        for name in self.groups:
            last, first = self._last[name], self._first[name]
            self.used[name] = sum(seconds - first.get(pid, 0.0) for pid, seconds in last.items())
        self.used["bench process (+emitters)"] = _own_cpu() - self._self_start
        return self.used


def _own_cpu() -> float:
    # Children reaped meanwhile (the forked emitters) count too; started Procs are reaped
    # only when stopped, after any meter around them has stopped.
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# --- The machine -------------------------------------------------------------------------


def machine_lines(pg_version: str, redis_version: str) -> list[str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    load = os.getloadavg()
    return [
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"cpu: {model}, {os.cpu_count()} cores; RAM {mem_kb / 1024 / 1024:.1f} GiB;"
        f" load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"python {platform.python_version()}, {platform.platform()}",
        f"postgresql {pg_version}, redis {redis_version}",
    ]


def cpu_probe() -> str:
    """A fixed pure-Python workload: its CPU time shows how fast a core is, and wall / CPU how
    much of a core this process got (1.0 on an idle machine; more means others competed)."""
    import json

    doc = {"a": [1, 2, 3], "b": "x" * 50, "c": {"d": 1.5}}
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(50_000):
        json.loads(json.dumps(doc))
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    load = os.getloadavg()[0]
    return f"cpu probe (50k JSON round trips): {cpu * 1000:.0f} ms CPU, wall/CPU {wall / cpu:.2f}; load {load:.2f}"


# --- Statistics --------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))  # ceil(p/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def procfile_command(kind: str, env: dict[str, str]) -> list[str]:
    """The Procfile line ``kind:`` split into arguments, with ${VAR:-default} expanded from env."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == kind:
            expanded = re.sub(
                r"\$\{(\w+)(?::-([^}]*))?\}",
                lambda m: env.get(m.group(1)) or (m.group(2) or ""),
                command.strip(),
            )
            return expanded.split()
    raise RuntimeError(f"no '{kind}:' line in Procfile")


# --- The service's database and Django -----------------------------------------------------


def recreate_database(database_url: str) -> None:
    """Drop and create the database of ``database_url``, then migrate it with manage.py.

    Afresh on every run: nothing a previous (perhaps interrupted) run left counts.
    """
    from urllib.parse import urlparse

    import psycopg2

    parts = urlparse(database_url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
    )


def django_setup() -> None:
    import warnings

    import django

    # WhiteNoise warns once that collectstatic has not run: irrelevant to the timings.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()

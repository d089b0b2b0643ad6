"""The cluster demonstration: three worker hosts share one PostgreSQL and one Redis, and the
guarantees that rest on those two hold across the hosts.

    bash bench/cluster                 (as root: it makes network namespaces)
    bash bench/cluster cut kill        (or some of: rate slots cut kill slowdb)

Three worker hosts are network namespaces on a bridge, addressed from 198.18.0.0/15 only (see
bench/cluster_net.py). PostgreSQL and Redis stay where they listen; socat forwarders on the
bridge address reach them for the run. Each host runs the Procfile's ``worker:`` command with
DATABASE_URL, REDIS_URL and CELERY_BROKER_URL on the bridge address; the Procfile's ``beat:``
runs on this machine; the receiver (bench/cluster_receiver.py) listens on the bridge address
and logs which host sent what, when. Events are emitted from this process. It shows:

1. Rate limits are cluster-wide: one organization limited to 100/s and 10,000/h, 3,000 events
   sent by three hosts: no 1-second window over 100, by the sent-at stamps and at the receiver.
2. Endpoint slots are cluster-wide: a slow endpoint never has more than
   WEBHOOK_ENDPOINT_CONCURRENCY requests open at once across the hosts.
3. A host cut off mid-run loses nothing: while 5,000 deliveries are under way one host's link
   goes down for 60 s. Every delivery arrives; what it had leased goes out from the others
   once the lease expires; back, it sends no attempt another host already sent. Duplicates
   (same X-CyberCage-Delivery-ID) are counted, each with its reason.
4. A host's worker killed (SIGKILL) mid-run and replaced by a new one loses nothing.

``slowdb``, only when asked for (about 5 minutes), holds PostgreSQL's replies to one host 12 s
each (bench/cluster_delay_proxy.py), so that its claims come back after their lease ended, and
checks that it never sends what another worker has sent and recorded meanwhile.

It exits 0 only when every guarantee held. Everything it made (namespaces, links, bridge,
forwarders, processes) is removed at the end, on Ctrl-C, SIGTERM and failure, and it checks
that PostgreSQL and Redis listen where they did before. The report goes to stdout and to
bench/results/cluster.txt; process logs to bench/results/logs/cluster-*.log.

Environment: CLUSTER_REDIS_URL (else the first of Redis databases 14 and 13 that has no other
clients), CLUSTER_WORKER_CONCURRENCY (8).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and _VENV_PYTHON.exists():
    # ``python bench/cluster.py`` with any interpreter: run under the project's virtualenv.
    os.execv(str(_VENV_PYTHON), [str(_VENV_PYTHON), __file__, *sys.argv[1:]])

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import datetime as dt  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import cluster_net  # noqa: E402
import harness  # noqa: E402
from cluster_net import BRIDGE_ADDRESS, Host  # noqa: E402
from harness import RESULTS, Proc, percentile  # noqa: E402

from events.catalogue import EVENT_TYPES  # noqa: E402 - pure module, no Django needed

HOSTS = 3
DATABASE = "webhooks_cluster"
# Redis databases it may take, when no other client uses them. Test runs take 1-12 and
# tests/deliveries/test_ratelimit.py flushes 15 before and after each of its tests (a run whose
# limiter log was wiped that way let 258 requests through in one second); bench/run takes 13
# or 14, whichever has no clients, 13 first.
REDIS_CANDIDATES = (14, 13)
# Set at the start and looked for after each scenario: gone means someone flushed our database.
SENTINEL_KEY = "whkc:sentinel"
PG_PORT, REDIS_PORT = 5432, 6379

# The service's settings for every process of the run.
RATE_PER_SECOND = 100
RATE_PER_HOUR = 10_000
ENDPOINT_CONCURRENCY = 4
# Short, so that a lease (2 x timeout + 10 s = 30 s) ends well inside the 60 s cut.
WEBHOOK_TIMEOUT = 10
LEASE_SECONDS = 2 * WEBHOOK_TIMEOUT + 10
# The sweeper re-wakes what nobody holds; 5 s instead of 30 keeps the run short.
SWEEP_INTERVAL = 5
# Threads per worker: 8 rather than the Procfile's 16, so the run's connections (one per
# thread, through the forwarder) stay a small share of the shared PostgreSQL's 100.
WORKER_CONCURRENCY = os.environ.get("CLUSTER_WORKER_CONCURRENCY", "8")

RATE_EVENTS = 3_000
# Event types of the rate-limited organization's endpoints, one each, emitted in turn: more
# endpoints, more drains at once (up to the organization's cap), so all hosts take part.
RATE_TYPES = ("agent.online", "agent.offline", "server.pending", "policy.violation")
# How much later than its neighbours one request may arrive (tests/e2e/test_rate_limits.py).
ARRIVAL_JITTER = 0.15
# Emitting threads of this process: one emits ~100/s here while the workers run, which would
# pace the rate-limited run below its limit.
EMIT_THREADS = 4
SLOW_DELIVERIES = 60
SLOW_ANSWER_MS = 500
CUT_EVENTS = 5_000
CUT_ORGS = 10
CUT_AFTER = 1_000
CUT_SECONDS = 60.0
FOLLOW_UP_EVENTS = 200
KILL_EVENTS = 3_000
KILL_ORGS = 10
KILL_AFTER = 600
# The killed host's receiver answers in this long: a drain's batch then lasts about a second
# (claims are sized to what it sends in one), so a host that is sending holds a claimed batch.
KILL_ANSWER_MS = 20
# A faulty host has some of the run's deliveries in hand when the fault comes: it has sent
# this many, the last of them this recently (it is in the middle of a claimed batch).
FAULTY_HOST_SENT_BEFORE = 20
BUSY_SECONDS = 0.05
# The slow-database scenario (not in the default run): each PostgreSQL reply to one host is
# held this long, so a claim's four round trips take longer than its lease (30 s).
SLOWDB_DELAY = 12
SLOWDB_SECONDS = 170.0
SLOWDB_LEAD_SECONDS = 20.0
# Events a second to one endpoint answering in SLOWDB_ANSWER_MS, faster than its slots drain
# them: due deliveries wait, so a claim made late still finds some.
SLOWDB_RATE = 15.0
SLOWDB_ANSWER_MS = 300
SLOWDB_PORT = 5433
SLOWDB_DELAY_FILE = RESULTS / "cluster-delay"
# Progress may pause for a lease plus a sweep; longer than that without progress is a stall.
STALL_SECONDS = LEASE_SECONDS + 4 * SWEEP_INTERVAL
# A host's connections stalled by the cut resume on TCP's retransmission timer (backing off
# to about a minute and more), so its return is awaited this long.
REJOIN_SECONDS = 240.0
# The receiver's log is read once nothing has arrived for this long.
QUIET_SECONDS = 3.0
# How often the run polls the database while it waits: rarely, so that its own queries take
# little of the two cores the hosts share.
POLL_SECONDS = 0.5
# A session idle in a transaction opened longer ago than this is held open (by a cut).
STUCK_SECONDS = 5
# Sent-at stamps have millisecond resolution.
STAMP_RESOLUTION = 0.001


def _choose_redis_db() -> str:
    """CLUSTER_REDIS_URL, else the first candidate database without other clients (a worker
    of someone else's there would take the run's messages)."""
    import redis

    if os.environ.get("CLUSTER_REDIS_URL"):
        return os.environ["CLUSTER_REDIS_URL"].rsplit("/", 1)[1]
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT)
    try:
        me = client.client_id()
        used = {int(c.get("db", -1)) for c in client.client_list() if int(c["id"]) != me}
    finally:
        client.close()
    for db in REDIS_CANDIDATES:
        if db not in used:
            return str(db)
    raise SystemExit(f"Redis databases {REDIS_CANDIDATES} all have other clients; set CLUSTER_REDIS_URL")


REDIS_DB = _choose_redis_db()
SETTINGS = {
    "WEBHOOK_RATE_PER_SECOND": str(RATE_PER_SECOND),
    "WEBHOOK_RATE_PER_HOUR": str(RATE_PER_HOUR),
    "WEBHOOK_ENDPOINT_CONCURRENCY": str(ENDPOINT_CONCURRENCY),
    "WEBHOOK_TIMEOUT": str(WEBHOOK_TIMEOUT),
    "WEBHOOK_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
    "WEBHOOK_ALLOWED_NETWORKS": str(cluster_net.SUBNET),
    "CELERY_WORKER_CONCURRENCY": WORKER_CONCURRENCY,
}


def _urls(address: str) -> dict[str, str]:
    redis_url = f"redis://{address}:{REDIS_PORT}/{REDIS_DB}"
    return {
        "DATABASE_URL": f"postgres://postgres@{address}:{PG_PORT}/{DATABASE}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
    }


# This process (and beat) are on this machine and use 127.0.0.1; the hosts the bridge address.
SERVICE_LOG_LEVEL = os.environ.get("LOG_LEVEL")
os.environ.update(
    SETTINGS,
    **_urls("127.0.0.1"),
    DJANGO_SETTINGS_MODULE="webhooks_project.settings",
    PYTHONUNBUFFERED="1",
    LOG_LEVEL="WARNING",
)


def service_env(address: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **_urls(address), **extra)
    if SERVICE_LOG_LEVEL is None:
        env.pop("LOG_LEVEL")  # the services log as deployed (INFO)
    else:
        env["LOG_LEVEL"] = SERVICE_LOG_LEVEL
    return env


# --- Output and verdicts -----------------------------------------------------------------

REPORT = RESULTS / "cluster.txt"
_stdout_gone = False


def out(line: str = "") -> None:
    """Print a line and add it to the report file at once (an interrupted run keeps its report)."""
    global _stdout_gone
    with REPORT.open("a") as report:
        report.write(line + "\n")
    if _stdout_gone:
        return
    try:
        print(line, flush=True)
    except OSError:
        # The reader of our output is gone (``| tee`` gets the same Ctrl-C): the report file
        # still has every line, and the cleanup must not stop for a print.
        _stdout_gone = True


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Run:
    hosts: list[Host] = field(default_factory=list)
    receiver_port: int = 0
    workers: dict[str, Proc] = field(default_factory=dict)
    beat: Proc | None = None
    # The rate-limited organization and its endpoints, its backlog emitted before the workers start.
    rate_org_id: str = ""
    rate_hook_ids: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        out(f"  [{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))
        return ok

    def url(self, path: str) -> str:
        return f"http://{BRIDGE_ADDRESS}:{self.receiver_port}{path}"

    def host_of(self, address: str) -> str:
        for host in self.hosts:
            if host.address == address:
                return host.name
        return address


def clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def hosts_text(run: Run, counts: dict[str, int]) -> str:
    return ", ".join(f"{run.host_of(address)} {n:,}" for address, n in sorted(counts.items()))


# --- Signals -----------------------------------------------------------------------------


_signal_received = signal.SIGINT


def _stop_on_signal() -> None:
    """SIGINT, SIGTERM and SIGHUP unwind once, like Ctrl-C, so the cleanup in ``finally``
    runs; any later signal is ignored, so a second Ctrl-C (or the entry script passing one
    on) cannot cut the cleanup short."""

    def interrupt(signum: int, _frame: object) -> None:
        global _signal_received
        _ignore_signals()
        _signal_received = signum
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


# --- Setup -------------------------------------------------------------------------------


def setup_database() -> None:
    harness.recreate_database(f"postgres://postgres@127.0.0.1:{PG_PORT}/{DATABASE}")


def redis_client():
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def versions() -> tuple[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return pg, redis_client().info("server")["redis_version"]


def wait_for_bridge_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((BRIDGE_ADDRESS, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {BRIDGE_ADDRESS}:{port} after {timeout}s")


def start_network(run: Run) -> None:
    run.hosts = cluster_net.create(HOSTS)
    for port in (PG_PORT, REDIS_PORT):
        cluster_net.forwarder(port)
        wait_for_bridge_port(port)
    for host in run.hosts:
        for port in (PG_PORT, REDIS_PORT):
            if not cluster_net.reaches(host, port):
                raise RuntimeError(f"{host.name} cannot reach {BRIDGE_ADDRESS}:{port}")
    out(
        f"network: bridge {cluster_net.BRIDGE} {BRIDGE_ADDRESS}/{cluster_net.SUBNET.prefixlen}; "
        + ", ".join(f"{h.name} {h.address} (netns {h.netns}, link {h.link})" for h in run.hosts)
        + "; no default route in any host"
    )
    out(
        f"forwarders: socat {BRIDGE_ADDRESS}:{PG_PORT} -> 127.0.0.1:{PG_PORT} (PostgreSQL),"
        f" {BRIDGE_ADDRESS}:{REDIS_PORT} -> 127.0.0.1:{REDIS_PORT} (Redis db {REDIS_DB})"
    )


def start_receiver(run: Run) -> None:
    run.receiver_port = harness.free_port()
    proc = Proc(
        "cluster-receiver",
        [sys.executable, "bench/cluster_receiver.py", BRIDGE_ADDRESS, str(run.receiver_port)],
        dict(os.environ),
    )
    cluster_net.remember(proc)
    wait_for_bridge_port(run.receiver_port)
    out(f"receiver: bench/cluster_receiver.py on {BRIDGE_ADDRESS}:{run.receiver_port} (this machine)")


def worker_command(host: Host, name: str) -> list[str]:
    command = harness.procfile_command("worker", service_env(BRIDGE_ADDRESS))
    if command[0] == "celery":
        command = [sys.executable, "-m", "celery", *command[1:]]
    return host.command([*command, "-n", f"{name}@cluster"])


def start_worker(run: Run, host: Host, name: str) -> Proc:
    proc = Proc(f"cluster-{name}", worker_command(host, name), service_env(BRIDGE_ADDRESS))
    cluster_net.remember(proc)
    run.workers[host.name] = proc
    return proc


def start_services(run: Run) -> None:
    for host in run.hosts:
        start_worker(run, host, host.name)
    for proc in run.workers.values():
        proc.wait_for_log(r"ready\.", timeout=90)
    shown = " ".join(harness.procfile_command("worker", service_env(BRIDGE_ADDRESS)))
    out(
        f"workers: the Procfile's `{shown}` in each host (ip netns exec), pids "
        + ", ".join(f"{name} {proc.pid}" for name, proc in run.workers.items())
        + f"; DATABASE_URL, REDIS_URL, CELERY_BROKER_URL on {BRIDGE_ADDRESS}"
    )
    # One beat for the cluster, on this machine: a cut host does not take the sweeper with it.
    # Its schedule file of its own: the Procfile's --schedule (named after $PORT) where it has
    # one, else the CELERY_BEAT_SCHEDULE_FILE setting of newer versions.
    schedule = f"/tmp/celerybeat-schedule-cluster-{os.getpid()}"
    env = service_env("127.0.0.1", PORT=f"cluster-{os.getpid()}", CELERY_BEAT_SCHEDULE_FILE=schedule)
    command = harness.procfile_command("beat", env)
    if "--schedule" in command:
        schedule = command[command.index("--schedule") + 1]
    cluster_net.remember_files(f"{schedule}*")
    if command[0] == "celery":
        command = [sys.executable, "-m", "celery", *command[1:]]
    run.beat = Proc("cluster-beat", command, env)
    cluster_net.remember(run.beat)
    run.beat.wait_for_log(r"beat: Starting", timeout=60)
    out(f"beat: the Procfile's `beat` on this machine, sweeping every {SWEEP_INTERVAL} s")
    out(
        "settings: "
        + ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
        + f" (lease {LEASE_SECONDS} s = 2 x timeout + 10 s)"
    )


# --- The receiver's log and the database -------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    path: str
    host: str
    delivery_id: str
    sent_at: float
    event_id: str
    arrived: float


def _stamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def receiver_get(run: Run, path: str) -> dict:
    with urllib.request.urlopen(run.url(path), timeout=30) as response:
        return json.loads(response.read())


def arrivals(run: Run, prefix: str) -> list[Arrival]:
    rows = receiver_get(run, f"/log?prefix={prefix}")["requests"]
    return [Arrival(r[0], r[1], r[2], _stamp(r[3]), r[4], r[5]) for r in rows]


def arrived_count(run: Run, prefix: str) -> tuple[int, dict[str, int]]:
    reply = receiver_get(run, f"/count?prefix={prefix}")
    return reply["total"], reply["by_host"]


def wait_quiet(run: Run, prefix: str) -> None:
    """Until nothing more has arrived under ``prefix`` for QUIET_SECONDS."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < QUIET_SECONDS:
        total, _ = arrived_count(run, prefix)
        if total != last:
            last, since = total, time.monotonic()
        time.sleep(0.2)


def make_org(run: Run, name: str, paths_and_types: list[tuple[str, str]]):
    from webhooks import services as webhook_services

    org = webhook_services.organization_create(name=name)
    hooks = [
        webhook_services.webhook_create(organization=org, url=run.url(path), events=[event_type]).webhook
        for path, event_type in paths_and_types
    ]
    return org, hooks


def succeeded(webhook_ids: list[str]) -> int:
    from deliveries.models import Delivery

    return Delivery.objects.filter(webhook_id__in=webhook_ids, status=Delivery.Status.SUCCEEDED).count()


def leased_now(webhook_ids: list[str]) -> dict[str, float]:
    """Open deliveries under a lease right now, with the lease's end (the database's clock)."""
    from django.db.models.functions import Now

    from deliveries.models import Delivery

    rows = Delivery.objects.filter(
        webhook_id__in=webhook_ids, status__in=Delivery.OPEN_STATUSES, lease_until__gt=Now()
    ).values_list("id", "lease_until")
    return {delivery_id: lease.timestamp() for delivery_id, lease in rows}


def locked_rows(webhook_ids: list[str]) -> set[str]:
    """Open deliveries whose rows another transaction holds locked (a claim or a record not yet
    committed): what FOR SHARE SKIP LOCKED skips. Our own short transaction takes share locks,
    which a worker's claim skips for those milliseconds."""
    from django.db import connection, transaction

    query = "SELECT id FROM deliveries_delivery WHERE webhook_id = ANY(%s) AND status IN ('pending', 'retrying')"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(query, [webhook_ids])
        open_ids = {row[0] for row in cursor.fetchall()}
        cursor.execute(query + " FOR SHARE SKIP LOCKED", [webhook_ids])
        free = {row[0] for row in cursor.fetchall()}
    return open_ids - free


def idle_in_transaction() -> list[float]:
    """Ages (seconds) of this database's sessions idle inside a transaction opened over
    STUCK_SECONDS ago (a worker's transaction lasts milliseconds; these are held open)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM clock_timestamp() - xact_start) FROM pg_stat_activity"
            " WHERE datname = current_database() AND state = 'idle in transaction'"
            " AND clock_timestamp() - xact_start > %s * interval '1 second'",
            [STUCK_SECONDS],
        )
        return [float(row[0]) for row in cursor.fetchall()]


class Emitter(threading.Thread):
    """Emits ``count`` events round-robin over (organization id, event type) pairs from
    EMIT_THREADS threads (or, given a ``rate``, from one thread at that many a second), in a
    thread of its own so that the run can cut or kill a host meanwhile."""

    def __init__(self, targets: list[tuple[str, str]], count: int, rate: float | None = None) -> None:
        super().__init__(daemon=True)
        self.targets = targets
        self.count = count
        self.rate = rate
        self.seconds = 0.0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        threads_used = 1 if self.rate else EMIT_THREADS
        shares = [range(i, self.count, threads_used) for i in range(threads_used)]
        threads = [threading.Thread(target=self._emit, args=(share,), daemon=True) for share in shares]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.seconds = time.perf_counter() - started

    def _emit(self, indexes: range) -> None:
        from django.db import connection

        from events import emit

        started = time.monotonic()
        try:
            for i in indexes:
                if self._stop_event.is_set():
                    break
                org_id, event_type = self.targets[i % len(self.targets)]
                emit(org_id, event_type, EVENT_TYPES[event_type].sample)
                if self.rate:
                    self._stop_event.wait(max(0.0, started + (i + 1) / self.rate - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the scenario
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()


def emit_all(targets: list[tuple[str, str]], count: int) -> Emitter:
    emitter = Emitter(targets, count)
    emitter.start()
    emitter.join()
    if emitter.error is not None:
        raise emitter.error
    return emitter


def most_in(times: list[float], window: float) -> tuple[int, float]:
    """The most of ``times`` in any one sliding window [t, t + ``window``), and where that window
    starts (the count tests/e2e/test_rate_limits.py's _most_in takes). Counted in whole
    microseconds: in floats, two stamps exactly a window apart can differ by 0.99999... of it
    and count as one window (seen with the limiter's log)."""
    ticks = sorted(round(t * 1_000_000) for t in times)
    span = round(window * 1_000_000)
    most, most_at, start = 0, ticks[0] if ticks else 0, 0
    for end, at in enumerate(ticks):
        while at - ticks[start] >= span:
            start += 1
        if end - start + 1 > most:
            most, most_at = end - start + 1, ticks[start]
    return most, most_at / 1_000_000


def in_window(at: float, start: float, window: float) -> bool:
    """Whether ``at`` falls in [start, start + window), in whole microseconds as ``most_in``."""
    return 0 <= round(at * 1_000_000) - round(start * 1_000_000) < round(window * 1_000_000)


# --- 1. Rate limits ----------------------------------------------------------------------


def prepare_rate(run: Run) -> None:
    """The rate-limited organization's backlog, emitted before any worker runs: three hosts
    then compete for one organization's grants from the first second, and the emitting
    (which takes CPU from the workers on this two-core machine) is over before sending begins."""
    org, hooks = make_org(run, "cluster-rate", [(f"/rate/{t}", t) for t in RATE_TYPES])
    run.rate_org_id = org.id
    run.rate_hook_ids = [h.id for h in hooks]
    emitter = emit_all([(org.id, t) for t in RATE_TYPES], RATE_EVENTS)
    out(
        f"backlog for scenario 1: {RATE_EVENTS:,} events of one organization emitted in {emitter.seconds:.1f} s,"
        " before the workers start"
    )


def scenario_rate(run: Run) -> None:
    from deliveries import ratelimit

    out()
    out(
        f"== 1. Rate limits are cluster-wide: one organization at {RATE_PER_SECOND}/s and {RATE_PER_HOUR:,}/h,"
        f" a backlog of {RATE_EVENTS:,} events, {len(RATE_TYPES)} endpoints, {HOSTS} hosts =="
    )
    hook_ids = run.rate_hook_ids
    done = harness.wait_for_count(
        lambda: succeeded(hook_ids), RATE_EVENTS, stall_seconds=STALL_SECONDS, interval=POLL_SECONDS
    )
    wait_quiet(run, "/rate/")
    got = arrivals(run, "/rate/")
    if not got:
        run.check("rate limits", False, "nothing arrived")
        return
    sent = [a.sent_at for a in got]
    arrived = [a.arrived for a in got]
    distinct = len({a.delivery_id for a in got})
    first, last = min(sent), max(sent)
    out(
        f"{len(got):,} POSTs arrived ({distinct:,} distinct delivery ids), sent over {last - first:.1f} s ="
        f" {len(got) / max(last - first, 1e-9):.1f}/s on average"
    )
    out(f"sent by host: {hosts_text(run, Counter(a.host for a in got))}")
    most_sent, most_sent_at = most_in(sent, 1.0)
    busiest = [a for a in got if in_window(a.sent_at, most_sent_at, 1.0)]
    out(
        f"most sent in any 1 s window (X-CyberCage-Timestamp): {most_sent}"
        f" (from {clock(most_sent_at)}: {hosts_text(run, Counter(a.host for a in busiest))})"
    )
    if most_sent > RATE_PER_SECOND:
        span = max(a.sent_at for a in busiest) - min(a.sent_at for a in busiest)
        guard = ratelimit.SECOND_WINDOW_GUARD_MS / 1000
        out(
            f"  note: {most_sent} requests were stamped within {span:.3f} s. The limiter grants at most"
            f" {RATE_PER_SECOND} in any {1 + guard:.2f} s (its log below), so these {most_sent} grants spanned at least"
            f" {1 + guard:.2f} s: one of them at least was stamped {(1 + guard - span) * 1000:.0f} ms or more after its"
            " grant, past the 50 ms guard: the sending thread was held up that long between the grant and the"
            " POST (on this loaded two-core machine, waiting for a core or the GIL)"
        )
    most_arrived, most_arrived_at = most_in(arrived, 1.0)
    window = [a for a in got if in_window(a.arrived, most_arrived_at, 1.0)]
    stamps = [a.sent_at for a in window]
    out(
        f"most arrived in any 1 s window (receiver's clock): {most_arrived}"
        f" (their sent-at stamps span {max(stamps) - min(stamps):.3f} s; most lag among them"
        f" {max(a.arrived - a.sent_at for a in window) * 1000:.0f} ms)"
    )
    most_jittered, _ = most_in(arrived, 1.0 - ARRIVAL_JITTER)
    out(f"most arrived in any {1.0 - ARRIVAL_JITTER:.2f} s window (1 s less jitter allowed): {most_jittered}")
    lags = [(a.arrived - a.sent_at) * 1000 for a in got]
    out(
        f"arrival - sent-at stamp: p50 {percentile(lags, 50):.1f} ms, p99 {percentile(lags, 99):.1f} ms,"
        f" max {max(lags):.1f} ms (the stamp has 1 ms resolution)"
    )
    guard_ms = ratelimit.SECOND_WINDOW_GUARD_MS
    spread = max(a.arrived - a.sent_at for a in window) - min(a.arrived - a.sent_at for a in window)
    if most_arrived > RATE_PER_SECOND:
        out(
            f"  note: a receiver counting exact 1 s windows of arrival times saw {most_arrived}: requests sent over"
            f" {max(stamps) - min(stamps):.3f} s arrived within 1 s: their lag from stamp to arrival varied by"
            f" {spread * 1000:.0f} ms, past the limiter's {guard_ms} ms guard (the suite allows"
            f" {ARRIVAL_JITTER * 1000:.0f} ms of such jitter)"
        )
    # The limiter's own log (Redis's clock): one sorted set for the organization, whoever asks.
    log = redis_client().zrange(ratelimit.rate_key(run.rate_org_id), 0, -1, withscores=True)
    granted = [score / 1000 for _member, score in log]
    guard_window = 1.0 + ratelimit.SECOND_WINDOW_GUARD_MS / 1000
    most_granted, _ = most_in(granted, guard_window)
    out(
        f"the limiter's log (Redis): {len(granted):,} grants for {len(got):,} sends (a grant unused within"
        f" {ratelimit.SECOND_WINDOW_GUARD_MS // 2} ms is dropped, not reused); most in any {guard_window:.2f} s"
        f" window {most_granted}, in any 1 s window {most_in(granted, 1.0)[0]}"
    )
    out(
        f"most in the hour: {len(granted):,} grants of {RATE_PER_HOUR:,} (the hour's limit is not reached by this"
        " run; the same sliding log counts both windows)"
    )
    run.check(
        "every delivery of the rate-limited organization arrived, once",
        done and distinct == RATE_EVENTS == len(got),
        f"{succeeded(hook_ids):,} succeeded, {len(got):,} POSTs, {distinct:,} distinct",
    )
    run.check(
        "the limiter's log holds a grant for every send (nothing wiped it)",
        len(granted) >= len(got),
        f"{len(granted):,} grants, {len(got):,} sends",
    )
    run.check(
        f"no {guard_window:.2f} s window of the limiter's log over {RATE_PER_SECOND} grants",
        most_granted <= RATE_PER_SECOND,
        f"most {most_granted}",
    )
    run.check(
        f"no 1 s window of sent-at stamps over {RATE_PER_SECOND}", most_sent <= RATE_PER_SECOND, f"most {most_sent}"
    )
    run.check(
        f"no {1.0 - ARRIVAL_JITTER:.2f} s window of arrivals over {RATE_PER_SECOND}"
        f" (1 s less {ARRIVAL_JITTER * 1000:.0f} ms of arrival jitter, as tests/e2e/test_rate_limits.py checks)",
        most_jittered <= RATE_PER_SECOND,
        f"most {most_jittered}",
    )
    run.check(
        "the limit bound, and every host sent",
        most_sent >= 0.9 * RATE_PER_SECOND and len({a.host for a in got}) == HOSTS,
        f"busiest second {most_sent} of {RATE_PER_SECOND}; {len({a.host for a in got})} hosts sent",
    )


# --- 2. Endpoint slots -------------------------------------------------------------------


def scenario_slots(run: Run) -> None:
    out()
    out(
        f"== 2. Endpoint slots are cluster-wide: one endpoint answering in {SLOW_ANSWER_MS} ms,"
        f" {SLOW_DELIVERIES} deliveries, WEBHOOK_ENDPOINT_CONCURRENCY={ENDPOINT_CONCURRENCY}, {HOSTS} hosts =="
    )
    path = f"/slow/{SLOW_ANSWER_MS}/endpoint"
    org, hooks = make_org(run, "cluster-slots", [(path, "agent.online")])
    hook_ids = [h.id for h in hooks]
    started = time.time()
    emit_all([(org.id, "agent.online")], SLOW_DELIVERIES)
    done = harness.wait_for_count(
        lambda: succeeded(hook_ids), SLOW_DELIVERIES, stall_seconds=STALL_SECONDS, interval=POLL_SECONDS
    )
    elapsed = time.time() - started
    wait_quiet(run, path)
    got = arrivals(run, path)
    opened = receiver_get(run, "/open")
    most = opened["most"].get(path, 0)
    most_hosts = opened["most_hosts"].get(path, 0)
    at_most = [run.host_of(a) for a in opened["hosts_at_most"].get(path, [])]
    distinct = len({a.delivery_id for a in got})
    best = SLOW_DELIVERIES * SLOW_ANSWER_MS / 1000 / ENDPOINT_CONCURRENCY
    out(
        f"{len(got)} POSTs ({distinct} distinct) in {elapsed:.1f} s (at best {SLOW_DELIVERIES} x"
        f" {SLOW_ANSWER_MS / 1000:g} s / {ENDPOINT_CONCURRENCY} = {best:.1f} s)"
    )
    out(f"sent by host: {hosts_text(run, Counter(a.host for a in got))}")
    out(f"most requests open at once at the receiver: {most} (first reached with {', '.join(at_most)} holding them)")
    out(f"most hosts with a request open at once: {most_hosts}")
    run.check(
        "every delivery to the slow endpoint arrived, once",
        done and distinct == SLOW_DELIVERIES == len(got),
        f"{len(got)} POSTs, {distinct} distinct",
    )
    run.check(
        f"never more than {ENDPOINT_CONCURRENCY} requests open at once across hosts",
        most <= ENDPOINT_CONCURRENCY,
        f"most {most}",
    )
    run.check(
        "the slots were used from more than one host at once",
        most == ENDPOINT_CONCURRENCY and most_hosts >= 2,
        f"{most} open at most, {most_hosts} hosts at once",
    )


# --- 3 and 4. Faults ---------------------------------------------------------------------


@dataclass
class Fault:
    """One host's fault in the middle of a run, and what the run looked like around it."""

    label: str
    host: Host
    prefix: str
    hook_ids: list[str]
    at: float = 0.0  # when the fault began (time.time())
    back_at: float = 0.0  # link up again / replacement ready
    leased: dict[str, float] = field(default_factory=dict)  # leases at the fault
    # The faulty worker was replaced by a new one on the same host (same address).
    replaced: bool = False
    # Open deliveries whose rows were locked by an unfinished transaction once every lease
    # taken before the fault had expired (the cut host's, held open by the cut).
    locked: set[str] = field(default_factory=set)

    def by_faulty(self, arrival: Arrival) -> bool:
        """Sent by the faulty worker (a killed one sent nothing after it was killed)."""
        return arrival.host == self.host.address and not (self.replaced and arrival.sent_at >= self.at)

    def sender(self, run: Run, arrival: Arrival) -> str:
        name = run.host_of(arrival.host)
        return f"{name} (new worker)" if arrival.host == self.host.address and not self.by_faulty(arrival) else name


def wait_for_faulty_host_busy(run: Run, fault: Fault, after: int) -> None:
    """Until ``after`` deliveries have arrived and the faulty host is sending right now (so
    that it holds a claimed batch when the fault comes)."""

    def ready() -> bool:
        reply = receiver_get(run, f"/count?prefix={fault.prefix}")
        sent = reply["by_host"].get(fault.host.address, 0)
        last = reply["last_by_host"].get(fault.host.address, 0.0)
        return reply["total"] >= after and sent >= FAULTY_HOST_SENT_BEFORE and time.time() - last < BUSY_SECONDS

    if not harness.wait_until(ready, timeout=120, interval=0.02):
        raise RuntimeError(f"{fault.host.name} never took part in the run before the fault")


def analyse_fault(run: Run, fault: Fault, expected: int) -> None:
    """Every delivery arrived; what the faulty host held went out from others after its lease;
    every duplicate is a send whose lease expired under it."""
    from deliveries.models import Attempt, Delivery

    got = arrivals(run, fault.prefix)
    copies: dict[str, list[Arrival]] = defaultdict(list)
    for arrival in got:
        copies[arrival.delivery_id].append(arrival)
    for each in copies.values():
        each.sort(key=lambda a: a.sent_at)
    rows = list(Delivery.objects.filter(webhook_id__in=fault.hook_ids).values_list("id", "status", "event_id"))
    done = [r for r in rows if r[1] == Delivery.Status.SUCCEEDED]
    missing = [r[0] for r in rows if r[0] not in copies or r[1] != Delivery.Status.SUCCEEDED]
    wrong_event = [r[0] for r in rows if r[0] in copies and any(a.event_id != r[2] for a in copies[r[0]])]
    attempt_rows = Attempt.objects.filter(delivery__webhook_id__in=fault.hook_ids).count()
    out(
        f"every delivery: {len(done):,} of {expected:,} succeeded; {len(copies):,} distinct delivery ids arrived"
        f" ({len(got):,} POSTs); {attempt_rows:,} attempt rows"
    )

    # What the faulty host held: leased at the fault and not sent by another host under that lease.
    stranded: dict[str, float] = {}
    for delivery_id, lease_end in fault.leased.items():
        if not any(not fault.by_faulty(a) and a.sent_at < lease_end for a in copies.get(delivery_id, [])):
            stranded[delivery_id] = lease_end
    done_ids = {r[0] for r in done}
    delays: list[float] = []
    by_whom: Counter[str] = Counter()
    # Sent by the faulty worker alone, and recorded by it when its connections came back.
    its_own: list[str] = []
    not_out = []
    for delivery_id, lease_end in stranded.items():
        each = copies.get(delivery_id, [])
        later = [a for a in each if not fault.by_faulty(a) and a.sent_at + STAMP_RESOLUTION >= lease_end]
        if later:
            delays.append(later[0].sent_at - lease_end)
            by_whom[fault.sender(run, later[0])] += 1
        elif each and all(fault.by_faulty(a) for a in each) and delivery_id in done_ids:
            its_own.append(delivery_id)
        else:
            not_out.append(delivery_id)
    if stranded:
        ends = [lease_end - fault.at for lease_end in stranded.values()]
        out(
            f"held by {fault.host.name} at the {fault.label}: {len(stranded)} leased deliveries not sent by another"
            f" host before their lease ended ({min(ends):.1f}-{max(ends):.1f} s after the {fault.label})"
        )
        if delays:
            out(
                f"  {len(delays)} of them went out from"
                f" {', '.join(f'{name} {n}' for name, n in sorted(by_whom.items()))},"
                f" {min(delays):.1f}-{max(delays):.1f} s after their lease expired"
                f" (median {percentile(delays, 50):.1f} s; the sweeper runs every {SWEEP_INTERVAL} s)"
            )
        if its_own:
            sent_at = [a.sent_at - fault.at for d in its_own for a in copies[d]]
            locked = len(set(its_own) & fault.locked)
            why = (
                f": {locked} of them were still locked by an open transaction after every lease had expired"
                f" ({fault.host.name}'s record of them, held open by the {fault.label}), so no other worker could"
                " claim them"
                if locked
                else ""
            )
            out(
                f"  {len(its_own)} of them {fault.host.name} had sent itself ({min(sent_at):+.2f} to"
                f" {max(sent_at):+.2f} s from the {fault.label}) and nobody else did{why}; its record of them"
                " landed late: sent once, recorded late"
            )
        if not_out:
            out(f"  {len(not_out)} of them never went out from another host: {not_out[:5]}")
    else:
        out(
            f"held by {fault.host.name} at the {fault.label}: no lease (all {len(fault.leased)} leases were"
            " others'): this run did not catch it holding work, so it shows only that nothing was lost"
        )
    # Locked by an unfinished claim of the faulty host: not leased (uncommitted), not claimable.
    claimed_late = [
        d for d in fault.locked - set(stranded) if copies.get(d) and all(fault.by_faulty(a) for a in copies[d])
    ]
    if claimed_late:
        late = [min(a.sent_at for a in copies[d]) - fault.at for d in claimed_late]
        out(
            f"  {len(claimed_late)} deliveries were locked by an unfinished claim of {fault.host.name} (not leased,"
            f" not claimable by others) and went out from it {min(late):.1f}-{max(late):.1f} s after the"
            f" {fault.label}, once its connections resumed"
        )

    # Duplicates: the same delivery id twice. Allowed only where the earlier send's lease
    # expired under it (at least once): sent by the faulty host before its lease ended, and the
    # later one only after that.
    allowed, violations = [], []
    for delivery_id, each in copies.items():
        for earlier, later in zip(each, each[1:], strict=False):
            lease_end = fault.leased.get(delivery_id)
            if (
                lease_end is not None
                and fault.by_faulty(earlier)
                and earlier.sent_at < lease_end <= later.sent_at + STAMP_RESOLUTION
            ):
                allowed.append((delivery_id, earlier, later, lease_end))
            else:
                violations.append((delivery_id, earlier, later, lease_end))
    dup_ids = {d for d, *_ in allowed + violations}
    extra = len(allowed) + len(violations)
    out(f"duplicates (same X-CyberCage-Delivery-ID): {len(dup_ids)} deliveries, {extra} extra POSTs")
    for delivery_id, earlier, later, lease_end in allowed[:10]:
        late = (
            f", arrived {earlier.arrived - earlier.sent_at:.1f} s after it was sent"
            if earlier.arrived - earlier.sent_at > 1
            else ""
        )
        out(
            f"  {delivery_id}: {fault.sender(run, earlier)} sent it at {clock(earlier.sent_at)}{late}; its lease"
            f" expired at {clock(lease_end)} with no attempt recorded; {fault.sender(run, later)} sent it again at"
            f" {clock(later.sent_at)}"
        )
    if len(allowed) > 10:
        out(f"  ... and {len(allowed) - 10} more like these")
    if allowed:
        out(
            f"  why: each first went out from {fault.host.name} just before the {fault.label} took its answer (and its"
            " record); nobody recorded it, its lease expired, another worker sent it again: at least once, same id"
        )
    for delivery_id, earlier, later, lease_end in violations[:10]:
        lease = clock(lease_end) if lease_end is not None else "no lease seen at the fault"
        out(
            f"  NOT EXPLAINED {delivery_id}: {fault.sender(run, earlier)} at {clock(earlier.sent_at)}, then"
            f" {fault.sender(run, later)} at {clock(later.sent_at)} (lease {lease})"
        )
    # Sent by the faulty worker after another worker had sent (and recorded) the same attempt.
    late_sends = [(d, earlier, later) for d, earlier, later, _l in violations if fault.by_faulty(later)]
    if late_sends:
        from deliveries.models import Attempt

        for delivery_id, earlier, later in late_sends[:10]:
            rows = Attempt.objects.filter(delivery_id=delivery_id).values_list(
                "number", "requested_at", "response_status"
            )
            recorded = "; ".join(f"attempt {n} sent {clock(at.timestamp())} -> {status}" for n, at, status in rows)
            out(
                f"  {delivery_id}: {fault.sender(run, earlier)} sent it at {clock(earlier.sent_at)}, then"
                f" {fault.sender(run, later)} at {clock(later.sent_at)}; the attempt log holds: {recorded}"
            )

    run.check(
        f"{fault.label}: every delivery arrived",
        not missing and not wrong_event and len(done) == expected,
        f"{len(done):,}/{expected:,} succeeded, {len(missing)} missing, {len(wrong_event)} with a wrong body",
    )
    run.check(
        f"{fault.label}: what {fault.host.name}'s worker held went out from another worker after its lease expired"
        " (or had gone out from it, once)",
        not not_out,
        f"{len(delays)} resent by others, {len(its_own)} sent once by {fault.host.name}, {len(not_out)} neither",
    )
    run.check(
        f"{fault.label}: every duplicate is a send whose lease expired under it",
        not violations,
        f"{len(allowed)} such duplicates, {len(violations)} others",
    )
    if fault.label != "kill":
        run.check(
            f"{fault.label}: {fault.host.name} sent no attempt another host had already sent",
            not late_sends,
            f"{len(late_sends)} such sends",
        )


def scenario_cut(run: Run) -> None:
    host = run.hosts[1]
    out()
    out(
        f"== 3. A host cut off: {CUT_EVENTS:,} deliveries over {CUT_ORGS} organizations; {host.name}'s link"
        f" down for {CUT_SECONDS:.0f} s once {CUT_AFTER:,} have arrived =="
    )
    orgs = [make_org(run, f"cluster-cut-{i}", [(f"/cut/o{i}", "threat.detected")]) for i in range(CUT_ORGS)]
    fault = Fault("cut", host, "/cut/", [h.id for _, hooks in orgs for h in hooks])
    targets = [(org.id, "threat.detected") for org, _ in orgs]
    started = time.time()
    emitter = Emitter(targets, CUT_EVENTS)
    emitter.start()
    try:
        wait_for_faulty_host_busy(run, fault, CUT_AFTER)
        fault.at = time.time()
        cluster_net.cut(host)
        try:
            fault.leased = leased_now(fault.hook_ids)
            total, by_host = arrived_count(run, fault.prefix)
            done_at_cut = succeeded(fault.hook_ids)
            out(
                f"cut {fault.at - started:.1f} s into the run (ip link set {host.link} down): {total:,} POSTs had"
                f" arrived ({hosts_text(run, by_host)}); {len(fault.leased)} deliveries were leased at that moment"
            )
            all_done_at = None
            probed = False
            while time.time() < fault.at + CUT_SECONDS:
                if all_done_at is None and succeeded(fault.hook_ids) >= CUT_EVENTS:
                    all_done_at = time.time()
                if not probed and time.time() > fault.at + LEASE_SECONDS + SWEEP_INTERVAL:
                    # Every lease taken before the cut has expired and the sweeper has run.
                    probed = True
                    fault.locked = locked_rows(fault.hook_ids)
                    ages = idle_in_transaction()
                    out(
                        f"{time.time() - fault.at:.0f} s after the cut (every lease taken before it has expired):"
                        f" {len(ages)} session(s) of this database idle in a transaction open over {STUCK_SECONDS} s"
                        + (f" for {min(ages):.0f}-{max(ages):.0f} s" if ages else "")
                        + f"; {len(fault.locked)} open deliveries locked by one"
                    )
                time.sleep(0.5)
            emitter.join()
            done_in_cut = succeeded(fault.hook_ids) - done_at_cut
        finally:
            cluster_net.restore(host)
            fault.back_at = time.time()
        if emitter.error is not None:
            raise emitter.error
        others = " and ".join(h.name for h in run.hosts if h is not host)
        out(
            f"link up again after {fault.back_at - fault.at:.1f} s; meanwhile {others} recorded {done_in_cut:,}"
            " deliveries"
        )
        # Back: its stalled connections resume on TCP's retransmission timer, and with them
        # whatever it was in the middle of.
        resumed_at = None
        deadline = time.time() + REJOIN_SECONDS
        while time.time() < deadline and (all_done_at is None or resumed_at is None):
            if all_done_at is None and succeeded(fault.hook_ids) >= CUT_EVENTS:
                all_done_at = time.time()
            if resumed_at is None and cluster_net.stalled_sockets(host) == 0:
                resumed_at = time.time()
            time.sleep(0.5)
        if all_done_at is None:
            out(f"only {succeeded(fault.hook_ids):,} of {CUT_EVENTS:,} recorded {REJOIN_SECONDS:.0f} s after the cut")
        else:
            when = "while it was still cut off" if all_done_at < fault.back_at else "after the link came back"
            out(f"all {CUT_EVENTS:,} recorded {all_done_at - fault.at:.1f} s after the cut, {when}")
        out(
            f"{host.name}'s stalled TCP connections resumed {resumed_at - fault.back_at:.1f} s after the link came back"
            if resumed_at
            else f"{host.name} still has stalled connections {REJOIN_SECONDS:.0f} s after the link came back"
        )
        resumed = resumed_at is not None
        # New work after its return: it takes part again (and sends nothing already sent).
        follow_up = Emitter(targets, FOLLOW_UP_EVENTS)
        follow_up_at = time.time()
        follow_up.start()
        follow_up.join()
        expected = CUT_EVENTS + FOLLOW_UP_EVENTS
        harness.wait_for_count(
            lambda: succeeded(fault.hook_ids), expected, stall_seconds=STALL_SECONDS, interval=POLL_SECONDS
        )

        def rejoined() -> int:
            return sum(1 for a in arrivals(run, fault.prefix) if a.host == host.address and a.sent_at >= follow_up_at)

        harness.wait_until(rejoined, timeout=60, interval=1.0)
        wait_quiet(run, fault.prefix)
        again = rejoined()
        out(f"after its return {FOLLOW_UP_EVENTS} more events: {host.name} sent {again} of their deliveries")
        run.check(f"cut: {host.name} rejoined and delivered again", bool(resumed) and again > 0, f"{again} sent")
        analyse_fault(run, fault, expected)
    finally:
        emitter.stop()


def scenario_kill(run: Run) -> None:
    host = run.hosts[2]
    out()
    out(
        f"== 4. A host's worker killed and replaced: {KILL_EVENTS:,} deliveries over {KILL_ORGS} organizations"
        f" (answered in {KILL_ANSWER_MS} ms); SIGKILL to {host.name}'s worker once {KILL_AFTER:,} have arrived,"
        " then a new worker there =="
    )
    prefix = f"/slow/{KILL_ANSWER_MS}/kill/"
    orgs = [make_org(run, f"cluster-kill-{i}", [(f"{prefix}o{i}", "threat.blocked")]) for i in range(KILL_ORGS)]
    fault = Fault("kill", host, prefix, [h.id for _, hooks in orgs for h in hooks], replaced=True)
    started = time.time()
    emitter = Emitter([(org.id, "threat.blocked") for org, _ in orgs], KILL_EVENTS)
    emitter.start()
    try:
        wait_for_faulty_host_busy(run, fault, KILL_AFTER)
        old = run.workers[host.name]
        fault.at = time.time()
        old.stop(signal.SIGKILL)
        fault.leased = leased_now(fault.hook_ids)
        total, by_host = arrived_count(run, fault.prefix)
        out(
            f"SIGKILL to {host.name}'s worker (pid {old.pid}) {fault.at - started:.1f} s into the run: {total:,} POSTs"
            f" had arrived ({hosts_text(run, by_host)}); {len(fault.leased)} deliveries were leased at that moment"
        )
        replacement = start_worker(run, host, f"{host.name}-new")
        replacement.wait_for_log(r"ready\.", timeout=90)
        fault.back_at = time.time()
        out(f"a new worker in {host.name} (pid {replacement.pid}) was ready {fault.back_at - fault.at:.1f} s later")
        emitter.join()
        if emitter.error is not None:
            raise emitter.error
        done = harness.wait_for_count(
            lambda: succeeded(fault.hook_ids), KILL_EVENTS, stall_seconds=STALL_SECONDS, interval=POLL_SECONDS
        )
        finished = time.time()
        wait_quiet(run, fault.prefix)
        got = arrivals(run, fault.prefix)
        out(
            f"all {KILL_EVENTS:,} recorded {finished - fault.at:.1f} s after the kill"
            if done
            else f"only {succeeded(fault.hook_ids):,} of {KILL_EVENTS:,} succeeded before progress stalled"
        )
        senders = Counter(fault.sender(run, a) for a in got)
        out(f"sent by: {', '.join(f'{name} {n:,}' for name, n in sorted(senders.items()))}")
        analyse_fault(run, fault, KILL_EVENTS)
    finally:
        emitter.stop()


def scenario_slowdb(run: Run) -> None:
    """Not in the default run: PostgreSQL's replies to one host held back, so that a claim
    (four round trips: BEGIN, SET LOCAL, the claim, COMMIT) comes back after its lease ended."""
    host = run.hosts[1]
    count = int(SLOWDB_RATE * (SLOWDB_SECONDS + SLOWDB_LEAD_SECONDS))
    out()
    out(
        f"== 5. A host whose database replies are slow: {host.name}'s worker reaches PostgreSQL through a"
        f" forwarder that holds every reply {SLOWDB_DELAY} s for {SLOWDB_SECONDS:.0f} s; {count:,} events at"
        f" {SLOWDB_RATE:g}/s to one endpoint answering in {SLOWDB_ANSWER_MS} ms (a backlog builds) =="
    )
    SLOWDB_DELAY_FILE.unlink(missing_ok=True)
    cluster_net.remember_files(str(SLOWDB_DELAY_FILE))
    proxy = Proc(
        "cluster-delay-proxy",
        [
            sys.executable,
            "bench/cluster_delay_proxy.py",
            BRIDGE_ADDRESS,
            str(SLOWDB_PORT),
            str(PG_PORT),
            str(SLOWDB_DELAY_FILE),
        ],
        dict(os.environ),
    )
    cluster_net.remember(proxy)
    wait_for_bridge_port(SLOWDB_PORT)
    run.workers[host.name].stop()
    env = service_env(BRIDGE_ADDRESS)
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(f":{PG_PORT}/", f":{SLOWDB_PORT}/")
    worker = Proc(f"cluster-{host.name}-slowdb", worker_command(host, f"{host.name}-slowdb"), env)
    cluster_net.remember(worker)
    run.workers[host.name] = worker
    worker.wait_for_log(r"ready\.", timeout=90)
    out(f"{host.name}'s worker restarted with DATABASE_URL on {BRIDGE_ADDRESS}:{SLOWDB_PORT}")
    prefix = f"/slow/{SLOWDB_ANSWER_MS}/slowdb/"
    org, hooks = make_org(run, "cluster-slowdb", [(f"{prefix}endpoint", "threat.detected")])
    fault = Fault("slowdb", host, prefix, [h.id for h in hooks])
    emitter = Emitter([(org.id, "threat.detected")], count, rate=SLOWDB_RATE)
    emitter.start()
    try:
        time.sleep(SLOWDB_LEAD_SECONDS / 2)
        SLOWDB_DELAY_FILE.write_text(str(SLOWDB_DELAY))
        fault.at = time.time()
        fault.leased = leased_now(fault.hook_ids)
        out(f"replies held back from {clock(fault.at)}; {len(fault.leased)} deliveries leased at that moment")
        time.sleep(SLOWDB_SECONDS)
        SLOWDB_DELAY_FILE.unlink()
        fault.back_at = time.time()
        emitter.join()
        done = harness.wait_for_count(
            lambda: succeeded(fault.hook_ids), count, stall_seconds=STALL_SECONDS, interval=POLL_SECONDS
        )
        time.sleep(SLOWDB_DELAY + QUIET_SECONDS)  # replies held before the end reach the worker
        wait_quiet(run, fault.prefix)
        got = arrivals(run, fault.prefix)
        while_slow = sum(1 for a in got if a.host == host.address and fault.at <= a.sent_at < fault.back_at)
        out(
            f"replies back to normal after {fault.back_at - fault.at:.0f} s; {host.name} sent {while_slow} POSTs"
            " meanwhile"
            + ("" if done else f"; only {succeeded(fault.hook_ids):,} of {count:,} succeeded before progress stalled")
        )
        analyse_fault(run, fault, count)
    finally:
        emitter.stop()
        SLOWDB_DELAY_FILE.unlink(missing_ok=True)


# --- Teardown ----------------------------------------------------------------------------


def teardown(run: Run, listening_before: list[str]) -> None:
    out()
    out("== Cleanup ==")
    stopped = []
    for name, proc in run.workers.items():
        proc.stop()
        stopped.append(f"worker {name}")
    if run.beat is not None:
        run.beat.stop()
        stopped.append("beat")
    harness.stop_all()  # the receiver and the forwarders
    removed = cluster_net.cleanup()  # the beat's schedule files too
    out("stopped: " + (", ".join(stopped + ["receiver", "forwarders"]) if stopped else "nothing was running"))
    out("removed: " + (", ".join(removed) if removed else "nothing"))
    left = cluster_net.leftovers()
    listening_after = cluster_net.listeners((PG_PORT, REDIS_PORT))
    out(f"PostgreSQL and Redis listen on: {', '.join(listening_after)} (before the run: {', '.join(listening_before)})")
    run.check("nothing of the run is left (namespaces, links, listeners, processes)", not left, ", ".join(left))
    run.check(
        "PostgreSQL and Redis listen only where they did before", listening_after == listening_before, "unchanged"
    )


# --- Main --------------------------------------------------------------------------------


DEFAULT_SCENARIOS = ["rate", "slots", "cut", "kill"]


def main() -> int:
    scenarios = {
        "rate": scenario_rate,
        "slots": scenario_slots,
        "cut": scenario_cut,
        "kill": scenario_kill,
        "slowdb": scenario_slowdb,
    }
    chosen = sys.argv[1:] or DEFAULT_SCENARIOS
    if "-h" in sys.argv or "--help" in sys.argv or set(chosen) - set(scenarios):
        print(__doc__)
        return 0 if set(chosen) <= set(scenarios) | {"-h", "--help"} else 2
    if os.geteuid() != 0:
        print("bench/cluster needs root (network namespaces)", file=sys.stderr)
        return 2
    _stop_on_signal()
    run = Run()
    RESULTS.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("")
    interrupted = False
    listening_before = cluster_net.listeners((PG_PORT, REDIS_PORT))
    try:
        leftover = cluster_net.cleanup()
        if leftover:
            out("removed what an earlier run left: " + ", ".join(leftover))
        setup_database()
        harness.django_setup()
        redis_client().flushdb()  # our own database number only
        redis_client().set(SENTINEL_KEY, str(os.getpid()))
        out(f"webhooks cluster demonstration: {HOSTS} worker hosts, one PostgreSQL, one Redis")
        for line in harness.machine_lines(*versions()):
            out(line)
        out(harness.cpu_probe())
        out(f"database {DATABASE}, redis db {REDIS_DB}; PostgreSQL and Redis listen on {', '.join(listening_before)}")
        start_network(run)
        start_receiver(run)
        if "rate" in chosen:
            prepare_rate(run)
        start_services(run)
        for name in chosen:
            scenario = scenarios[name]
            try:
                scenario(run)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - report it and go on with the others
                out(f"  scenario failed: {exc!r}")
                out(traceback.format_exc())
                run.check(f"{scenario.__name__} ran to the end", False, repr(exc))
            if redis_client().get(SENTINEL_KEY) != str(os.getpid()).encode():
                run.check(
                    f"nobody else flushed Redis db {REDIS_DB} during {name}",
                    False,
                    "the run's keys are gone (limiter logs, slots, queued wake-ups): its figures are void",
                )
                redis_client().set(SENTINEL_KEY, str(os.getpid()))
        out()
        out("at the end: " + harness.cpu_probe())
    except KeyboardInterrupt:
        interrupted = True
        out("interrupted")
    except Exception as exc:  # noqa: BLE001 - clean up, then report
        out(f"failed: {exc!r}")
        out(traceback.format_exc())
        run.check("the run got going", False, repr(exc))
    finally:
        _ignore_signals()
        try:
            teardown(run, listening_before)
        finally:
            out()
            out("== Summary ==")
            for check in run.checks:
                out(f"  {'PASS' if check.ok else 'FAIL'}  {check.name}")
            held = bool(run.checks) and all(c.ok for c in run.checks) and not interrupted
            verdict = "every guarantee held" if held else "NOT every guarantee held"
            out(f"(whole run: {time.time() - run.started:.0f} s) {verdict}")
    if interrupted:
        return 128 + _signal_received
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())

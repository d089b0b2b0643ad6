"""The benchmark of the delivery pipeline: one command, brings up what it needs, cleans up.

    python bench/run.py [throughput floor latency isolation emit history rss] [--profile]

Default: all scenarios. Results go to stdout and to bench/results/latest.txt; process logs to
bench/results/logs/. Needs PostgreSQL and Redis running. It creates and migrates its own
database (``webhooks_bench``, afresh each run) and takes its own Redis database (13, or 14 when
13 has other clients) for broker, limiter and slots. It starts: nginx as the receiver (a
multi-process Python receiver if nginx is not installed), a Python receiver that records
arrival times (latency and isolation), two Celery workers from the Procfile's ``worker:``
line, gunicorn from the ``web:`` line (emit over REST), and the floor's worker
(bench/floor_app.py). Everything it started is stopped at the end, on Ctrl-C and on failure.

``--profile`` also samples the throughput workers with py-spy (results/pyspy-*.txt and a
summary); the figures of a profiled run are slower than a clean one.

Environment: BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_LATENCY_SECONDS (30),
BENCH_WEBHOOK_TIMEOUT (10), BENCH_WORKERS (2), BENCH_HISTORY_EVENTS (100000: x10 webhooks).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and _VENV_PYTHON.exists():
    # ``python bench/run.py`` with any interpreter: run under the project's virtualenv.
    os.execv(str(_VENV_PYTHON), [str(_VENV_PYTHON), __file__, *sys.argv[1:]])

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import json  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import harness  # noqa: E402
from harness import LOGS, RESULTS, CpuMeter, Proc, percentile  # noqa: E402

from events.catalogue import EVENT_TYPES  # noqa: E402 - pure module, no Django needed

SCENARIOS = ("throughput", "floor", "latency", "isolation", "emit", "history", "rss")

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/webhooks_bench")
# Redis databases the bench may take (the test suite uses 1-12); the first no one else uses.
REDIS_CANDIDATES = ("redis://127.0.0.1:6379/13", "redis://127.0.0.1:6379/14")
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "30"))
WEBHOOK_TIMEOUT = os.environ.get("BENCH_WEBHOOK_TIMEOUT", "10")
WORKER_PROCESSES = int(os.environ.get("BENCH_WORKERS", "2"))
HISTORY_EVENTS = int(os.environ.get("BENCH_HISTORY_EVENTS", "100000"))
# Producers of the throughput run: one process emits ~200/s here, which would cap the run.
EMITTERS = int(os.environ.get("BENCH_EMITTERS", "4"))

THROUGHPUT_EVENTS = 2_000
THROUGHPUT_ORGS = 10
WEBHOOKS_PER_ORG = 5
FLOOR_TASKS = 10_000
# A run that makes no progress for this long has stalled: report it rather than wait on.
STALL_SECONDS = 30.0
LATENCY_RATE = 100.0
ISOLATION_RATE = 20.0
ISOLATION_SECONDS = 15.0
ISOLATION_HANGING = 50
# Hanging webhooks of one organization (the quota's default, then raised), with events each.
ISOLATION_MANY_HANGING = 40
ISOLATION_MOST_HANGING = 100
ISOLATION_EVENTS_EACH = 2
EMIT_COUNT = 5_000
# ... or as many as fit in this many seconds, whichever comes first (slow disks, busy machines).
EMIT_SECONDS = 10.0
EMIT_THREADS = 8
REST_SECONDS = 10
REST_CONCURRENCY = 8
HISTORY_WEBHOOKS = 10
HISTORY_DAYS = 30
HISTORY_REQUESTS = 200
# Rate limits so high they never bind: the benchmark measures the pipeline, not the limiter.
UNBOUND_RATE = "1000000000"

# The document's threat.detected example, as the catalogue holds it.
DATA = EVENT_TYPES["threat.detected"].sample


def _choose_redis_url() -> str:
    """BENCH_REDIS_URL, else the first candidate database without other clients: a worker of
    someone else's listening there would take the bench's messages (seen while developing it:
    a test run's worker on db 13 swallowed a quarter of the wake-ups)."""
    import redis

    if os.environ.get("BENCH_REDIS_URL"):
        return os.environ["BENCH_REDIS_URL"]
    for url in REDIS_CANDIDATES:
        client = redis.Redis.from_url(url)
        db = int(url.rsplit("/", 1)[1])
        me = client.client_id()
        if not [c for c in client.client_list() if int(c.get("db", -1)) == db and int(c["id"]) != me]:
            client.close()
            return url
        client.close()
    raise SystemExit(f"every one of {REDIS_CANDIDATES} has other clients connected; set BENCH_REDIS_URL")


REDIS_URL = _choose_redis_url()

# The service's settings for the bench process and every process it starts.
SERVICE_ENV = {
    "DJANGO_SETTINGS_MODULE": "webhooks_project.settings",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_RATE_PER_SECOND": UNBOUND_RATE,
    "WEBHOOK_RATE_PER_HOUR": UNBOUND_RATE,
    # The API's per-key request limits would cap the REST figures; they are not what is measured.
    "API_THROTTLE_RATE": "",
    "API_EVENTS_THROTTLE_RATE": "",
    "WEBHOOK_TIMEOUT": WEBHOOK_TIMEOUT,
    "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
    "PYTHONUNBUFFERED": "1",
}
# The services the bench starts log as deployed (LOG_LEVEL as given, else the service's INFO);
# the bench process itself only warnings.
SERVICE_LOG_LEVEL = os.environ.get("LOG_LEVEL")
os.environ.update(SERVICE_ENV, LOG_LEVEL="WARNING")


def service_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    if SERVICE_LOG_LEVEL is None:
        env.pop("LOG_LEVEL")
    else:
        env["LOG_LEVEL"] = SERVICE_LOG_LEVEL
    return env


# --- Output ------------------------------------------------------------------------------

_lines: list[str] = []


def out(line: str = "") -> None:
    print(line, flush=True)
    _lines.append(line)


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    target: str
    ok: bool | None


@dataclass
class State:
    figures: list[Figure] = field(default_factory=list)
    nginx: Proc | None = None
    nginx_port: int = 0
    receiver: Proc | None = None
    receiver_port: int = 0
    workers: list[Proc] = field(default_factory=list)
    throughput: float | None = None
    floor: float | None = None
    rss: dict[str, float] = field(default_factory=dict)
    # Service-side CPU (workers, PostgreSQL, Redis, receiver) per delivery and per floor POST.
    throughput_cpu_us: float | None = None
    floor_cpu_us: float | None = None
    profile: bool = False


def figure(state: State, name: str, value: float | None, unit: str, target: str, ok: bool | None) -> None:
    state.figures.append(Figure(name, value, unit, target, ok))


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


# --- Setup -------------------------------------------------------------------------------


def setup_database() -> None:
    import psycopg2

    parts = urlparse(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        # Afresh on every run: nothing a previous (perhaps interrupted) run left counts.
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
        cwd=ROOT,
        env=dict(os.environ),
        check=True,
    )


def django_setup() -> None:
    import warnings

    import django

    # WhiteNoise warns once that collectstatic has not run: irrelevant to the API timings.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()


def pg_backends() -> list[int]:
    """PostgreSQL server processes serving the bench's database (others' are not ours to count)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def versions() -> tuple[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return pg, redis_client().info("server")["redis_version"]


# --- Receivers and workers ---------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_body_buffer_size 1m;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        {status}
        location / {{ return 200 'ok'; }}
    }}
}}
"""


def start_nginx(state: State) -> None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    port = harness.free_port()
    if binary is None:
        out("receiver: nginx not installed; using the multi-process Python receiver (4 processes)")
        state.nginx = Proc(
            "receiver-throughput",
            [sys.executable, "bench/receiver.py", str(port), "--processes", "4"],
            dict(os.environ),
        )
        harness.wait_for_port(port)
        state.nginx_port = port
        return
    tmp = RESULTS / "nginx"
    tmp.mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    for status in ("location = /nginx_status { stub_status; }", ""):
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, status=status))
        test = subprocess.run([binary, "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True)
        if test.returncode == 0:
            break
    else:
        raise RuntimeError(f"nginx config refused:\n{test.stderr}")
    state.nginx = Proc("nginx", [binary, "-p", str(tmp), "-c", str(conf)], dict(os.environ))
    harness.wait_for_port(port)
    state.nginx_port = port
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    out(f"receiver: {version}, 1 worker process, keep-alive, `return 200 'ok'` on 127.0.0.1:{port}")


def nginx_requests(state: State) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state.nginx_port}/nginx_status", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    match = re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)", text)
    return int(match.group(3)) if match else None


def nginx_pids(state: State) -> list[int]:
    assert state.nginx is not None
    return [state.nginx.pid, *harness.children_of(state.nginx.pid)]


def start_receiver(state: State) -> None:
    port = harness.free_port()
    state.receiver = Proc("receiver-latency", [sys.executable, "bench/receiver.py", str(port)], dict(os.environ))
    harness.wait_for_port(port)
    state.receiver_port = port


def receiver_get(state: State, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{state.receiver_port}{path}", timeout=10) as response:
        return json.loads(response.read())


def start_workers(state: State) -> None:
    env = service_env()
    foreign = consumers_of_our_db(set())
    if foreign:
        out(f"WARNING: other processes consume from {REDIS_URL} and will take the bench's messages: {foreign}")
    command = harness.procfile_command("worker", env)
    if command[0] == "celery":
        command = [sys.executable, "-m", "celery", *command[1:]]
    for i in range(WORKER_PROCESSES):
        state.workers.append(Proc(f"worker{i + 1}", [*command, "-n", f"bench{i + 1}@%h"], env))
    for worker in state.workers:
        worker.wait_for_log(r"ready\.", timeout=60)
    shown = " ".join(harness.procfile_command("worker", env))
    pids = ", ".join(str(w.pid) for w in state.workers)
    out(f"workers: {WORKER_PROCESSES} processes (pids {pids}) of the Procfile's `{shown}`")


def stop_workers(state: State) -> None:
    for i, worker in enumerate(state.workers):
        name = f"worker{i + 1}"  # the workers are started twice: the larger peak counts
        state.rss[name] = max(state.rss.get(name, 0.0), harness.peak_rss_mb(worker.pid))
    for worker in state.workers:
        worker.stop()
    state.workers = []


def make_org(name: str, urls: list[str]):
    from webhooks import services as webhook_services

    org = webhook_services.organization_create(name=name)
    webhooks = [webhook_services.webhook_create(organization=org, url=url, events=["*"]).webhook for url in urls]
    return org, webhooks


# --- Scenarios ---------------------------------------------------------------------------


def scenario_emit(state: State) -> None:
    from events.services import emit
    from webhooks import services as webhook_services
    from webhooks_project.celery import app as celery_app

    out()
    out("== 5. Emit rate (workers stopped) ==")
    org, _ = make_org("bench-emit", ["http://127.0.0.1:9/emit"])
    for _ in range(50):  # warm-up: connections, caches
        emit(org, "threat.detected", DATA)
    started = time.perf_counter()
    cpu_started = time.process_time()
    count = 0
    while count < EMIT_COUNT and time.perf_counter() - started < EMIT_SECONDS:
        emit(org, "threat.detected", DATA)
        count += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    rate = count / elapsed
    out(
        f"emit() in process: {count:,} emits in {elapsed:.2f} s = {rate:,.0f} events/s"
        f" ({elapsed / count * 1e6:.0f} us each, {cpu / count * 1e6:.0f} us of it CPU in this process;"
        " includes storing the event and its deliveries, the durable commit, and waking the webhooks)"
    )
    figure(state, "emit() in process", rate, "events/s", ">= 2,000/s", rate >= 2000)
    # The broker's share: the same send_task alone.
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(1_000):
        celery_app.send_task("bench.null", args=["evt_x"], queue="bench-null")
    send_us = (time.perf_counter() - started) / 1_000 * 1e6
    send_cpu_us = (time.process_time() - cpu_started) / 1_000 * 1e6
    out(f"  of which the broker send alone (send_task): {send_us:.0f} us each, {send_cpu_us:.0f} us of it CPU")
    # The same from several threads: commits of concurrent transactions share WAL flushes.
    threaded = emit_threaded(org, EMIT_COUNT, EMIT_THREADS, EMIT_SECONDS)
    out(f"emit() in process from {EMIT_THREADS} threads: {threaded:,.0f} events/s")
    figure(state, f"emit() in process, {EMIT_THREADS} threads", threaded, "events/s", "(info)", None)

    _, key = webhook_services.api_key_create(organization=org)
    port = harness.free_port()
    env = service_env(PORT=str(port), WEB_CONCURRENCY="2")
    command = harness.procfile_command("web", env)
    gunicorn = Proc("gunicorn", [str(ROOT / ".venv" / "bin" / command[0]), *command[1:]], env)
    try:
        harness.wait_for_port(port, timeout=30)
        url = f"http://127.0.0.1:{port}/ui/api/events"
        body = json.dumps({"event": "threat.detected", "data": DATA}).encode()
        for _ in range(20):  # warm every gunicorn worker's imports and connections
            request = urllib.request.Request(
                url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202, response.status
        meter = CpuMeter(
            {
                "gunicorn": lambda: [gunicorn.pid, *harness.children_of(gunicorn.pid)],
                "postgres (bench db backends)": pg_backends,
            }
        )
        meter.start()
        rate, failed, client = rest_load(url, body, key)
        used = meter.stop()
        out(
            f"POST /ui/api/events via gunicorn (WEB_CONCURRENCY=2, 4 threads each), {REST_CONCURRENCY} concurrent"
            f" keep-alive clients ({client}), {REST_SECONDS} s: {rate:,.0f} events/s, {failed} non-2xx/failed"
        )
        out(
            "  CPU during it: "
            + ", ".join(
                f"{name} {seconds / REST_SECONDS * 100:.0f}%"
                for name, seconds in used.items()
                if not name.startswith("bench process")
            )
            + " (of one core)"
        )
        figure(state, "POST /ui/api/events", rate, "events/s", "(info)", None)
    finally:
        gunicorn.stop()


def emit_threaded(org, count: int, threads: int, seconds: float) -> float:
    from django.db import connection

    from events.services import emit

    done = [0] * threads
    started = time.perf_counter()

    def run(i: int) -> None:
        try:
            while done[i] < count // threads and time.perf_counter() - started < seconds:
                emit(org, "threat.detected", DATA)
                done[i] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def rest_load(url: str, body: bytes, key: str) -> tuple[float, int, str]:
    """(requests/s, failures, client description) for REST_SECONDS of concurrent POSTs."""
    ab = shutil.which("ab")
    if ab:
        body_file = RESULTS / "emit-body.json"
        body_file.write_bytes(body)
        result = subprocess.run(
            [
                ab,
                "-k",
                "-q",
                "-c",
                str(REST_CONCURRENCY),
                "-t",
                str(REST_SECONDS),
                "-n",
                "10000000",
                "-p",
                str(body_file),
                "-T",
                "application/json",
                "-H",
                f"Authorization: Bearer {key}",
                url,
            ],  # fmt: skip
            capture_output=True,
            text=True,
        )
        text = result.stdout
        rate = float(re.search(r"Requests per second:\s+([\d.]+)", text).group(1))
        failed = int(re.search(r"Failed requests:\s+(\d+)", text).group(1))
        non2xx = re.search(r"Non-2xx responses:\s+(\d+)", text)
        return rate, failed + (int(non2xx.group(1)) if non2xx else 0), "ApacheBench -k"
    # No ab: Python threads with keep-alive sessions (they take CPU from the server).
    import requests

    done = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + REST_SECONDS

    def client() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while time.monotonic() < deadline:
            ok = session.post(url, data=body, headers=headers, timeout=30).status_code == 202
            with lock:
                done[0 if ok else 1] += 1

    threads = [threading.Thread(target=client) for _ in range(REST_CONCURRENCY)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.monotonic() - started), done[1], "Python requests threads"


def scenario_throughput(state: State) -> None:
    from django.db.models import Count

    from deliveries.models import Attempt, Delivery

    out()
    out(
        f"== 1. Throughput: {THROUGHPUT_EVENTS:,} events x {WEBHOOKS_PER_ORG} webhooks over {THROUGHPUT_ORGS} orgs"
        f" = {THROUGHPUT_EVENTS * WEBHOOKS_PER_ORG:,} deliveries =="
    )
    out("before it, " + harness.cpu_probe())
    orgs, webhook_ids = [], []
    for i in range(THROUGHPUT_ORGS):
        org, webhooks = make_org(
            f"bench-throughput-{i}",
            [f"http://127.0.0.1:{state.nginx_port}/o{i}/w{j}" for j in range(WEBHOOKS_PER_ORG)],
        )
        orgs.append(org)
        webhook_ids += [webhook.id for webhook in webhooks]
    org_ids = [org.id for org in orgs]
    expected = THROUGHPUT_EVENTS * WEBHOOKS_PER_ORG
    # By webhook: the history indexes lead with it (deliveries have no organization index).
    # emit() stores every delivery before it returns, so once emitting is over the run is done
    # when none is open; counting the open ones costs PostgreSQL less as the run nears its end.
    deliveries = Delivery.objects.filter(webhook_id__in=webhook_ids)
    still_open = deliveries.filter(status__in=Delivery.OPEN_STATUSES)
    requests_before = nginx_requests(state)
    profilers = start_profilers(state, "throughput") if state.profile else []
    meter = worker_meter(state, receiver=nginx_pids)
    meter.start()
    started, emitted = emit_in_parallel(org_ids, THROUGHPUT_EVENTS, EMITTERS)
    done = harness.wait_for_count(lambda: expected - still_open.count(), expected, stall_seconds=STALL_SECONDS)
    done = done and deliveries.filter(status=Delivery.Status.SUCCEEDED).count() == expected
    elapsed = time.time() - started
    used = meter.stop()
    stop_profilers(profilers)
    if not done:
        report_stall(org_ids, expected)
        diagnose_stall(state, "throughput")
        figure(state, "throughput", None, "deliveries/s", ">= 1,000/s", False)
        return
    rate = expected / elapsed
    state.throughput = rate
    out(
        f"{expected:,} deliveries succeeded in {elapsed:.2f} s from the first emit = {rate:,.0f} deliveries/s"
        f" (emitting took {emitted:.2f} s, {EMITTERS} emitter processes)"
    )
    attempts = Attempt.objects.filter(delivery__organization_id__in=org_ids).count()
    by_status = dict(Delivery.objects.filter(organization_id__in=org_ids).values_list("status").annotate(n=Count("id")))
    requests_after = nginx_requests(state)
    posts = (
        f", receiver saw {requests_after - requests_before - 1:,} POSTs"
        if requests_before is not None and requests_after is not None
        else ""
    )
    out(f"  check: deliveries by status {by_status}, {attempts:,} attempt rows{posts}")
    out("  CPU during the run (% of one core; 2 cores = 200%): " + cpu_shares(used, elapsed))
    per = {name: seconds / expected * 1e6 for name, seconds in used.items()}
    out("  CPU per delivery: " + ", ".join(f"{name} {us:.0f} us" for name, us in per.items()))
    state.throughput_cpu_us = sum(us for name, us in per.items() if not name.startswith("bench"))
    figure(state, "throughput", rate, "deliveries/s", ">= 1,000/s", rate >= 1000)


def run_forked(shares: list[list[int]], work) -> tuple[float, float]:
    """Run ``work(share)`` in one forked process per share, all released at once.

    Returns (time.time() when the first began, seconds until the last finished).
    """
    import multiprocessing

    from django.db import connections

    connections.close_all()  # each child opens its own
    context = multiprocessing.get_context("fork")
    go = context.Event()
    results = context.Queue()

    def child(share: list[int]) -> None:
        report: dict[str, object] = {}
        try:
            go.wait()
            report["first"] = time.time()
            work(share)
            report["last"] = time.time()
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            report["error"] = repr(exc)
        results.put(report)

    # Daemons: an interrupted bench does not wait for its producers to finish.
    children = [context.Process(target=child, args=(share,), daemon=True) for share in shares]
    for process in children:
        process.start()
    time.sleep(0.5)  # every child is waiting on the event
    go.set()
    reports: list[dict] = []
    while len(reports) < len(children):
        try:
            reports.append(results.get(timeout=1.0))
        except queue.Empty:
            if not any(process.is_alive() for process in children) and results.empty():
                raise RuntimeError("a forked producer died without a report") from None
    for process in children:
        process.join(10)
    errors = [r["error"] for r in reports if r.get("error")]
    if errors:
        raise RuntimeError(f"a forked producer failed: {errors[0]}")
    first = min(r["first"] for r in reports)
    return first, max(r["last"] for r in reports) - first


def emit_in_parallel(org_ids: list[str], count: int, processes: int) -> tuple[float, float]:
    """Emit ``count`` events round-robin over ``org_ids`` from ``processes`` forked producers."""

    def work(indexes: list[int]) -> None:
        from events.services import emit

        for i in indexes:
            emit(org_ids[i % len(org_ids)], "threat.detected", DATA)

    return run_forked([list(range(i, count, processes)) for i in range(processes)], work)


def consumers_of_our_db(exclude_pids: set[int]) -> list[str]:
    """Processes other than ``exclude_pids`` blocked on a queue of our Redis database: a stray
    worker there takes the benchmark's messages (and, pointed at another PostgreSQL database,
    finds no deliveries and drops the wake-up)."""
    db = int(urlparse(REDIS_URL).path.lstrip("/") or 0)
    port = urlparse(REDIS_URL).port or 6379
    clients = redis_client().client_list()
    waiting = {
        c["addr"] for c in clients if int(c.get("db", -1)) == db and c.get("cmd") in ("brpop", "blpop", "bzpopmin")
    }
    if not waiting:
        return []
    found = []
    listing = subprocess.run(["ss", "-tnpH", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        match = re.search(r"pid=(\d+)", line)
        if len(fields) >= 4 and fields[3] in waiting and match and int(match.group(1)) not in exclude_pids:
            pid = int(match.group(1))
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
            except OSError:
                command = "?"
            found.append(f"pid {pid}: {command}")
    return found


def broker_keys(client) -> list[str]:
    return sorted(key.decode() for key in client.scan_iter(count=1000) if not key.startswith(b"whk:"))


def worker_meter(state: State, receiver=None) -> CpuMeter:
    groups = {f"worker{i + 1}": (lambda w=w: [w.pid]) for i, w in enumerate(state.workers)}
    groups["postgres (bench db backends)"] = pg_backends
    groups["redis-server"] = lambda: harness.pids_named("redis-server")
    if receiver is not None:
        groups["receiver (nginx)"] = lambda: receiver(state)
    return CpuMeter(groups)


def cpu_shares(used: dict[str, float], elapsed: float) -> str:
    return ", ".join(f"{name} {seconds / elapsed * 100:.0f}%" for name, seconds in used.items())


def diagnose_stall(state: State, name: str) -> None:
    """What the workers, PostgreSQL and the broker were doing when progress stopped."""
    from django.db import connection

    client = redis_client()
    out(f"  STALL in {name}: broker {client.llen('webhooks')} queued, {client.hlen('unacked')} unacked")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 100)"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND (state <> 'idle' OR wait_event_type = 'Lock')"
        )
        for row in cursor.fetchall():
            out(f"  postgres backend {row}")
    spy = ROOT / ".venv" / "bin" / "py-spy"
    for i, worker in enumerate(state.workers):
        if not worker.alive():
            out(f"  worker{i + 1} (pid {worker.pid}) has EXITED with {worker.popen.returncode}")
            continue
        if not spy.exists():
            continue
        dump = subprocess.run([str(spy), "dump", "--pid", str(worker.pid)], capture_output=True, text=True)
        target = LOGS / f"stall-{name}-worker{i + 1}.txt"
        target.write_text(dump.stdout + dump.stderr)
        tops = re.findall(r"Thread \d+ \((\w+(?:\+gil)?)\).*\n\s+(\S+ \([^)]*\))", dump.stdout)
        summary: dict[str, int] = {}
        for thread_state, frame in tops:
            key = f"{thread_state} {frame}"
            summary[key] = summary.get(key, 0) + 1
        out(f"  worker{i + 1} threads (py-spy dump in {target.name}): {summary}")


def report_stall(org_ids: list[str], expected: int) -> None:
    from django.db.models import Count

    from deliveries.models import Delivery

    rows = Delivery.objects.filter(organization_id__in=org_ids)
    by_status = dict(rows.values_list("status").annotate(n=Count("id")))
    leased = rows.filter(lease_until__isnull=False).count()
    from events.models import Event

    client = redis_client()
    out(f"  STALLED: not all {expected:,} deliveries succeeded within the deadline.")
    out(f"  deliveries by status: {by_status}; with a lease set: {leased}")
    events = Event.objects.filter(organization_id__in=org_ids)
    out(
        f"  events: {events.count():,};"
        f" broker: {client.llen('webhooks')} messages queued, {client.hlen('unacked')} unacked,"
        f" {client.llen('ae.undeliver')} undeliverable; kombu keys: {broker_keys(client)}"
    )
    foreign = consumers_of_our_db(set())
    if foreign:
        out(f"  processes consuming from {REDIS_URL}: {foreign}")
    stuck = rows.exclude(status=Delivery.Status.SUCCEEDED).order_by("created_at")[:5]
    for d in stuck:
        out(
            f"  e.g. {d.id} webhook {d.webhook_id} status {d.status} attempts {d.attempts}"
            f" next {d.next_attempt_at} lease {d.lease_until} error {d.last_error!r}"
        )


def paced_latency(state: State, org, rate: float, seconds: float, *, on_tick=None) -> dict:
    """Emit at ``rate``/s for ``seconds``; return latency percentiles (ms) emit -> arrival."""
    from events.services import emit

    count = int(rate * seconds)
    sent: dict[str, float] = {}
    returned: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(count):
        target = started + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        emitted_at = time.time()
        event = emit(org, "threat.detected", DATA)
        sent[event.id] = emitted_at
        returned[event.id] = time.time()
        if on_tick is not None and i % int(rate) == 0:
            on_tick()
    achieved = count / (time.perf_counter() - started)

    if not harness.wait_for_count(
        lambda: sum(1 for e in receiver_get(state, "/arrivals")["arrivals"] if e in sent), count, stall_seconds=10
    ):
        diagnose_stall(state, "latency")
    arrivals = receiver_get(state, "/arrivals")["arrivals"]
    latencies = [(arrivals[e][0] - t) * 1000 for e, t in sent.items() if e in arrivals]
    duplicates = sum(len(arrivals[e]) - 1 for e in sent if e in arrivals)
    missing = count - len(latencies)
    if not latencies:
        return {"count": count, "missing": missing, "achieved": achieved}
    return {
        "count": count,
        "missing": missing,
        "duplicates": duplicates,
        "achieved": achieved,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "stages": latency_stages(sent, returned, arrivals),
    }


def latency_stages(sent: dict[str, float], returned: dict[str, float], arrivals: dict[str, list[float]]) -> str:
    """Where the time went, per event: emit (the event and its deliveries committed, the wake-up
    sent) -> first attempt began (``requested_at``) -> arrival at the receiver."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.event_id, extract(epoch FROM a.requested_at) FROM deliveries_delivery d"
            " JOIN deliveries_attempt a ON a.delivery_id = d.id AND a.number = 1 WHERE d.event_id = ANY(%s)",
            [list(sent)],
        )
        rows = [(e, float(r)) for e, r in cursor.fetchall() if e in arrivals]
    if not rows:
        return "no attempts recorded"
    stages = {
        "emit()": [(returned[e] - sent[e]) * 1000 for e, _r in rows],
        "emit returned -> POST began": [(r - returned[e]) * 1000 for e, r in rows],
        "POST began -> arrived": [(arrivals[e][0] - r) * 1000 for e, r in rows],
    }
    return "; ".join(
        f"{name} p50 {percentile(v, 50):.1f} / p99 {percentile(v, 99):.1f} ms" for name, v in stages.items()
    )


def latency_line(stats: dict) -> str:
    if "p50" not in stats:
        return f"no arrivals recorded ({stats['missing']} missing)"
    return (
        f"p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms, p99 {stats['p99']:.1f} ms, max {stats['max']:.1f} ms"
        f" over {stats['count']:,} events at {stats['achieved']:.1f} ev/s achieved;"
        f" {stats['missing']} missing, {stats['duplicates']} duplicate arrivals\n  stages: {stats['stages']}"
    )


def scenario_latency(state: State) -> None:
    out()
    out(f"== 3. Latency: {LATENCY_RATE:.0f} events/s for {LATENCY_SECONDS:.0f} s, 1 webhook, emit -> arrival ==")
    org, _ = make_org("bench-latency", [f"http://127.0.0.1:{state.receiver_port}/lat/0"])
    client = redis_client()
    depth = [0]

    def sample() -> None:
        depth[0] = max(depth[0], client.llen("webhooks"))

    meter = worker_meter(state)
    meter.start()
    started = time.monotonic()
    stats = paced_latency(state, org, LATENCY_RATE, LATENCY_SECONDS, on_tick=sample)
    used = meter.stop()
    out(latency_line(stats))
    out(f"  broker queue depth (peak, sampled each second): {depth[0]} messages")
    out("  CPU during it (% of one core): " + cpu_shares(used, time.monotonic() - started))
    p99 = stats.get("p99")
    figure(
        state, "latency p99 @100 ev/s", p99, "ms", "< 100 ms", p99 is not None and p99 < 100 and not stats["missing"]
    )


def scenario_isolation(state: State) -> None:
    """A victim organization's latency while another organization's endpoints hang.

    Three hostile shapes: one hanging endpoint with a backlog (the endpoint cap binds), then
    ISOLATION_MANY_HANGING hanging webhooks of one organization, then the same with the quota
    raised to ISOLATION_MOST_HANGING (the organization cap binds).
    """
    from django.conf import settings
    from django.db import connection
    from django.test.utils import override_settings

    from events.services import emit

    cases = [
        (1, ISOLATION_HANGING),
        (ISOLATION_MANY_HANGING, ISOLATION_EVENTS_EACH),
        (ISOLATION_MOST_HANGING, ISOLATION_EVENTS_EACH),
    ]
    for number, (webhooks, events) in enumerate(cases):
        out()
        out(
            f"== 4{'abc'[number]}. Isolation: one org has {webhooks} hanging endpoint(s) (WEBHOOK_TIMEOUT="
            f"{WEBHOOK_TIMEOUT} s) with {events} event(s) queued for each; another org at {ISOLATION_RATE:.0f}"
            f" ev/s for {ISOLATION_SECONDS:.0f} s =="
        )
        urls = [f"http://127.0.0.1:{state.receiver_port}/hang/{n}" for n in range(webhooks)]
        with override_settings(WEBHOOK_MAX_PER_ORGANIZATION=max(webhooks, settings.WEBHOOK_MAX_PER_ORGANIZATION)):
            hanging_org, _ = make_org(f"bench-hanging-{number}", urls)
        victim, _ = make_org(f"bench-victim-{number}", [f"http://127.0.0.1:{state.receiver_port}/iso/{number}"])
        for _ in range(events):
            emit(hanging_org, "threat.detected", DATA)
        harness.wait_until(lambda: receiver_get(state, "/counts")["hanging"] >= 1, timeout=15, interval=0.1)
        peak = [0]

        def sample(peak: list[int] = peak) -> None:
            peak[0] = max(peak[0], receiver_get(state, "/counts")["hanging"])

        stats = paced_latency(state, victim, ISOLATION_RATE, ISOLATION_SECONDS, on_tick=sample)
        out(f"victim org: {latency_line(stats)}")
        out(
            f"  hanging requests open at once (peak, sampled each second): {peak[0]}"
            f" (caps: WEBHOOK_ENDPOINT_CONCURRENCY={settings.WEBHOOK_ENDPOINT_CONCURRENCY} per endpoint,"
            f" WEBHOOK_ORG_CONCURRENCY={settings.WEBHOOK_ORG_CONCURRENCY} per organization)"
        )
        p99 = stats.get("p99")
        figure(
            state,
            f"isolation p99, {webhooks} hanging",
            p99,
            "ms",
            "< 500 ms",
            p99 is not None and p99 < 500 and not stats["missing"],
        )
        # The hanging organization's leftovers must not weigh on the next case.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE deliveries_delivery SET status = 'failed', next_attempt_at = NULL WHERE organization_id = %s",
                [hanging_org.id],
            )
        harness.wait_until(
            lambda: receiver_get(state, "/counts")["hanging"] == 0, timeout=3 * float(WEBHOOK_TIMEOUT), interval=0.2
        )


def scenario_floor(state: State) -> None:
    out()
    out(f"== 2. Floor: one Celery task per signed POST, no database (prefork x2), {FLOOR_TASKS:,} tasks ==")
    out("before it, " + harness.cpu_probe())
    client = redis_client()
    client.flushdb()
    env = dict(os.environ, BENCH_FLOOR_BROKER=REDIS_URL)
    env.pop("DJANGO_SETTINGS_MODULE")  # else Celery's Django fix-up loads the service into the floor
    worker = Proc(
        "floor-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "floor_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "floor@%h",
        ],  # fmt: skip
        env,
        cwd=ROOT / "bench",
    )
    try:
        os.environ["BENCH_FLOOR_BROKER"] = REDIS_URL
        import floor_app

        # Ready when a probe task has run (the WARNING log level prints no "ready").
        url = f"http://127.0.0.1:{state.nginx_port}/floor"
        body = json.dumps({"id": "evt_floor", "event": "threat.detected", "data": DATA})
        floor_app.post.delay(url, body, "whsec_floor", "dlv_probe")
        if not harness.wait_until(lambda: client.get(floor_app.DONE_KEY), timeout=60, interval=0.1):
            raise RuntimeError(f"floor worker did not run its probe task (see {worker.log_path})")
        client.delete(floor_app.DONE_KEY)
        floor_app.app.pool.force_close_all()  # the forked producers open their own
        meter = CpuMeter(
            {
                "floor worker (2 children)": lambda: [worker.pid, *harness.children_of(worker.pid)],
                "redis-server": lambda: harness.pids_named("redis-server"),
                "receiver (nginx)": lambda: nginx_pids(state),
            }
        )
        meter.start()

        def enqueue(indexes: list[int]) -> None:
            for i in indexes:
                floor_app.post.delay(url, body, "whsec_floor", f"dlv_{i}")

        shares = [list(range(i, FLOOR_TASKS, EMITTERS)) for i in range(EMITTERS)]
        started, enqueued = run_forked(shares, enqueue)

        def finished() -> int:
            return sum(int(v or 0) for v in client.mget(floor_app.DONE_KEY, floor_app.FAILED_KEY))

        ok = harness.wait_for_count(finished, FLOOR_TASKS, stall_seconds=STALL_SECONDS)
        elapsed = time.time() - started
        used = meter.stop()
        failed = int(client.get(floor_app.FAILED_KEY) or 0)
        if not ok:
            out(f"floor stalled (done {client.get(floor_app.DONE_KEY)}, failed {failed}; see {worker.log_path})")
            return
        rate = FLOOR_TASKS / elapsed
        state.floor = rate
        state.rss["floor worker"] = harness.peak_rss_mb(worker.pid)
        out(
            f"{FLOOR_TASKS:,} POSTs in {elapsed:.2f} s = {rate:,.0f} POSTs/s ({failed} failed;"
            f" enqueueing took {enqueued:.2f} s, {EMITTERS} producer processes)"
        )
        out(
            "  CPU during the run (% of one core): "
            + ", ".join(f"{name} {seconds / elapsed * 100:.0f}%" for name, seconds in used.items())
        )
        out("  CPU per POST: " + ", ".join(f"{name} {sec / FLOOR_TASKS * 1e6:.0f} us" for name, sec in used.items()))
        state.floor_cpu_us = sum(sec for name, sec in used.items() if not name.startswith("bench")) / FLOOR_TASKS * 1e6
    finally:
        worker.stop()


def scenario_history(state: State) -> None:
    from datetime import timedelta

    import history_data
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from deliveries import selectors
    from webhooks import services as webhook_services

    out()
    rows = HISTORY_EVENTS * HISTORY_WEBHOOKS
    out(f"== 6. History at scale: {rows:,} deliveries over {HISTORY_WEBHOOKS} webhooks and {HISTORY_DAYS} days ==")
    org, webhooks = make_org("bench-history", [f"http://127.0.0.1:9/h{i}" for i in range(HISTORY_WEBHOOKS)])
    _, key = webhook_services.api_key_create(organization=org)
    started = time.perf_counter()
    counts = history_data.load(
        org_id=org.id, webhook_ids=[w.id for w in webhooks], events=HISTORY_EVENTS, days=HISTORY_DAYS
    )
    out(
        f"loaded {counts['events_event']:,} events, {counts['deliveries_delivery']:,} deliveries,"
        f" {counts['deliveries_attempt']:,} attempts in {time.perf_counter() - started:.1f} s (INSERT ... SELECT"
        f" {counts['insert seconds']:.0f} s, index builds {counts['index seconds']:.0f} s,"
        f" VACUUM ANALYZE {counts['vacuum seconds']:.0f} s)"
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    stats_path = f"/ui/api/webhooks/{webhooks[0].id}/stats?window=24h"
    stats_over_http = client.get(stats_path).status_code == 200
    first_page = client.get(f"/ui/api/webhooks/{webhooks[0].id}/deliveries").json()
    next_link = first_page.get("next")
    next_query = next_link.split("?", 1)[1] if next_link else ""

    def http_get(path: str):
        def call(webhook) -> None:
            response = client.get(path.format(id=webhook.id))
            assert response.status_code == 200, (path, response.status_code, response.content[:300])

        return call

    def direct_stats(webhook) -> None:
        selectors.webhook_stats(webhook, window=timedelta(hours=24))

    cases = [
        ("history page", "GET /ui/api/webhooks/{id}/deliveries", http_get("/ui/api/webhooks/{id}/deliveries"), 50),
        (
            "history ?status=failed",
            "GET /ui/api/webhooks/{id}/deliveries?status=failed",
            http_get("/ui/api/webhooks/{id}/deliveries?status=failed"),
            50,
        ),
    ]
    if next_query:
        cases.append(
            (
                "history page 2 (cursor)",
                "GET /ui/api/webhooks/{id}/deliveries?cursor=... (webhook 0's next link)",
                lambda _w: http_get("/ui/api/webhooks/{id}/deliveries?" + next_query)(webhooks[0]),
                50,
            )
        )
    if stats_over_http:
        cases.append(
            (
                "stats 24h",
                "GET /ui/api/webhooks/{id}/stats?window=24h",
                http_get(stats_path.replace(webhooks[0].id, "{id}")),
                200,
            )
        )
    else:
        out("  (GET .../stats answered non-200: timing deliveries.selectors.webhook_stats directly instead)")
        cases.append(("stats 24h", "deliveries.selectors.webhook_stats(window=24h), in process", direct_stats, 200))

    out(f"p95 over {HISTORY_REQUESTS} requests each (Django test client, in process: full middleware, no network):")
    plans: list[tuple[str, str]] = []
    for name, label, call, target_ms in cases:
        for webhook in webhooks[:3]:  # warm caches and connections
            call(webhook)
        timings = []
        for i in range(HISTORY_REQUESTS):
            t0 = time.perf_counter()
            call(webhooks[i % len(webhooks)])
            timings.append((time.perf_counter() - t0) * 1000)
        p50, p95 = percentile(timings, 50), percentile(timings, 95)
        out(f"  {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(timings):.1f} ms")
        figure(state, f"{name} p95 @{rows / 1e6:g}M rows", p95, "ms", f"< {target_ms} ms", p95 < target_ms)
        with CaptureQueriesContext(connection) as captured:
            call(webhooks[1])
        for query in captured.captured_queries:
            sql = query["sql"]
            if ("deliveries_delivery" in sql or "deliveries_attempt" in sql) and sql.lstrip().upper().startswith(
                "SELECT"
            ):
                plans.append((label, sql))
    out()
    out("EXPLAIN (ANALYZE, BUFFERS) of every delivery/attempt query those calls ran:")
    with connection.cursor() as cursor:
        for label, sql in plans:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [line for (line,) in cursor.fetchall()]
            scans = sorted(
                set(
                    re.findall(
                        r"(?:Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)",
                        "\n".join(plan),
                    )
                )
            )
            seq = sorted(set(re.findall(r"Seq Scan on (\w+)", "\n".join(plan))))
            out(f"-- {label}: indexes used {scans or 'none'}" + (f"; SEQUENTIAL SCAN of {seq}" if seq else ""))
            out(f"   {sql}")
            for line in plan:
                out(f"   {line}")


# --- Profiling ---------------------------------------------------------------------------


def start_profilers(state: State, name: str) -> list[subprocess.Popen]:
    spy = ROOT / ".venv" / "bin" / "py-spy"
    if not spy.exists():
        out("  (--profile: py-spy not installed: .venv/bin/pip install py-spy)")
        return []
    profilers = []
    for i, worker in enumerate(state.workers):
        target = RESULTS / f"pyspy-{name}-worker{i + 1}.txt"
        profilers.append(
            subprocess.Popen(
                [
                    str(spy),
                    "record",
                    "--pid",
                    str(worker.pid),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--gil",
                    "--nonblocking",
                    "-o",
                    str(target),
                ],  # fmt: skip
                stdout=subprocess.DEVNULL,
                stderr=(LOGS / f"pyspy-worker{i + 1}.log").open("wb"),
                start_new_session=True,
            )
        )
    time.sleep(1.0)  # py-spy attaches
    return profilers


def stop_profilers(profilers: list[subprocess.Popen]) -> None:
    import signal

    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        try:
            profiler.wait(30)
        except subprocess.TimeoutExpired:
            profiler.kill()
    if profilers:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "pyspy_summary.py"),
                *map(str, RESULTS.glob("pyspy-throughput-worker*.txt")),
            ],
            check=False,
        )


# --- Main --------------------------------------------------------------------------------


def summary(state: State) -> None:
    out()
    out("== Summary ==")
    if state.throughput and state.floor:
        ratio = state.throughput / state.floor
        figure(state, "throughput / floor", ratio, "x", ">= 2x", ratio >= 2)
    if state.throughput_cpu_us:
        # What 2 cores would deliver if nothing else ran on them: robust to a busy machine.
        figure(state, "CPU per delivery (service side)", state.throughput_cpu_us, "us", "(info)", None)
        figure(state, "=> 2-core ceiling, pipeline", 2e6 / state.throughput_cpu_us, "deliveries/s", "(info)", None)
    if state.floor_cpu_us:
        figure(state, "CPU per floor POST", state.floor_cpu_us, "us", "(info)", None)
        figure(state, "=> 2-core ceiling, floor", 2e6 / state.floor_cpu_us, "POSTs/s", "(info)", None)
    for name, mb in state.rss.items():
        if name.startswith("worker"):
            figure(state, f"peak RSS {name}", mb, "MB", "< 250 MB", mb < 250)
        else:
            figure(state, f"peak RSS {name}", mb, "MB", "(info)", None)
    width = max((len(f.name) for f in state.figures), default=10)
    for f in state.figures:
        value = "-" if f.value is None else (f"{f.value:,.2f}" if f.unit == "x" else f"{f.value:,.1f}")
        out(f"  {f.name:<{width}}  {value:>10} {f.unit:<12} target {f.target:<12} {verdict(f.ok)}")


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    unknown = [a for a in args if a not in SCENARIOS]
    if unknown or "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        return 2 if unknown else 0
    selected = set(args or SCENARIOS)
    if selected == {"rss"}:
        selected.add("throughput")  # peak RSS needs workers that did some work
    state = State(profile="--profile" in sys.argv)
    harness.install_signal_handlers()
    RESULTS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    run_started = time.monotonic()
    try:
        setup_database()
        django_setup()
        redis_client().flushdb()
        out("webhooks delivery benchmark: " + " ".join(s for s in SCENARIOS if s in selected))
        for line in harness.machine_lines(*versions()):
            out(line)
        out(harness.cpu_probe())
        out(
            f"database {urlparse(DATABASE_URL).path.lstrip('/')}, redis {REDIS_URL}; rate limits raised to"
            f" {UNBOUND_RATE}/s and /h; WEBHOOK_TIMEOUT={WEBHOOK_TIMEOUT} s"
        )
        if "emit" in selected:
            scenario_emit(state)
            redis_client().flushdb()  # the wake-ups queued meanwhile: no worker ran them
        if selected & {"throughput", "floor"}:
            start_nginx(state)
        if selected & {"latency", "isolation"}:
            start_receiver(state)
        if "throughput" in selected:
            start_workers(state)
            try:
                scenario_throughput(state)
            finally:
                stop_workers(state)
        # Right after the throughput run, so a machine whose speed drifts (shared hosts do)
        # skews the ratio between the two as little as it can.
        if "floor" in selected:
            scenario_floor(state)
        if selected & {"latency", "isolation", "rss"}:
            start_workers(state)
            try:
                if "latency" in selected:
                    scenario_latency(state)
                if "isolation" in selected:
                    scenario_isolation(state)
            finally:
                stop_workers(state)
        if "rss" in selected:
            out()
            out("== 7. Peak RSS (VmHWM, incl. children) of each worker over the scenarios above ==")
            for name, mb in state.rss.items():
                out(f"{name}: {mb:.1f} MB")
        if "history" in selected:
            scenario_history(state)
        out()
        out("at the end: " + harness.cpu_probe())
        summary(state)
        out(f"(whole run: {time.monotonic() - run_started:.0f} s)")
    except KeyboardInterrupt:
        out("interrupted")
        return 130
    finally:
        harness.stop_all()
        (RESULTS / "latest.txt").write_text("\n".join(_lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark of the delivery pipeline: one command, brings up what it needs, cleans up.

    python bench/run.py [throughput floor latency isolation emit filters history rss outage drain] [--profile]

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

With both throughput and floor asked for, they run BENCH_ROUNDS times each (2), in the order
throughput, floor, floor, throughput (and so on): this machine's speed drifts by half within
minutes, and this order centres both on the same moment, so a steady drift cancels out of
their ratio. Each run's figures are printed; the summary quotes the means.

Environment: BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_ROUNDS (2), BENCH_LATENCY_SECONDS (30),
BENCH_WEBHOOK_TIMEOUT (10), BENCH_WORKERS (2), BENCH_HISTORY_EVENTS (1000000: x10 webhooks),
BENCH_HISTORY_EXPIRED_EVENTS (100000: x10 webhooks, in one day past retention, for the drop).
"""

# This module is the entry: arguments, the order of the scenarios, the summary. Each scenario
# is a module of bench/scenarios/ with run(state); what they share is in bench/: harness.py
# (processes, /proc, the cpu probe), service.py (the service's environment, database, Redis),
# receivers.py, workers.py, producers.py and common.py (output, figures, the run's state).

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

import statistics  # noqa: E402
import time  # noqa: E402

import harness  # noqa: E402
from common import State, figure, out, verdict, write_report  # noqa: E402
from harness import LOGS, RESULTS  # noqa: E402
from receivers import start_nginx, start_receiver  # noqa: E402
from scenarios import drain, emit, filters, floor, history, isolation, latency, outage, rss, throughput  # noqa: E402
from service import (  # noqa: E402
    REDIS_URL,
    UNBOUND_RATE,
    WEBHOOK_TIMEOUT,
    database_name,
    redis_client,
    setup_database,
    versions,
)
from workers import start_workers, stop_workers  # noqa: E402

SCENARIOS = ("throughput", "floor", "latency", "isolation", "emit", "filters", "history", "rss", "outage", "drain")
# CPU microseconds two cores have in a second.
TWO_CORES_US = 2e6
THROUGHPUT_FLOOR_TARGET = 2  # times the floor
# Runs of throughput and of floor when both are asked for (see the docstring).
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
RSS_TARGET_MB = 250


def summary(state: State) -> None:
    out()
    out("== Summary ==")
    if state.throughput:
        rate = statistics.fmean(state.throughput)
        figure(state, "throughput", rate, "deliveries/s", f">= {throughput.TARGET:,}/s", rate >= throughput.TARGET)
        if state.floor:
            runs = ", ".join(f"{run:,.0f}" for run in state.throughput)
            floors = ", ".join(f"{run:,.0f}" for run in state.floor)
            out(f"  throughput runs {runs} deliveries/s; floor runs {floors} POSTs/s (in the order they ran)")
            ratio = rate / statistics.fmean(state.floor)
            figure(state, "throughput / floor", ratio, "x", ">= 2x", ratio >= THROUGHPUT_FLOOR_TARGET)
    if state.throughput_cpu_us:
        # What 2 cores would deliver if nothing else ran on them: robust to a busy machine.
        cpu_us = statistics.fmean(state.throughput_cpu_us)
        figure(state, "CPU per delivery (service side)", cpu_us, "us", "(info)", None)
        figure(state, "=> 2-core ceiling, pipeline", TWO_CORES_US / cpu_us, "deliveries/s", "(info)", None)
    if state.floor_cpu_us:
        cpu_us = statistics.fmean(state.floor_cpu_us)
        figure(state, "CPU per floor POST", cpu_us, "us", "(info)", None)
        figure(state, "=> 2-core ceiling, floor", TWO_CORES_US / cpu_us, "POSTs/s", "(info)", None)
    for name, mb in state.rss.items():
        if name.startswith("worker"):
            figure(state, f"peak RSS {name}", mb, "MB", "< 250 MB", mb < RSS_TARGET_MB)
        else:
            figure(state, f"peak RSS {name}", mb, "MB", "(info)", None)
    width = max((len(f.name) for f in state.figures), default=10)
    for f in state.figures:
        value = "-" if f.value is None else (f"{f.value:,.2f}" if f.unit == "x" else f"{f.value:,.1f}")
        out(f"  {f.name:<{width}}  {value:>10} {f.unit:<12} target {f.target:<12} {verdict(f.ok)}")


def throughput_and_floor_order(selected: set[str]) -> list[str]:
    """Throughput, floor, floor, throughput, … (ROUNDS of each) when both are asked for: the two
    centred on the same moment, so a machine whose speed drifts steadily (shared hosts do)
    skews their ratio as little as it can. Otherwise the one asked for, once."""
    if not {"throughput", "floor"} <= selected:
        return [name for name in ("throughput", "floor") if name in selected]
    pair = ["throughput", "floor"]
    return [name for i in range(ROUNDS) for name in (pair if i % 2 == 0 else pair[::-1])]


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
        harness.django_setup()
        redis_client().flushdb()
        out("webhooks delivery benchmark: " + " ".join(s for s in SCENARIOS if s in selected))
        for line in harness.machine_lines(*versions()):
            out(line)
        out(harness.cpu_probe())
        out(
            f"database {database_name()}, redis {REDIS_URL}; rate limits raised to"
            f" {UNBOUND_RATE}/s and /h; WEBHOOK_TIMEOUT={WEBHOOK_TIMEOUT} s"
        )
        if "emit" in selected:
            emit.run(state)
            redis_client().flushdb()  # the wake-ups queued meanwhile: no worker ran them
        if "filters" in selected:
            filters.run(state)
            redis_client().flushdb()
        if "outage" in selected:
            outage.run(state)
            redis_client().flushdb()
        if selected & {"throughput", "floor", "drain"}:
            start_nginx(state)
        if "drain" in selected:
            drain.run(state)
            redis_client().flushdb()  # the wake-ups its emits queued: no worker ran them
        if selected & {"latency", "isolation"}:
            start_receiver(state)
        for scenario in throughput_and_floor_order(selected):
            if scenario == "throughput":
                start_workers(state)
                try:
                    throughput.run(state)
                finally:
                    stop_workers(state)
            else:
                floor.run(state)
        if selected & {"latency", "isolation", "rss"}:
            start_workers(state)
            try:
                if "latency" in selected:
                    latency.run(state)
                if "isolation" in selected:
                    isolation.run(state)
            finally:
                stop_workers(state)
        if "rss" in selected:
            rss.run(state)
        if "history" in selected:
            history.run(state)
        out()
        out("at the end: " + harness.cpu_probe())
        summary(state)
        out(f"(whole run: {time.monotonic() - run_started:.0f} s)")
    except KeyboardInterrupt:
        out("interrupted")
        return 130
    finally:
        harness.stop_all()
        write_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())

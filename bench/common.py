"""What a benchmark run collects and prints: its output lines (also the report file), its
figures with their targets, and the state the scenarios hand each other (started receivers and
workers, the throughput and floor rates their ratio is taken from, peak RSS)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import RESULTS, Proc

# A run that makes no progress for this long has stalled: report it rather than wait on.
STALL_SECONDS = 30.0

_lines: list[str] = []


def out(line: str = "") -> None:
    print(line, flush=True)
    _lines.append(line)


def write_report() -> None:
    """Everything ``out()`` printed, to bench/results/latest.txt."""
    (RESULTS / "latest.txt").write_text("\n".join(_lines) + "\n")


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
    # One figure per run of the scenario (bench/run.py runs each BENCH_ROUNDS times).
    throughput: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)
    # Service-side CPU (workers, PostgreSQL, Redis, receiver) per delivery and per floor POST.
    throughput_cpu_us: list[float] = field(default_factory=list)
    floor_cpu_us: list[float] = field(default_factory=list)
    profile: bool = False


def figure(state: State, name: str, value: float | None, unit: str, target: str, ok: bool | None) -> None:
    state.figures.append(Figure(name, value, unit, target, ok))


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def cpu_shares(used: dict[str, float], elapsed: float) -> str:
    """CPU seconds per process group as a share of one core over ``elapsed`` seconds."""
    return ", ".join(f"{name} {seconds / elapsed * 100:.0f}%" for name, seconds in used.items())


def cpu_per_item(used: dict[str, float], count: int) -> dict[str, float]:
    """CPU microseconds per delivered item, per process group."""
    return {name: seconds / count * 1e6 for name, seconds in used.items()}


def cpu_per_item_line(per: dict[str, float]) -> str:
    return ", ".join(f"{name} {us:.0f} us" for name, us in per.items())


def service_side_us(per: dict[str, float]) -> float:
    """The service's share of ``cpu_per_item``: the bench process and its producers left out."""
    return sum(us for name, us in per.items() if not name.startswith("bench"))

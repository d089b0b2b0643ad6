"""Summarize py-spy ``--format raw`` profiles (collapsed stacks): where the CPU went.

    python bench/pyspy_summary.py results/pyspy-throughput-worker1.txt [...]

Prints, over all given files: self time by function, inclusive time by function, and self time
by package (requests, urllib3, django.db, celery, ...). Also writes bench/results/profile-summary.txt.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
TOP = 35


PROJECT_APPS = ("deliveries", "events", "webhooks", "webhooks_project")


def package_of(path: str) -> str:
    """A bucket for a source file: project modules by file, libraries by package (django by
    sub-package), the standard library by module."""
    path = _short(path).replace("\\", "/")
    parts = path.split("/")
    if parts[0] in PROJECT_APPS:
        return path
    if parts[0] == "django" and len(parts) > 2:
        return "django." + parts[1] + ("." + parts[2] if parts[1] == "db" and len(parts) > 3 else "")
    return parts[0].removesuffix(".py")


def summarize(paths: list[str]) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for path in paths:
        for raw in Path(path).read_text(errors="replace").splitlines():
            stack, _, count = raw.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = []
            for frame in stack.split(";"):
                match = FRAME.match(frame)
                if match:
                    frames.append((match["func"], match["file"]))
                else:
                    frames.append((frame, ""))
            if not frames:
                continue
            func, file = frames[-1]
            self_time[f"{func} ({_short(file)})"] += n
            by_package[package_of(file)] += n
            for name in {f"{f} ({_short(p)})" for f, p in frames}:
                inclusive[name] += n
    if not total:
        return "no samples\n"
    lines = [f"{total:,} samples (threads holding the GIL) from {len(paths)} file(s)", "", "self time by package:"]
    lines += [f"  {n / total * 100:5.1f}%  {name}" for name, n in by_package.most_common(TOP)]
    lines += ["", "self time by function:"]
    lines += [f"  {n / total * 100:5.1f}%  {name}" for name, n in self_time.most_common(TOP)]
    lines += ["", "inclusive time by function:"]
    lines += [f"  {n / total * 100:5.1f}%  {name}" for name, n in inclusive.most_common(TOP * 2)]
    return "\n".join(lines) + "\n"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "lib/python3" in path:
        return path.split("lib/python3", 1)[1].split("/", 1)[-1]
    return path


def main() -> None:
    text = summarize(sys.argv[1:])
    target = Path(__file__).resolve().parent / "results" / "profile-summary.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

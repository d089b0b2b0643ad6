"""Peak RSS: the workers' peak resident memory over the scenarios that ran before it (the
throughput run at least: bench/run.py adds it when rss is asked for alone)."""

from __future__ import annotations

from common import State, out


def run(state: State) -> None:
    out()
    out("== 7. Peak RSS (VmHWM, incl. children) of each worker over the scenarios above ==")
    for name, mb in state.rss.items():
        out(f"{name}: {mb:.1f} MB")

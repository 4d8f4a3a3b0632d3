"""How many threads llama.cpp computes with: ``$ICRM_THREADS``, else the free cores.

llama.cpp's CPU backend waits at every barrier of its graph (hundreds per token) by
spinning, and a barrier lasts as long as its slowest thread: when another process keeps
a core busy, the thread that lost its core stalls every step while the others spin. On
two cores shared with other work (load 6 to 8), a cold verdict took 104 to 114 s with
one thread and 252 s to over 300 s with two (``bench/bench_threads.py``); on idle cores
two threads are faster. So the default is the cores of this process that other
processes leave free, sampled for 0.1 s when an engine starts (at least one). The
thread count changes no number: llama.cpp's kernels give bit-identical logits for any
count (``tests/engines/local/test_local_threads.py``), so a verdict does not depend on the
machine's load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from icrm_sgl.errors import EngineError

#: Environment variable with the llama.cpp thread count used when ``n_threads`` is unset.
THREADS_ENV = "ICRM_THREADS"
#: How long the cores' use is sampled when the thread count is chosen.
SAMPLE_S = 0.1


def default_threads() -> int:
    """``$ICRM_THREADS``, else the cores of this process that others leave free."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        cpus = own_cpus()
        return threads_for(len(cpus), others_busy(cpus))
    if not value.isdigit() or int(value) < 1:
        raise EngineError(
            f"{THREADS_ENV} must be a whole number of threads of 1 or more, not {value!r}"
        )
    return int(value)


def own_cpus() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def threads_for(cores: int, busy: float) -> int:
    """Threads for ``cores`` of which other processes keep ``busy`` in use: the free
    ones, rounded, and at least one."""
    return max(1, min(cores, round(cores - busy)))


def others_busy(cpus: set[int], seconds: float = SAMPLE_S) -> float:
    """How many of ``cpus`` other processes keep busy: their use over ``seconds`` less this
    process's own, from ``/proc/stat``; elsewhere the load average's share of them."""
    before = _cpu_ticks(cpus)
    if before is None:
        return _load_share(len(cpus))
    own, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    after = _cpu_ticks(cpus)
    own, wall = time.process_time() - own, time.perf_counter() - wall
    if after is None or after[1] <= before[1]:
        return _load_share(len(cpus))
    busy, total = after[0] - before[0], after[1] - before[1]
    # ``total`` is every cpu's time: busy / total of them is the cores in use
    return max(0.0, busy / total * len(cpus) - own / wall)


def _cpu_ticks(cpus: Iterable[int]) -> tuple[int, int] | None:
    """(busy, total) clock ticks of ``cpus`` since boot, or None without ``/proc/stat``."""
    wanted = {f"cpu{i}" for i in cpus}
    busy = total = 0
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                name, *fields = line.split()
                if name in wanted:
                    # user nice system idle iowait irq softirq steal (guest is in user)
                    ticks = [int(x) for x in fields[:8]]
                    total += sum(ticks)
                    busy += sum(ticks) - ticks[3] - ticks[4]
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


def _load_share(cores: int) -> float:
    """The 1-minute load average scaled to ``cores`` of the machine's CPUs."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 0.0
    return load * cores / (os.cpu_count() or cores)

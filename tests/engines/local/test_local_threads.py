"""llama.cpp's thread count: ``ICRM_THREADS``, else the cores other processes leave free
(that the count changes no number: ``test_local_determinism.py``)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from icrm_sgl.engines.local.threads import default_threads, others_busy, own_cpus, threads_for
from icrm_sgl.errors import EngineError

#: Spins until killed, or for a minute at most.
_BUSY_LOOP = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass"


@pytest.mark.parametrize(("value", "threads"), [("3", 3), (" 1 ", 1)])
def test_icrm_threads_sets_the_thread_count(monkeypatch, value, threads):
    monkeypatch.setenv("ICRM_THREADS", value)
    assert default_threads() == threads


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_icrm_threads_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv("ICRM_THREADS", value)
    with pytest.raises(EngineError, match="ICRM_THREADS must be a whole number") as caught:
        default_threads()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("cores", "busy", "threads"),
    [(2, 0.0, 2), (2, 0.3, 2), (2, 0.7, 1), (2, 2.0, 1), (2, 9.0, 1), (16, 3.2, 13), (1, 0.0, 1)],
)
def test_the_default_is_the_free_cores_rounded_and_at_least_one(cores, busy, threads):
    assert threads_for(cores, busy) == threads


def _own_ticks(proc: subprocess.Popen) -> int:
    """User plus system clock ticks a process has run."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="samples /proc/stat")
def test_with_every_core_busy_the_default_is_one_thread(monkeypatch):
    monkeypatch.delenv("ICRM_THREADS", raising=False)
    cpus = own_cpus()
    loops = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP]) for _ in cpus]
    try:
        deadline = time.monotonic() + 30
        while min(_own_ticks(p) for p in loops) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # until each has spun for a while (interpreter start is slow)
        assert others_busy(cpus, seconds=0.3) > len(cpus) - 0.5
        assert default_threads() == 1
    finally:
        for proc in loops:
            proc.kill()
            proc.wait()

"""The CPU accounting ``bench-pipeline`` states its ceilings with (``bench/cpu.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.bench_pipeline import _ceilings
from bench.cpu import tree_cpu_seconds

BURN = (
    "import time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.3: pass\n"
    "print(1, flush=True)\n"
    "time.sleep(30)"
)


def test_nothing_to_measure_is_none() -> None:
    assert tree_cpu_seconds(None) is None
    assert tree_cpu_seconds(2**22 + 12345) is None  # no such process


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="CPU times are read from /proc (Linux)")
def test_a_childs_cpu_counts_in_its_parents_tree() -> None:
    before = tree_cpu_seconds(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"1"
        time.sleep(0.05)
        after = tree_cpu_seconds(os.getpid())
        own = tree_cpu_seconds(child.pid)
    finally:
        child.kill()
        child.wait()
    assert before is not None and after is not None and own is not None
    assert own >= 0.25  # the child's burn, seen on its own
    assert after - before >= own - 0.05  # and inside its parent's tree


def test_ceilings_are_one_core_over_the_cpu_per_message() -> None:
    found = _ceilings((0.2, 0.25), rate=3.0)
    assert found["azurite_ceiling_per_s"] == pytest.approx(5.0)
    assert found["host_ceiling_per_s"] == pytest.approx(4.0)
    assert found["share_of_azurite_ceiling"] == pytest.approx(0.6)
    cores = os.cpu_count() or 1
    assert found["machine_ceiling_per_s"] == pytest.approx(cores / 0.45)
    assert _ceilings((None, 0.25), rate=3.0)["azurite_cpu_ms_per_message"] is None

"""Run a command and measure it: wall time and peak resident memory of its whole process tree.

Used by the benchmark scripts so every figure in RESULTS.md comes from the same instrument.
Peak RSS is sampled every 0.1 s over the process and all its children (worker pools included),
so it is the memory the machine actually had to provide, not just the parent's.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil


@dataclass
class Measurement:
    command: list[str]
    wall_s: float
    peak_rss_gib: float
    returncode: int
    output: str


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(command: list[str], interval: float = 0.1) -> Measurement:
    """Run ``command``; return its wall time, peak tree RSS and combined output."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    chunks = []
    import threading

    def reader() -> None:
        for line in proc.stdout:
            chunks.append(line)
            sys.stderr.write(line)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(interval)
    thread.join()
    return Measurement(
        command, time.perf_counter() - start, peak / 2**30, proc.returncode, "".join(chunks)
    )


def machine() -> str:
    """A one-line description of this machine for RESULTS.md."""
    mem = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{psutil.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}"
    )

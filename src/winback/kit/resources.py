"""Process resource figures for benchmarks and progress reports."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Reads ``VmHWM`` from ``/proc/self/status`` where it exists: ``ru_maxrss`` carries a parent's
    peak across fork + exec, so a child started after a large in-process job would report the
    parent's memory. Falls back to ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

"""Resource limits of one sandboxed run."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


def cores() -> int:
    """The cores this process may use (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_share(workers: int) -> int:
    """The thread budget: torch threads for each of ``workers`` processes sharing this machine's cores, so that
    workers x threads <= cores (never below one)."""
    return max(1, cores() // max(1, workers))


def default_threads() -> int:
    """Torch and BLAS threads of a sandboxed run: ``MODIS_THREADS`` (several processes sharing a machine each take a
    share of its cores), else 2."""
    value = os.environ.get("MODIS_THREADS", "2")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"MODIS_THREADS must be a positive integer, not {value!r}")
    return int(value)


class Limits(BaseModel):
    """What a child process may use. Exceeding any of them ends the run with a recorded reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_s: float = Field(120.0, gt=0, description="wall-clock timeout; the whole process group is killed")
    cpu_s: int = Field(600, gt=0, description="CPU seconds (RLIMIT_CPU), across all threads")
    memory_mb: int = Field(8192, gt=0, description="address space (RLIMIT_AS; RLIMIT_DATA where GPUs are)"
                           " torch alone maps ~2-3 GB")
    file_mb: int = Field(64, gt=0, description="largest file the child may write (RLIMIT_FSIZE), output included")
    max_procs: int = Field(512, gt=0, description="processes and threads of the user (RLIMIT_NPROC; not for root)")
    threads: int = Field(default_factory=default_threads, gt=0,
                         description="intra-op threads for torch and BLAS (default: $MODIS_THREADS, else 2)")
    output_bytes: int = Field(65536, gt=0, description="how much of stdout and stderr is kept (the tail)")

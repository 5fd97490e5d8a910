"""A real ``torch.distributed`` process group on localhost, for the data-parallel checks.

The checker starts ``world_size`` worker processes (gloo backend, TCP
rendezvous on a free local port), hands each rank its shard of every job,
collects what each rank's step returns, and tears the group down. A fresh
interpreter importing torch takes seconds, so one group serves many jobs
(every sharding of a check, or every generated case of a claim), and where
the platform has a fork server the workers are forked from it with
torch.distributed already imported: the first group of a process costs those
seconds, every later one about 0.2 s (measured: 3.4 s each when spawned).
As with spawned workers, each one imports the caller's main script again.

A rank that raises, crashes or hangs never hangs the caller: every wait is
bounded, and a group that failed a job is torn down and reported as broken.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import GradcheckUsageError

# Starting a worker means a fresh interpreter importing torch: seconds on an
# idle machine, tens of seconds on a loaded one. Generous, but bounded.
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class RankResult:
    """What one rank returned for one job: a gradient, or why there is none."""

    rank: int
    value: Any = None  # the step's result with tensors turned into numpy arrays
    error: str = ""  # the traceback of an exception raised on this rank
    missing: bool = False  # the rank never answered (crashed or hung)


class GroupBroken(Exception):
    """A job could not finish on every rank; the group has been torn down."""

    def __init__(self, results: list[RankResult], why: str) -> None:
        super().__init__(why)
        self.results, self.why = results, why


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _to_numpy(tree: Any) -> Any:
    """Tensors to numpy arrays, through nested dicts, lists and tuples."""
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_numpy(v) for v in tree)
    if hasattr(tree, "detach") and hasattr(tree, "numpy"):
        return tree.detach().cpu().numpy()
    return tree


def _worker(rank: int, world: int, port: int, jobs: Any, results: Any) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    results.put(("ready", rank, None, ""))
    try:
        while True:
            job = jobs.get()
            if job is None:
                break
            job_id, fn, params, local = job
            try:
                results.put((job_id, rank, _to_numpy(fn(params, *local)), ""))
            except BaseException:  # noqa: BLE001 - reported to the checker, never swallowed
                results.put((job_id, rank, None, traceback.format_exc(limit=6)))
    finally:
        dist.destroy_process_group()


class ProcessGroup:
    """``world_size`` worker processes joined in one gloo process group.

    Use as a context manager; :meth:`run` gives each rank its shard of one job.
    """

    def __init__(self, world_size: int, *, timeout: float = 60.0) -> None:
        try:
            import torch.distributed as dist
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise GradcheckUsageError("check_data_parallel needs PyTorch: pip install 'gradcheck[torch]'") from e
        if not dist.is_available():  # pragma: no cover
            raise GradcheckUsageError("this PyTorch build has no torch.distributed")
        self.world_size, self.timeout = world_size, timeout
        self._ctx = _context()
        self._procs: list[Any] = []
        self._jobs: list[Any] = []
        self._results: Any = None
        self._next = 0
        self.broken = False

    def __enter__(self) -> "ProcessGroup":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        port = _free_port()
        self._results = self._ctx.Queue()
        self._jobs = [self._ctx.Queue() for _ in range(self.world_size)]
        self._procs = [self._ctx.Process(target=_worker, daemon=True,
                                         args=(r, self.world_size, port, self._jobs[r], self._results))
                       for r in range(self.world_size)]
        for p in self._procs:
            p.start()
        ready = self._collect("ready", START_TIMEOUT)
        if any(r.missing for r in ready):
            codes = [p.exitcode for p in self._procs]
            self.close(graceful=False)
            raise RuntimeError(_start_failure_words(self.world_size, codes))

    def run(self, fn: Callable[..., Any], params: Any, shards: Sequence[tuple[np.ndarray, ...]]) -> list[RankResult]:
        """Call ``fn(params, *shards[r])`` on every rank r; every rank's result, in rank order.

        Raises :class:`GroupBroken` (after tearing the group down) if a rank
        raised, crashed or did not answer within the timeout: its partners
        may be stuck in a collective it never joined.
        """
        if self.broken:
            raise GroupBroken([], "the process group was torn down after an earlier failure")
        job_id = self._next = self._next + 1
        for r, q in enumerate(self._jobs):
            q.put((job_id, fn, params, tuple(shards[r])))
        results = self._collect(job_id, self.timeout)
        failed = [r for r in results if r.error or r.missing]
        if failed:
            self.close(graceful=False)
            raise GroupBroken(results, _failure_words(failed, self.timeout))
        return results

    def _collect(self, tag: Any, timeout: float) -> list[RankResult]:
        got: dict[int, RankResult] = {}
        deadline = time.monotonic() + timeout
        while len(got) < self.world_size:
            left = deadline - time.monotonic()
            if left <= 0 or (any(r.error for r in got.values()) and left < timeout - 5.0):
                break  # a rank raised: give the others a few seconds, not the whole timeout
            try:
                t, rank, value, error = self._results.get(timeout=min(left, 0.5))
            except queue.Empty:
                if any(not p.is_alive() for p in self._procs):
                    deadline = min(deadline, time.monotonic() + 2.0)  # a dead rank: collect the rest
                continue
            if t == tag:
                got[rank] = RankResult(rank, value, error)
        return [got.get(r, RankResult(r, missing=True)) for r in range(self.world_size)]

    def close(self, *, graceful: bool = True) -> None:
        """Stop the workers: ask them to leave the group, or (after a failure,
        when some may be stuck in a collective) kill them."""
        if not self._procs:
            return
        if graceful:
            for q in self._jobs:
                q.put(None)
            for p in self._procs:
                p.join(timeout=10.0)
        for p in self._procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5.0)
        self.broken = True
        self._procs = []


def _context() -> Any:
    """The fork server where there is one (preloading torch.distributed: it
    must be set before the server starts, and applies to this process's fork
    server from then on), else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch.distributed"])
    return ctx


def _failure_words(failed: list[RankResult], timeout: float) -> str:
    raised = [r for r in failed if r.error]
    if raised:
        last = raised[0].error.strip().splitlines()[-1]
        return f"step_fn raised on rank {raised[0].rank}: {last}"
    names = [str(r.rank) for r in failed]
    ranks = f"rank {names[0]}" if len(names) == 1 else f"ranks {', '.join(names[:-1])} and {names[-1]}"
    return (f"{ranks} did not finish within {timeout:.0f} s (crashed, or waiting in a collective "
            f"that another rank never joined)")


def _start_failure_words(world: int, exitcodes: list[int | None]) -> str:
    if any(c is not None for c in exitcodes):
        return (f"[gradcheck] the worker processes of the process group exited while starting (exit codes "
                f"{exitcodes}); they are started afresh, so they import the main script again: guard the top "
                f"level of a script that calls check_data_parallel with `if __name__ == \"__main__\":`")
    return f"[gradcheck] the process group of {world} ranks did not start within {START_TIMEOUT:.0f} s"

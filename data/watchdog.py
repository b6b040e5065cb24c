"""Decode jobs under a wall-time watchdog: a job that hangs is abandoned, the job stream goes on.

data/video.py checks its own time limit between packets and frames, but a read blocked in the
kernel (a stalled network file system, a FIFO) or a decoder stuck in C never gets back to that
check. Here every job runs on a daemon thread of its own, at most `workers` at a time; a consumer
waiting for a job that has run longer than the limit gets `Abandoned`, the job's slot goes to the
next job, and the stuck thread is left behind (it ends when its call returns, if ever).

Used by the index-addressable training input (data/indexed.py) and by auto-labeling.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any


class Abandoned(TimeoutError):
  """The job ran longer than the limit; its thread was left behind."""


class Job:
  """One call on a thread of its own (see Pool.submit)."""

  def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
               release: Callable[[], None]):
    self._fn, self._args, self._release = fn, args, release
    self.started: float | None = None  # time.monotonic() when it began running
    self._result: Any = None
    self._error: BaseException | None = None
    self._done = threading.Event()
    self._abandoned = False
    self._lock = threading.Lock()

  def run(self) -> None:
    """The thread's body: the call, then the slot back unless the consumer gave it already."""
    self.started = time.monotonic()
    try:
      self._result = self._fn(*self._args)
    except BaseException as e:  # pylint: disable=broad-except
      self._error = e
    with self._lock:
      abandoned = self._abandoned
      self._done.set()
    if not abandoned:
      self._release()

  def done(self) -> bool:
    return self._done.is_set()

  def result(self, time_limit_s: float, poll_s: float = 0.05) -> Any:
    """The call's result (or its exception), or Abandoned once it has run `time_limit_s` (its
    slot then goes to the next job)."""
    while not self._done.wait(poll_s):
      if self.started is not None and time.monotonic() - self.started > time_limit_s:
        with self._lock:
          if not self._done.is_set():
            self._abandoned = True
        if self._abandoned:
          self._release()
          raise Abandoned(f"still running after {time_limit_s:.0f} s")
    if self._error is not None:
      raise self._error
    return self._result


class Pool:
  """Runs jobs `workers` at a time, each on its own daemon thread, in submission order."""

  def __init__(self, workers: int):
    if workers < 1:
      raise ValueError(f"workers must be >= 1, got {workers}")
    self._slots = threading.Semaphore(workers)
    self._queue: collections.deque[Job] = collections.deque()
    self._lock = threading.Lock()

  def submit(self, fn: Callable[..., Any], *args: Any) -> Job:
    """Queues fn(*args); it starts when a slot is free."""
    job = Job(fn, args, self._release)
    with self._lock:
      self._queue.append(job)
    self._start_ready()
    return job

  def cancel(self, jobs: list[Job]) -> None:
    """Drops those of `jobs` that have not started."""
    with self._lock:
      self._queue = collections.deque(j for j in self._queue if j not in jobs)

  def _release(self) -> None:
    self._slots.release()
    self._start_ready()

  def _start_ready(self) -> None:
    with self._lock:
      while self._queue and self._slots.acquire(blocking=False):
        threading.Thread(target=self._queue.popleft().run, daemon=True, name="watched").start()

"""One run per workdir: a lock that a second run meets at start-up and a dead run leaves behind.

Two runs on one workdir corrupt each other (a second orbax manager deletes the first's in-flight
save, both append to `metrics.jsonl`, two bulk jobs send or caption everything twice). Every entry
point takes `<workdir>/.lock` before it touches the workdir (`runtime.run` does it) and a second run
exits with EXIT_WORKDIR_LOCKED, naming the holder:

  WorkdirLocked: runs/x is in use by pid 4242 on host tpu-vm-0 (viit_jax.train, since ...)

Local workdirs use `fcntl.flock` on the lock file: the kernel drops the lock when its holder dies
(SIGKILL included), so a stale lock is taken over with no race and no timeout. The file keeps the
holder's description (pid, host, command, start) for the message.

Object-store workdirs (`gs://`) have no locks: the lock is an object created with the precondition
`ifGenerationMatch=0` (exactly one creator wins), which its holder rewrites every `heartbeat_s`
(precondition: the generation it wrote last). A lock is stale when its holder is known dead (same
host, no such pid) or its heartbeat is older than `stale_after_s`; a stale lock is deleted under the
precondition of the generation that was read, so of two runs taking it over only one succeeds. A
holder whose heartbeat finds another generation has lost the lock and says so in the log.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import IO, Any

from viit_jax import paths

LOCK_NAME = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 150.0  # 5 missed heartbeats
EXIT_CODE = 5  # runtime.EXIT_WORKDIR_LOCKED: what an entry point exits with when it meets a lock.


class WorkdirLocked(RuntimeError):
  """Another live run holds the workdir's lock."""


def holder_description() -> dict[str, Any]:
  """Who takes the lock: written into the lock so a second run can name it."""
  return {"pid": os.getpid(), "host": socket.gethostname(),
          "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:500],
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _describe(workdir: str, holder: dict[str, Any]) -> str:
  return (f"{workdir} is in use by pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
          f"({holder.get('command', '?')}, since {holder.get('started', '?')}); wait for it to "
          "end, stop it, or use another --workdir")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Alive, owned by someone else.
    return True
  return True


class _LocalLock:
  """flock on `<workdir>/.lock`; released by the kernel when the process dies."""

  def __init__(self, workdir: str, name: str):
    self._workdir = workdir
    self._name = name
    self._file: IO[str] | None = None

  def acquire(self) -> None:
    os.makedirs(self._workdir, exist_ok=True)
    path = os.path.join(self._workdir, self._name)
    f = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      try:
        holder = json.loads(f.read() or "{}")
      except json.JSONDecodeError:  # The holder is between taking the lock and describing itself.
        holder = {}
      f.close()
      raise WorkdirLocked(_describe(self._workdir, holder)) from None
    f.seek(0)
    f.truncate()
    f.write(json.dumps(holder_description()))
    f.flush()
    self._file = f

  def release(self) -> None:
    if self._file is not None:
      self._file.seek(0)
      self._file.truncate()
      fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
      self._file.close()
      self._file = None


class _ObjectLock:
  """A `gs://` object created with ifGenerationMatch=0 and kept alive by a heartbeat thread."""

  def __init__(self, workdir: str, name: str, heartbeat_s: float, stale_after_s: float):
    from google.cloud import storage  # pylint: disable=import-outside-toplevel
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    self._exceptions = exceptions
    scheme, rest = workdir.split("://", 1)
    if scheme not in ("gs", "gcs"):
      raise ValueError(f"--workdir={workdir}: locks exist for local and gs:// workdirs only")
    bucket, _, prefix = rest.partition("/")
    self._workdir = workdir
    self._blob = storage.Client().bucket(bucket).blob(
        f"{prefix.rstrip('/')}/{name}" if prefix else name)
    self._heartbeat_s = heartbeat_s
    self._stale_after_s = stale_after_s
    self._generation: int | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def _write(self, if_generation_match: int) -> None:
    body = json.dumps(dict(holder_description(), heartbeat=time.time()))
    self._blob.upload_from_string(body, content_type="application/json",
                                  if_generation_match=if_generation_match)
    self._generation = self._blob.generation

  def acquire(self) -> None:
    for _ in range(3):
      try:
        self._write(if_generation_match=0)
        break
      except self._exceptions.PreconditionFailed:
        self._take_over_if_stale()
    else:
      raise WorkdirLocked(f"{self._workdir}: could not take the lock after 3 tries (another run "
                          "keeps taking it)")
    self._thread = threading.Thread(target=self._heartbeat, name="workdir-lock", daemon=True)
    self._thread.start()

  def _take_over_if_stale(self) -> None:
    """Deletes the existing lock if its holder is dead; raises WorkdirLocked if it is alive."""
    try:
      self._blob.reload()
      generation = self._blob.generation
      holder = json.loads(self._blob.download_as_bytes(if_generation_match=generation) or b"{}")
    except self._exceptions.NotFound:
      return  # Released meanwhile: try again.
    except self._exceptions.PreconditionFailed:
      return  # Rewritten meanwhile (a heartbeat, or a new holder): look again.
    except json.JSONDecodeError:
      holder = {}
    age = time.time() - float(holder.get("heartbeat", 0.0))
    dead_here = (holder.get("host") == socket.gethostname()
                 and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]))
    if not dead_here and age < self._stale_after_s:
      raise WorkdirLocked(_describe(self._workdir, holder))
    why = "its process is gone" if dead_here else f"no heartbeat for {age:.0f} s"
    logging.warning("%s: taking over the stale lock of pid %s on %s (%s)", self._workdir,
                    holder.get("pid"), holder.get("host"), why)
    try:
      self._blob.delete(if_generation_match=generation)
    except (self._exceptions.NotFound, self._exceptions.PreconditionFailed):
      pass  # Another run took it over first: the next create attempt says who holds it.

  def _heartbeat(self) -> None:
    while not self._stop.wait(self._heartbeat_s):
      try:
        assert self._generation is not None
        self._write(if_generation_match=self._generation)
      except self._exceptions.PreconditionFailed:
        logging.error("%s: the workdir lock was taken over by another run (no heartbeat reached "
                      "the store for %.0f s?); this run no longer owns the workdir",
                      self._workdir, self._stale_after_s)
        return
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("%s: workdir lock heartbeat failed (%s); retrying", self._workdir, e)

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    if self._generation is not None:
      try:
        # The explicit check first: some GCS emulators ignore preconditions on delete.
        self._blob.reload()
        if self._blob.generation == self._generation:
          self._blob.delete(if_generation_match=self._generation)
      except (self._exceptions.NotFound, self._exceptions.PreconditionFailed):
        pass  # Taken over after a lost heartbeat: the lock is not ours to delete.
      self._generation = None


class WorkdirLock:
  """The lock `name` of one workdir (local or gs://); a context manager.

  Raises WorkdirLocked on entry when a live run holds it.
  """

  def __init__(self, workdir: paths.PathLike, *, name: str = LOCK_NAME,
               heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S):
    where = paths.name(workdir)
    self._impl = (_ObjectLock(where, name, heartbeat_s, stale_after_s) if paths.is_remote(where)
                  else _LocalLock(where, name))

  def __enter__(self) -> "WorkdirLock":
    self._impl.acquire()
    return self

  def __exit__(self, *exc: Any) -> None:
    self._impl.release()

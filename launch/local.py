"""Local multi-process launcher: rehearse a multi-host JAX job on one machine.

Starts N processes of any command on 127.0.0.1 with the settings `jax.distributed.initialize` needs
(read by `viit_jax.sharding.maybe_initialize_distributed`):

  VIIT_COORDINATOR_ADDRESS=127.0.0.1:<port>   (a free port unless --port is given)
  VIIT_NUM_PROCESSES=N
  VIIT_PROCESS_ID=0..N-1
  XLA_FLAGS=... --xla_force_host_platform_device_count=K   and JAX_PLATFORMS=cpu  (with --devices_per_process)

Each process's stdout+stderr is streamed line by line with a `[p<i>] ` prefix. If any process exits
non-zero, the others get SIGTERM, then SIGKILL after a grace period, and the launcher exits non-zero
(the first failing process's code; 128+signal for a process killed by a signal). SIGINT/SIGTERM sent to
the launcher are forwarded to every process (each runs in its own process group, so its children too).

Usage:
  python launch/local.py --num_processes=2 --devices_per_process=2 -- \\
      python -m viit_jax.train --config=configs/demo_phase0.py --workdir=/tmp/run

Importable:
  from launch.local import run_local
  rc = run_local(["python", "-m", "viit_jax.train", ...], num_processes=2, devices_per_process=2)
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

ENV_COORDINATOR = "VIIT_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "VIIT_NUM_PROCESSES"
ENV_PROCESS_ID = "VIIT_PROCESS_ID"
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
DEFAULT_GRACE_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
  """A TCP port that is free on `host` right now (the OS picks it)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def xla_flags(existing: str, devices_per_process: int) -> str:
  """`existing` XLA_FLAGS with any host device count replaced by `devices_per_process`."""
  kept = [f for f in existing.split() if not f.startswith(_DEVICE_COUNT_FLAG)]
  return " ".join(kept + [f"{_DEVICE_COUNT_FLAG}={devices_per_process}"])


def process_env(base: Mapping[str, str], *, process_id: int, num_processes: int,
                coordinator: str, devices_per_process: int | None) -> dict[str, str]:
  """The environment of process `process_id`: `base` plus the jax.distributed settings."""
  env = dict(base)
  env[ENV_COORDINATOR] = coordinator
  env[ENV_NUM_PROCESSES] = str(num_processes)
  env[ENV_PROCESS_ID] = str(process_id)
  env["PYTHONUNBUFFERED"] = "1"  # Line streaming of python children.
  if devices_per_process is not None:
    env["XLA_FLAGS"] = xla_flags(env.get("XLA_FLAGS", ""), devices_per_process)
    env["JAX_PLATFORMS"] = "cpu"
  return env


def _exit_code(returncode: int) -> int:
  """A shell-style exit code: negative (killed by signal s) becomes 128 + s."""
  return 128 - returncode if returncode < 0 else returncode


class _Group:
  """The running processes, their log pumps, and how to stop them."""

  def __init__(self, procs: list[subprocess.Popen], out: TextIO):
    self.procs = procs
    self._out = out
    self._lock = threading.Lock()
    self.pumps = [threading.Thread(target=self._pump, args=(i, p), daemon=True)
                  for i, p in enumerate(procs)]
    for t in self.pumps:
      t.start()

  def _pump(self, index: int, proc: subprocess.Popen) -> None:
    prefix = f"[p{index}] "
    assert proc.stdout is not None
    for raw in iter(proc.stdout.readline, b""):
      line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
      with self._lock:
        self._out.write(prefix + line + "\n")
        self._out.flush()
    proc.stdout.close()

  def signal_all(self, sig: int) -> None:
    """Sends `sig` to the process group of every process still running."""
    for p in self.procs:
      if p.poll() is None:
        try:
          os.killpg(p.pid, sig)
        except ProcessLookupError:
          pass

  def stop(self, grace_s: float) -> None:
    """SIGTERM to all that still run, SIGKILL to those still alive after `grace_s`."""
    self.signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
      time.sleep(0.05)
    self.signal_all(signal.SIGKILL)
    for p in self.procs:
      p.wait()

  def log(self, message: str) -> None:
    with self._lock:
      self._out.write(f"[launch] {message}\n")
      self._out.flush()


def run_local(cmd: Sequence[str], num_processes: int, devices_per_process: int | None = None,
              env: Mapping[str, str] | None = None, *, port: int = 0,
              grace_s: float = DEFAULT_GRACE_S, out: TextIO | None = None,
              cwd: str | None = None) -> int:
  """Runs `cmd` as `num_processes` cooperating processes on 127.0.0.1; returns the exit code.

  Args:
    cmd: the command of every process (argv list), e.g. `[sys.executable, "-m", "viit_jax.train", ...]`.
    num_processes: how many processes (jax processes) to start.
    devices_per_process: fake CPU devices per process (sets XLA_FLAGS and JAX_PLATFORMS=cpu); None
      leaves both as in `env`.
    env: base environment of the processes (default: this process's environment).
    port: coordinator port; 0 picks a free one.
    grace_s: seconds between SIGTERM and SIGKILL when stopping the others.
    out: where the prefixed logs go (default sys.stdout).
    cwd: working directory of the processes (default: the current one).

  Returns:
    0 if every process exited 0; otherwise the first failure's code (128+signal if signalled).
  """
  if not cmd:
    raise ValueError("run_local: empty command")
  if num_processes < 1:
    raise ValueError(f"run_local: num_processes must be >= 1, got {num_processes}")
  if devices_per_process is not None and devices_per_process < 1:
    raise ValueError(f"run_local: devices_per_process must be >= 1, got {devices_per_process}")
  out = sys.stdout if out is None else out
  base = dict(os.environ if env is None else env)
  coordinator = f"127.0.0.1:{port or free_port()}"

  procs: list[subprocess.Popen] = []
  forwarded: list[int] = []
  group: _Group | None = None

  def _forward(signum, frame):  # noqa: ARG001 - signal handler signature
    forwarded.append(signum)
    if group is not None:
      group.signal_all(signum)

  in_main_thread = threading.current_thread() is threading.main_thread()
  previous = {}
  if in_main_thread:
    for sig in (signal.SIGINT, signal.SIGTERM):
      previous[sig] = signal.signal(sig, _forward)
  try:
    for i in range(num_processes):
      procs.append(subprocess.Popen(
          list(cmd), env=process_env(base, process_id=i, num_processes=num_processes,
                                     coordinator=coordinator,
                                     devices_per_process=devices_per_process),
          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
          cwd=cwd, start_new_session=True))
    group = _Group(procs, out)
    group.log(f"{num_processes} processes, coordinator {coordinator}, pids "
              f"{[p.pid for p in procs]}: {' '.join(cmd)}")
    rc = 0
    stop_deadline: float | None = None
    while True:
      codes = [p.poll() for p in procs]
      failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
      if failed and rc == 0:
        i, c = failed[0]
        rc = _exit_code(c)
        if any(c is None for c in codes):
          group.log(f"process {i} exited with {c}; stopping the others")
          group.stop(grace_s)
        break
      if forwarded and stop_deadline is None:
        stop_deadline = time.monotonic() + grace_s
      if stop_deadline is not None and time.monotonic() > stop_deadline:
        group.log(f"still running {grace_s:.0f}s after signal {forwarded[0]}; killing")
        group.stop(0.0)
      if all(c is not None for c in codes):
        break
      time.sleep(0.05)
    for t in group.pumps:
      t.join(timeout=5.0)
    if rc == 0 and forwarded:
      rc = 128 + forwarded[0]
    group.log(f"exit codes {[p.returncode for p in procs]}; returning {rc}")
    return rc
  except BaseException:
    if group is not None:
      group.stop(grace_s)
    else:
      for p in procs:
        p.kill()
    raise
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def main(argv: Sequence[str]) -> int:
  """CLI: `local.py --num_processes=N [--devices_per_process=K] [--port=P] -- cmd ...`."""
  argv = list(argv)
  if "--" not in argv:
    print("usage: local.py --num_processes=N [--devices_per_process=K] [--port=0] [--grace_s=10] "
          "-- <command ...>", file=sys.stderr)
    return 2
  split = argv.index("--")
  parser = argparse.ArgumentParser(prog="launch/local.py", description=__doc__.split("\n")[0])
  parser.add_argument("--num_processes", type=int, required=True)
  parser.add_argument("--devices_per_process", type=int, default=None)
  parser.add_argument("--port", type=int, default=0, help="coordinator port; 0 picks a free one")
  parser.add_argument("--grace_s", type=float, default=DEFAULT_GRACE_S,
                      help="seconds between SIGTERM and SIGKILL when stopping processes")
  args = parser.parse_args(argv[:split])
  cmd = argv[split + 1:]
  if not cmd:
    parser.error("no command after --")
  return run_local(cmd, args.num_processes, args.devices_per_process, port=args.port,
                   grace_s=args.grace_s)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

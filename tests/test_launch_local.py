"""launch/local.py: failure propagation, env, and a real 2-process jax.distributed run on 127.0.0.1."""
import io
import json
import os
import pathlib
import subprocess
import sys
import time

from launch import local

REPO = pathlib.Path(__file__).resolve().parents[1]

_DIST_PROGRAM = r"""
import json, os
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=os.environ["VIIT_COORDINATOR_ADDRESS"],
    num_processes=int(os.environ["VIIT_NUM_PROCESSES"]),
    process_id=int(os.environ["VIIT_PROCESS_ID"]))
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

pid = jax.process_index()
mesh = Mesh(np.array(jax.devices()), ("data",))
sharding = NamedSharding(mesh, P("data"))
# Each process contributes its local rows: process p holds values 10*p + local index.
local = np.array([10 * pid + i for i in range(jax.local_device_count())], np.float32)
glob = jax.make_array_from_process_local_data(sharding, local)
total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(glob)
gathered = multihost_utils.process_allgather(np.array([pid], np.int32))
result = "RESULT " + json.dumps({
    "pid": pid, "process_count": jax.process_count(), "global_devices": jax.device_count(),
    "local_devices": jax.local_device_count(), "sum": float(total.addressable_data(0)),
    "gathered": np.asarray(gathered).ravel().tolist()})
# One write of the whole line: gloo's C++ logging shares the pipe, and print()'s separate write of
# the newline once let a gloo message land inside the line.
os.write(1, (result + "\n").encode())
jax.distributed.shutdown()
"""


def _run(cmd, n, k=None, grace_s=2.0):
  buf = io.StringIO()
  t0 = time.monotonic()
  rc = local.run_local(cmd, n, k, grace_s=grace_s, out=buf, cwd=str(REPO))
  return rc, buf.getvalue(), time.monotonic() - t0


def test_one_failure_stops_the_sleeper_and_exits_nonzero(tmp_path):
  # Process 1 fails once process 0 has printed its line (a file says so), however slowly a loaded
  # machine starts it.
  ready = tmp_path / "p0_started"
  program = ("import os, pathlib, sys, time\n"
             f"ready = pathlib.Path({str(ready)!r})\n"
             "pid = int(os.environ['VIIT_PROCESS_ID'])\n"
             "print('started', pid, flush=True)\n"
             "if pid == 1:\n"
             "  while not ready.exists(): time.sleep(0.02)\n"
             "  print('failing now', flush=True); sys.exit(3)\n"
             "ready.touch()\n"
             "time.sleep(120)\n")
  rc, log, seconds = _run([sys.executable, "-c", program], 2)
  assert rc == 3, log
  assert seconds < 20, (seconds, log)
  assert "[p0] started 0" in log and "[p1] started 1" in log
  assert "[p1] failing now" in log
  assert "process 1 exited with 3; stopping the others" in log
  # The sleeper was ended by SIGTERM (code -15), not left to finish its 120 s.
  assert "exit codes [-15, 3]" in log, log


def test_sigterm_ignoring_process_is_killed_after_grace(tmp_path):
  # Process 1 fails only once process 0 has installed its SIG_IGN handler (a file says so): on a
  # loaded machine an earlier SIGTERM would reach process 0 before its handler and end it as -15.
  ready = tmp_path / "p0_ignores_sigterm"
  program = ("import os, pathlib, signal, sys, time\n"
             f"ready = pathlib.Path({str(ready)!r})\n"
             "if os.environ['VIIT_PROCESS_ID'] == '1':\n"
             "  while not ready.exists(): time.sleep(0.02)\n"
             "  sys.exit(5)\n"
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "ready.touch()\n"
             "time.sleep(120)\n")
  rc, log, seconds = _run([sys.executable, "-c", program], 2, grace_s=1.0)
  assert rc == 5, log
  assert seconds < 20, (seconds, log)
  assert "exit codes [-9, 5]" in log, log


def test_env_of_each_process():
  program = ("import json, os\n"
             "print(json.dumps({k: os.environ.get(k) for k in ['VIIT_COORDINATOR_ADDRESS', "
             "'VIIT_NUM_PROCESSES', 'VIIT_PROCESS_ID', 'XLA_FLAGS', 'JAX_PLATFORMS']}))\n")
  rc, log, _ = _run([sys.executable, "-c", program], 3, 4)
  assert rc == 0, log
  envs = {}
  for line in log.splitlines():
    if line.startswith("[p") and "{" in line:
      envs[line[2]] = json.loads(line.split("] ", 1)[1])
  assert sorted(envs) == ["0", "1", "2"]
  coordinators = {e["VIIT_COORDINATOR_ADDRESS"] for e in envs.values()}
  assert len(coordinators) == 1 and coordinators.pop().startswith("127.0.0.1:")
  for i, e in envs.items():
    assert e["VIIT_PROCESS_ID"] == i and e["VIIT_NUM_PROCESSES"] == "3"
    assert e["JAX_PLATFORMS"] == "cpu"
    # conftest's device count of 8 is replaced, not duplicated.
    assert e["XLA_FLAGS"].split().count("--xla_force_host_platform_device_count=4") == 1
    assert "--xla_force_host_platform_device_count=8" not in e["XLA_FLAGS"]


def test_real_two_process_jax_distributed_run():
  rc, log, seconds = _run([sys.executable, "-c", _DIST_PROGRAM], 2, 2, grace_s=2.0)
  assert rc == 0, log
  results = {}
  for line in log.splitlines():
    if line.startswith("[p") and line.split("] ", 1)[1].startswith("RESULT "):
      r = json.loads(line.split("RESULT ", 1)[1])
      results[r["pid"]] = r
  assert sorted(results) == [0, 1], log
  for r in results.values():
    assert r["process_count"] == 2
    assert r["global_devices"] == 4 and r["local_devices"] == 2
    assert r["sum"] == 0 + 1 + 10 + 11  # The cross-process reduction saw both processes' rows.
    assert r["gathered"] == [0, 1]


def test_cli_propagates_failure():
  env = dict(os.environ)
  proc = subprocess.run(
      [sys.executable, str(REPO / "launch" / "local.py"), "--num_processes=2", "--grace_s=2", "--",
       sys.executable, "-c",
       "import os, sys, time\n"
       "if os.environ['VIIT_PROCESS_ID'] == '0': sys.exit(7)\n"
       "time.sleep(120)\n"],
      capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO))
  assert proc.returncode == 7, proc.stdout + proc.stderr
  assert "process 0 exited with 7; stopping the others" in proc.stdout


def test_cli_forwards_sigterm_to_all_processes():
  program = ("import os, signal, sys, time\n"
             "def bye(s, f):\n"
             "  print('got signal', s, flush=True); sys.exit(0)\n"
             "signal.signal(signal.SIGTERM, bye)\n"
             "print('ready', flush=True)\n"
             "time.sleep(120)\n")
  proc = subprocess.Popen(
      [sys.executable, str(REPO / "launch" / "local.py"), "--num_processes=2", "--grace_s=30", "--",
       sys.executable, "-c", program],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
  seen = []
  assert proc.stdout is not None
  while len([l for l in seen if l.endswith("] ready")]) < 2:
    line = proc.stdout.readline()
    assert line, seen
    seen.append(line.rstrip("\n"))
  proc.send_signal(15)
  rest, _ = proc.communicate(timeout=90)
  assert "[p0] got signal 15" in rest and "[p1] got signal 15" in rest, rest
  assert proc.returncode == 128 + 15, rest  # Both children exited 0, but the run was interrupted.

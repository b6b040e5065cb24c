"""Shared test set-up: 8 fake CPU devices, a shared compile cache, quiet TF, the demo world fixture.

Environment variables are set at import time, before any test module imports jax or tensorflow.
"""
import os
import pathlib

from launch import local

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's CPU back end without LLVM's optimisation passes: the test models are tiny, so compiling is
# most of a test's time; with an empty compile cache tests/test_train.py alone took 210 s -> 105 s on
# 2 cores. Subprocesses of tests inherit them (launch.local.xla_flags keeps them and changes only
# the device count), so a CLI run and an in-process run compile the same programs bit for bit.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = local.xla_flags(
    f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}", 8)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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


# `make test` runs pytest-xdist with --dist=loadfile, which hands whole files to the 2 workers in
# collection order. The reduced pipeline run (one test of 4-7 minutes) collected in its alphabetical
# place would start when most of the suite is done and leave the other worker idle at the end, so
# its file goes first and the other worker takes the rest meanwhile.
LONGEST_FILE = "test_pipeline.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  items.sort(key=lambda item: item.path.name != LONGEST_FILE)  # Stable: the rest keep their order.


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory) -> pathlib.Path:
  """The `test` preset of the demo world, generated once per session."""
  from data import demo_world as dw
  out = tmp_path_factory.mktemp("world")
  dw.generate(out, preset="test", seed=0)
  return out

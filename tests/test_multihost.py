"""Multi-host training: 2 processes x 2 CPU devices (launch/local.py, gloo on 127.0.0.1) against
1 process x 4 devices for the same global batch, and the 2-process checkpoint restored in a
1-process 8-device run (this test process)."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
from flax import traverse_util

from configs import demo_phase0
from launch import local
from viit_jax import checkpoints
from viit_jax import loop
from viit_jax import sharding
from viit_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 4


def _arg(world) -> str:
  # SGD (momentum 0.9): updates linear in the gradients, so parameters compare as tightly as the
  # losses. (Adafactor turns the float noise of exactly-zero gradients, e.g. of the attention key
  # bias, into LR-sized updates of random sign; its losses still match.)
  args = {"data.world_dir": world, "model.variant": "test", "model.scan": "false",
          "model.dtype": "float32", "data.res": 16, "train.batch_size": 8,
          "train.total_steps": STEPS, "train.log_every": 1, "train.checkpoint_every": STEPS,
          "train.eval_every": 0, "train.eval_batches": 1, "train.decode_samples": 0,
          "optim.name": "sgd", "optim.lr": 0.3, "optim.schedule": "constant",
          "optim.warmup_steps": 0,
          "mesh.data": 1, "mesh.fsdp": -1, "mesh.tensor": 1}
  return ",".join(f"{k}={v}" for k, v in args.items())


def _jsonl(workdir) -> list[dict]:
  return [json.loads(l) for l in open(os.path.join(workdir, loop.METRICS_FILE))]


def _flat(tree) -> dict:
  return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}


def test_two_processes_match_one_process_and_checkpoint_restores_on_eight_devices(
    demo_world, tmp_path):
  arg = _arg(str(demo_world))
  env = {k: v for k, v in os.environ.items() if not k.startswith("VIIT_") or k ==
         "VIIT_COMPILE_CACHE"}
  env["PYTHONPATH"] = str(REPO)
  w2, w1 = tmp_path / "two_by_two", tmp_path / "one_by_four"

  def cmd(workdir):
    return [sys.executable, "-m", "viit_jax.train", f"--config=configs/demo_phase0.py:{arg}",
            f"--workdir={workdir}"]

  two = subprocess.run([sys.executable, "launch/local.py", "--num_processes=2",
                        "--devices_per_process=2", "--", *cmd(w2)],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert two.returncode == 0, two.stdout[-4000:] + two.stderr[-4000:]
  assert "[p0] experiment demo_phase0: 2 process(es), 4 devices" in two.stdout
  one = subprocess.run(cmd(w1), env={**env, "XLA_FLAGS": local.xla_flags(os.environ["XLA_FLAGS"], 4),
                                     "JAX_PLATFORMS": "cpu"},
                       cwd=REPO, capture_output=True, text=True, timeout=600)
  assert one.returncode == 0, one.stdout[-4000:] + one.stderr[-4000:]
  assert "1 process(es), 4 devices" in one.stdout

  # Same loss trajectory (and held-out loss) for the same global batches.
  rows2, rows1 = _jsonl(w2), _jsonl(w1)
  l2 = [r["train/loss"] for r in rows2 if "train/loss" in r]
  l1 = [r["train/loss"] for r in rows1 if "train/loss" in r]
  assert len(l1) == len(l2) == STEPS
  np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-5)
  e2 = [r for r in rows2 if "eval/loss" in r][-1]
  e1 = [r for r in rows1 if "eval/loss" in r][-1]
  np.testing.assert_allclose(e2["eval/loss"], e1["eval/loss"], rtol=1e-5, atol=1e-5)

  # The 2-process checkpoint restores here: 1 process, 8 devices (FSDP over 8).
  config = demo_phase0.get_config(arg)
  mesh = sharding.make_mesh(dict(config.mesh))
  assert mesh.devices.size == 8
  spec = loop.state_spec(train.build_task(config, mesh), config, mesh)
  state2, data2 = checkpoints.Checkpointer(w2, save_every=STEPS, keep=1).restore(
      STEPS, spec.abstract_state)
  state1, _ = checkpoints.Checkpointer(w1, save_every=STEPS, keep=1).restore(
      STEPS, spec.abstract_state)
  assert int(state2["step"]) == STEPS and data2["step"] == STEPS
  shardings = {str(x.sharding.spec) for x in jax.tree.leaves(state2["params"])}
  assert any("fsdp" in s for s in shardings)
  assert all(x.sharding.mesh.devices.size == 8 for x in jax.tree.leaves(state2["params"]))
  f2, f1 = _flat(state2["params"]), _flat(state1["params"])
  for k in f1:
    np.testing.assert_allclose(f2[k], f1[k], rtol=1e-5, atol=1e-5, err_msg=k)

"""viit_jax.aot on the 8 CPU devices: the entry points' programs compiled ahead of time, their
memory report, FLOPs with every layer counted, and `--compile_only` of the CLIs."""
import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from viit_jax import aot
from viit_jax import checkpoints
from viit_jax import runtime
from viit_jax import sharding as sharding_lib
from viit_jax.models import variants
from configs import autolabel_demo
from configs import demo_phase1

REPO = pathlib.Path(__file__).resolve().parents[1]
TOTAL_RE = re.compile(r"^total per chip: ([\d.]+) GiB of (.+)$")
TINY_VLM = "model.variant=test,data.res=16,data.num_frames=2,data.text_len=16,train.batch_size=8"
TINY_LABEL = "model.variant=test,data.res=16,data.num_frames=2,batch_size=8,decode.max_decode_len=8"


def _mesh(**axes):
  return sharding_lib.make_mesh({"data": 1, "fsdp": -1, "tensor": 1, **axes}, jax.devices())


def test_layer_extrapolated_flops_equal_an_unrolled_compile():
  """XLA counts a scanned stack's body once; the extrapolation from 1-2 unrolled layers per stack
  gives the FLOPs of the whole unrolled program."""
  config = demo_phase1.get_config(TINY_VLM)
  mesh = _mesh()
  base = aot.train_program(config, mesh).model_cfg
  deep = dataclasses.replace(base, img=dataclasses.replace(base.img, depth=3),
                             llm=dataclasses.replace(base.llm, depth=4))
  scanned = aot.train_program(config, mesh, deep)
  extrapolated, how = aot.layer_extrapolated_flops(scanned)
  unrolled = aot.train_program(config, mesh, aot._with_depths(deep, 3, 4))  # pylint: disable=protected-access
  exact = aot.compiled_flops(unrolled.lower().compile()) * mesh.devices.size
  assert extrapolated == pytest.approx(exact, rel=0.01), how
  once = aot.compiled_flops(scanned.lower().compile()) * mesh.devices.size
  assert once < 0.8 * exact  # What the scanned compile alone would report.


def test_decode_program_bf16_weights_and_report():
  """The auto-labeling decode step: bfloat16 weights hold half the float32 bytes; the report ends
  with the total line; a batch the mesh cannot split is refused before compiling."""
  f32 = aot.decode_program(autolabel_demo.get_config(TINY_LABEL), _mesh())
  bf16 = aot.decode_program(
      autolabel_demo.get_config(TINY_LABEL + ",model.param_dtype=bfloat16"), _mesh())
  assert bf16.parts["parameters"] * 2 == f32.parts["parameters"] > 0
  report = aot.compile_report(bf16, None)
  assert report.fits and report.compiled_flops and report.compiled_flops > 0
  m = TOTAL_RE.match(report.lines[-1])
  assert m and float(m.group(1)) > 0 and m.group(2) == "unknown HBM", report.lines[-1]
  text = "\n".join(report.lines)
  assert "decode step (auto-labeling)" in text and "nucleus K=4 x 8 tokens" in text
  assert "params in bfloat16" in text and "prefill + 1 extend step" in text
  assert aot.compile_report(bf16, 1e-6).fits is False  # Above a (tiny) HBM: does not fit.
  with pytest.raises(ValueError, match="cannot be split over the 8 batch shards"):
    aot.decode_program(autolabel_demo.get_config(TINY_LABEL.replace("batch_size=8", "batch_size=6")),
                       _mesh())


def test_bf16_param_dtype_restores_the_cast_weights(tmp_path):
  """model.param_dtype=bfloat16: a float32 checkpoint restores straight into bfloat16 arrays
  equal to the cast weights, in their shardings."""
  config = autolabel_demo.get_config(TINY_LABEL)
  cfg = aot.decode_model_config(config)
  mesh = _mesh()
  init = variants.init_fn(cfg)
  params, _ = sharding_lib.init_sharded(lambda rng: init(rng)["params"], mesh, sharding_lib.RULES,
                                        jax.random.PRNGKey(0))
  ck = checkpoints.Checkpointer(tmp_path, save_every=1, keep=1)
  ck.maybe_save(1, {"step": jax.numpy.int32(1), "params": params, "opt": {}}, data={"step": 1},
                meta={"experiment": "t", "variant": "test", "config": {}})
  ck.wait()
  ck.close()
  source = runtime.checkpoint_source(str(tmp_path), -1)
  loaded = runtime.load_params(cfg, source, mesh, param_dtype="bfloat16")
  for want, got in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(loaded)):
    assert got.dtype == jax.numpy.bfloat16 and got.sharding == want.sharding
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want.astype(jax.numpy.bfloat16)))


def _compile_only(entry: str, config: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", entry, f"--config={config}", "--compile_only"],
                        capture_output=True, text=True, timeout=600, cwd=tmp_path,
                        env={**os.environ, "PYTHONPATH": str(REPO)})


def test_compile_only_cli_prints_the_report_and_writes_nothing(tmp_path):
  """`python -m viit_jax.train --compile_only` (no --workdir) prints the report of the step it
  would run on these 8 devices and exits 0; a batch the mesh cannot split exits 2, named."""
  out = _compile_only("viit_jax.train", f"{REPO}/configs/demo_phase1.py:{TINY_VLM}", tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  last = out.stdout.strip().splitlines()[-1]
  assert TOTAL_RE.match(last), out.stdout
  assert "vlm train step" in out.stdout and "mesh" not in last
  assert list(tmp_path.iterdir()) == []  # No workdir, no lock, no output.
  bad = _compile_only("viit_jax.autolabel",
                      f"{REPO}/configs/autolabel_demo.py:"
                      + TINY_LABEL.replace("batch_size=8", "batch_size=6"),
                      tmp_path)
  assert bad.returncode == 2, bad.stdout + bad.stderr[-3000:]
  assert "batch_size 6 (6 rows) cannot be split over the 8 batch shards" in bad.stderr

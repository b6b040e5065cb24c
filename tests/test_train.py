"""The VLM trainer: phase chain + freezing, SIGKILL resume, sharding, grad accumulation, failures.

The `test` model variant on the `test` demo world, a few steps each. In-process runs use a subset of
the 8 fake CPU devices; the resume test runs the real CLI (`python -m viit_jax.train`) in subprocesses.
"""
import functools
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import linen as nn
from flax import traverse_util

from configs import base
from configs import demo_phase0
from configs import demo_phase1
from configs import demo_phase2
from configs import synthesize_demo
from launch import local
from viit_jax import checkpoints
from viit_jax import config_lib
from viit_jax import loop
from viit_jax import runtime
from viit_jax import sharding
from viit_jax import synthesize
from viit_jax import train
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _vlm_config(config, vocab_size: int) -> vlm_lib.VLMConfig:
  """The VLM the trainer builds for `config` and a tokenizer of `vocab_size` ids."""
  d = config.data
  return runtime.model_config(config.model, vlm_lib.VLMConfig, num_frames=d.num_frames, res=d.res,
                              text_len=d.text_len, vocab_size=vocab_size)


def _arg(**kw) -> str:
  return ",".join(f"{k.replace('__', '.')}={v}" for k, v in kw.items())


def _tiny(world, **kw) -> str:
  """Config argument: the `test` model on the test world, a few logged steps."""
  args = dict(data__world_dir=world, model__variant="test", model__scan="false", data__res=16,
              train__batch_size=8, train__log_every=1, train__checkpoint_every=4,
              train__eval_every=0, train__eval_batches=0, optim__lr=1e-2, optim__warmup_steps=2)
  args.update(kw)
  return _arg(**args)


def _losses(workdir) -> list[float]:
  rows = [json.loads(l) for l in open(os.path.join(workdir, loop.METRICS_FILE))]
  return [r["train/loss"] for r in rows if "train/loss" in r]


def _flat_host(tree) -> dict[str, np.ndarray]:
  return {"/".join(k): np.asarray(jax.device_get(v))
          for k, v in traverse_util.flatten_dict(tree).items()}


def _state_tree_names(workdir: str, step: int, item: str) -> list[str]:
  """'/'-joined leaf paths under `item` ("params" / "opt") of a saved state (metadata only)."""
  manager = ocp.CheckpointManager(checkpoints.checkpoint_dir(workdir),
                                  item_handlers={"state": ocp.PyTreeCheckpointHandler()})
  tree = manager.item_metadata(step)["state"].tree[item]
  manager.close()
  return ["/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                   for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def _one_device_mesh(config):
  return sharding.make_mesh(dict(config.mesh), devices=jax.devices()[:1])


def test_three_demo_phases_chain_with_freezing(demo_world, tmp_path):
  world = str(demo_world)
  viit = tmp_path / "viit"
  synthesize.run(synthesize_demo.get_config(f"world_dir={world}"), viit)
  w0, w1, w2 = (str(tmp_path / f"phase{i}") for i in range(3))

  evals = dict(train__eval_at_start="true", train__eval_batches=2, train__decode_samples=0)
  c0 = demo_phase0.get_config(_tiny(world, train__total_steps=16, **evals))
  mesh = _one_device_mesh(c0)
  r0 = loop.run(train.build_task(c0, mesh), c0, w0, mesh=mesh)
  c1 = demo_phase1.get_config(_tiny(world, train__total_steps=16, data__num_frames=2,
                                    data__text_len=40, init_from=w0, **evals,
                                    train__eval_metric_examples=6, train__max_decode_len=6))
  r1 = loop.run(train.build_task(c1, mesh), c1, w1, mesh=mesh)
  c2 = demo_phase2.get_config(_tiny(world, train__total_steps=16, data__num_frames=2,
                                    data__text_len=48, init_from=w1, data__viit_dir=viit,
                                    data__eval_task="demo_viit_shortqa", data__eval_split="train",
                                    **{**evals, "train__decode_samples": 2},
                                    train__max_decode_len=6))
  r2 = loop.run(train.build_task(c2, mesh), c2, w2, mesh=mesh)

  for workdir, result in ((w0, r0), (w1, r1), (w2, r2)):
    losses = _losses(workdir)
    assert len(losses) == result.step and all(np.isfinite(losses))
    # Losses fall: the held-out loss (fixed eval batches) at the end vs at the start.
    evals = [json.loads(l) for l in open(os.path.join(workdir, loop.METRICS_FILE))
             if "eval/loss" in l]
    assert [e["step"] for e in evals] == [0, result.step]
    assert evals[1]["eval/loss"] < evals[0]["eval/loss"], (workdir, evals)
    assert checkpoints.Checkpointer(workdir, save_every=4, keep=3).all_steps()[-1] == result.step
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, "tb")))
    assert json.load(open(os.path.join(workdir, loop.MEMORY_FILE)))["temp_mib"] > 0
  assert "init_from" in r1.source and w0 in r1.source and "init_from" in r2.source
  # Phase 1 scored its held-out captions with the eval task's seqio metric (CIDEr) at each eval;
  # phase 2's VIIT task has no metric_fns, so its evals carry none.
  evals1 = [json.loads(l) for l in open(os.path.join(w1, loop.METRICS_FILE)) if "eval/loss" in l]
  assert all(0 <= e["eval/CIDEr"] <= 1000 for e in evals1), evals1
  assert not any(k.startswith("eval/CIDEr") or k.startswith("eval/WUPS") for k in evals[-1])
  # Phase 2 decoded greedy samples of the held-out QA (logged to JSONL and TensorBoard).
  assert "eval/sample_0" in evals[-1]["texts"] and "greedy:" in evals[-1]["texts"]["eval/sample_0"]

  # Freezing. Phase 1: every llm/ param bitwise unchanged, every img/ param trained.
  p0, p1, p2 = (_flat_host(r.state["params"]) for r in (r0, r1, r2))
  for name in p0:
    same = np.array_equal(p0[name].view(np.uint8), p1[name].view(np.uint8))
    assert same == name.startswith("llm/"), name
  # Phase 2: every img/ param bitwise unchanged from phase 1, every llm/ param trained.
  for name in p1:
    same = np.array_equal(p1[name].view(np.uint8), p2[name].view(np.uint8))
    assert same == name.startswith("img/"), name
  # No optimizer state for frozen params: in memory and in the saved checkpoints.
  for result, workdir, frozen, trained in ((r1, w1, "llm", "img"), (r2, w2, "img", "llm")):
    opt_names = _state_tree_names(workdir, result.step, "opt")
    assert not any(f"{frozen}/" in n for n in opt_names), opt_names
    assert any(f"{trained}/" in n for n in opt_names)
    mem_paths = [jax.tree_util.keystr(p) for p, _ in
                 jax.tree_util.tree_leaves_with_path(result.state["opt"])]
    assert not any(f"'{frozen}'" in p for p in mem_paths)


def _cli(config_file, arg, workdir, *extra, env=None):
  return [sys.executable, "-m", "viit_jax.train", f"--config={config_file}:{arg}",
          f"--workdir={workdir}", *extra]


def _env(devices: int) -> dict[str, str]:
  env = dict(os.environ)
  env["XLA_FLAGS"] = local.xla_flags(os.environ["XLA_FLAGS"], devices)
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO)
  return env


def _restore_final(workdir, step):
  manager = ocp.CheckpointManager(checkpoints.checkpoint_dir(workdir),
                                  item_handlers={"state": ocp.PyTreeCheckpointHandler()})
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))["state"]
  manager.close()
  return state


def test_resume_after_sigkill_equals_uninterrupted_run(demo_world, tmp_path):
  total = 48
  arg = _tiny(str(demo_world), train__total_steps=total, train__log_every=8,
              train__checkpoint_every=4, model__dtype="float32")
  cfg = "configs/demo_phase0.py"
  env = _env(1)
  a, b = tmp_path / "a", tmp_path / "b"
  # The uninterrupted reference run, in this process on one device (same program as the CLI's).
  config = demo_phase0.get_config(arg)
  mesh = _one_device_mesh(config)
  loop.run(train.build_task(config, mesh), config, str(a), mesh=mesh, log=lambda s: None)

  proc = subprocess.Popen(_cli(cfg, arg, b), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  first = b / "checkpoints" / "4"
  deadline = time.time() + 120
  while not first.is_dir() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  steps = checkpoints.Checkpointer(b, save_every=4, keep=3).all_steps()
  assert steps and steps[-1] < total, steps  # Killed after a checkpoint, before the end.

  out = subprocess.run(_cli(cfg, arg, b), env=env, cwd=REPO, check=True, capture_output=True,
                       text=True)
  assert f"resumed from own checkpoint step {steps[-1]}" in out.stdout
  sa, sb = _restore_final(a, total), _restore_final(b, total)
  fa, fb = _flat_host(sa["params"]), _flat_host(sb["params"])
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
  for x, y in zip(jax.tree.leaves(sa["opt"]), jax.tree.leaves(sb["opt"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_second_run_on_the_workdir_exits_naming_the_first(demo_world, tmp_path,
                                                            run_twice_at_once):
  """Two identical CLI runs at once: the second exits EXIT_WORKDIR_LOCKED naming the first's pid
  and host, touching nothing; the first ends equal to an uninterrupted run."""
  total = 8
  arg = _tiny(str(demo_world), train__total_steps=total, train__checkpoint_every=4,
              model__dtype="float32")
  a, b = tmp_path / "a", tmp_path / "b"
  config = demo_phase0.get_config(arg)
  mesh = _one_device_mesh(config)
  loop.run(train.build_task(config, mesh), config, str(a), mesh=mesh, log=lambda s: None)

  first = run_twice_at_once(_cli("configs/demo_phase0.py", arg, b), b / ".lock", _env(1))
  assert first.returncode == 0, first.stdout[-3000:]
  sa, sb = _restore_final(a, total), _restore_final(b, total)
  fa, fb = _flat_host(sa["params"]), _flat_host(sb["params"])
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
  assert len(_losses(b)) == total  # One writer of metrics.jsonl: each step logged once.


@pytest.fixture
def small_filesystem(tmp_path):
  """A function size_bytes -> a fresh directory on a tmpfs of that size (unmounted at the end).

  A real full disk: ENOSPC from the kernel, as a training host's disk gives. Mounting needs root,
  which `make test` has (it installs system packages).
  """
  mounts = []

  def make(size_bytes: int) -> pathlib.Path:
    where = tmp_path / f"fs{len(mounts)}"
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes // 1024 + 1}k",
                           "tmpfs", str(where)], capture_output=True, text=True)
    assert proc.returncode == 0, f"mounting a tmpfs needs root: {proc.stderr}"
    mounts.append(where)
    return where

  yield make
  for where in mounts:
    subprocess.run(["umount", str(where)], check=True)


def test_a_disk_that_fills_during_a_save_stops_the_run_and_keeps_the_last_step(
    demo_world, tmp_path, small_filesystem):
  """Room for one checkpoint and not two: the second save fails with ENOSPC; the CLI exits
  EXIT_SAVE_FAILED naming the step that failed and the newest committed one, which restores to
  the state an uninterrupted run saved there."""
  arg = _tiny(str(demo_world), train__total_steps=12, train__checkpoint_every=4,
              model__dtype="float32")
  a = tmp_path / "a"
  config = demo_phase0.get_config(arg)
  mesh = _one_device_mesh(config)
  loop.run(train.build_task(config, mesh), config, str(a), mesh=mesh, log=lambda s: None)
  one = sum(f.stat().st_size for f in (a / "checkpoints" / "4").rglob("*") if f.is_file())
  b = small_filesystem(int(one * 1.5) + 32 * 1024) / "w"

  out = subprocess.run(_cli("configs/demo_phase0.py", arg, b), env=_env(1), cwd=REPO,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == runtime.EXIT_SAVE_FAILED, out.stdout[-2000:] + out.stderr[-3000:]
  # One line says it all; orbax's threads log their own tracebacks around it, which may share
  # its first bytes' line.
  [line] = [x[x.index("ERROR: "):] for x in out.stderr.splitlines() if "ERROR: saving" in x]
  assert line.startswith("ERROR: saving checkpoint step 8 in ") and "No space left" in line, line
  assert "The newest committed checkpoint is step 4" in line
  assert checkpoints.Checkpointer(b, save_every=4, keep=3).all_steps() == [4]
  fa, fb = _flat_host(_restore_final(a, 4)["params"]), _flat_host(_restore_final(b, 4)["params"])
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def _synthetic_task(config, *, global_batch: int):
  """The VLM loss on deterministic random batches (batch s = f(seed, s)); no input pipeline."""
  cfg = _vlm_config(config, 0)
  model = variants.make_model(cfg)
  init = variants.init_fn(cfg)
  t, r, length = config.data.num_frames, config.data.res, config.data.text_len
  vocab = cfg.llm.vocab_size

  def batch(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([config.seed, step])
    tokens = rng.integers(4, vocab, (global_batch, length)).astype(np.int32)
    split = rng.integers(2, length - 2, (global_batch, 1))
    pos = np.arange(length)[None]
    return {"frames": rng.integers(0, 256, (global_batch, t, r, r, 3)).astype(np.uint8),
            "tokens": tokens, "mask_ar": (pos >= split).astype(np.int32),
            "mask_loss": (pos >= split).astype(np.int32),
            "mask_input": np.ones((global_batch, length), np.int32)}

  def data_fn(start):
    step = start
    while True:
      yield batch(step)
      step += 1

  spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch(0).items()}
  return loop.Task(init_fn=lambda rng: init(rng)["params"],
                   loss_fn=functools.partial(vlm_lib.batch_loss, model=model), data_fn=data_fn,
                   batch_spec=spec), batch


def test_fsdp_tensor_sharding_matches_data_parallel(tmp_path):
  # SGD: updates are linear in the gradients, so parameters compare as tightly as the losses
  # (Adafactor/Adam would turn the float noise of exactly-zero gradients, e.g. of the attention
  # key bias, into LR-sized updates of random sign).
  results = {}
  for name, mesh_arg in (("fsdp_tensor", dict(mesh__data=1, mesh__fsdp=4, mesh__tensor=2)),
                         ("data", dict(mesh__data=8, mesh__fsdp=1, mesh__tensor=1))):
    config = base.get_config(_arg(
        model__variant="test", model__scan="false", model__dtype="float32", data__num_frames=2,
        data__text_len=16, train__batch_size=8, train__total_steps=3, train__log_every=1,
        train__checkpoint_every=3, train__eval_batches=0, optim__name="sgd", optim__lr=0.3,
        optim__schedule="constant", optim__warmup_steps=0, **mesh_arg))
    mesh = sharding.make_mesh(dict(config.mesh))
    task, _ = _synthetic_task(config, global_batch=8)
    results[name] = (loop.run(task, config, str(tmp_path / name), mesh=mesh),
                     _losses(tmp_path / name))
  (r_ft, l_ft), (r_d, l_d) = results["fsdp_tensor"], results["data"]
  # The FSDP x tensor run really shards parameters over both axes.
  specs = {str(x.sharding.spec) for x in jax.tree.leaves(r_ft.state["params"])}
  assert any("fsdp" in s for s in specs) and any("tensor" in s for s in specs), specs
  assert len(l_ft) == len(l_d) == 3
  np.testing.assert_allclose(l_ft, l_d, rtol=1e-5, atol=1e-5)
  pa, pb = _flat_host(r_ft.state["params"]), _flat_host(r_d.state["params"])
  for k in pa:
    np.testing.assert_allclose(pa[k], pb[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_gradient_accumulation_matches_large_batch():
  config = base.get_config(_arg(model__variant="test", model__scan="false",
                                model__dtype="float32", data__num_frames=1, data__text_len=16,
                                optim__name="sgd", optim__momentum=0.0, optim__schedule="constant",
                                optim__warmup_steps=0, optim__lr=0.5))
  mesh = sharding.make_mesh({"data": 1, "fsdp": 2, "tensor": 1}, devices=jax.devices()[:2])
  task, batch = _synthetic_task(config, global_batch=16)
  spec = loop.state_spec(task, config, mesh)
  with sharding.use_mesh(mesh):
    params = jax.jit(lambda r: nn.unbox(task.init_fn(r)),
                     out_shardings=spec.shardings["params"])(jax.random.PRNGKey(0))
  state = {"step": jnp.int32(0), "params": params, "opt": spec.tx.init(params)}
  b = sharding.host_local_to_global(batch(0), mesh)
  batch_sharding = jax.sharding.NamedSharding(mesh, sharding.batch_spec())
  constraint = lambda mb: jax.tree.map(  # noqa: E731 - as loop.run builds it
      lambda x: jax.lax.with_sharding_constraint(x, batch_sharding), mb)
  outs = {}
  for m in (1, 4):
    step = jax.jit(functools.partial(
        loop.train_step, loss_fn=task.loss_fn, tx=spec.tx, schedule=spec.schedule, freeze="",
        micro_batches=m, seed=0, batch_constraint=constraint))
    with sharding.use_mesh(mesh):
      outs[m] = step(state, b)
  (s1, m1), (s4, m4) = outs[1], outs[4]
  np.testing.assert_allclose(float(m4["loss"]), float(m1["loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(m4["grad_norm"]), float(m1["grad_norm"]), rtol=1e-5)
  p1, p4, p0 = _flat_host(s1["params"]), _flat_host(s4["params"]), _flat_host(params)
  for k in p1:
    # atol: the updates are differences of float32 parameters near 1 (LayerNorm scales), whose
    # spacing there is 1.19e-7; a one-ulp difference in the new parameter must pass.
    np.testing.assert_allclose(p4[k] - p0[k], p1[k] - p0[k], rtol=1e-4, atol=2.5e-7, err_msg=k)
  assert float(m1["grad_norm"]) > 0


def test_config_errors_name_the_key(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="'train.totl_steps'"):
    demo_phase1.get_config("train.totl_steps=3")
  with pytest.raises(config_lib.ConfigError, match="'trian.total_steps'"):
    demo_phase0.get_config("trian.total_steps=3")
  with pytest.raises(config_lib.ConfigError, match="optim.lr=.*float"):
    demo_phase0.get_config("optim.lr=fast")
  with pytest.raises(AttributeError, match="not_a_field"):  # Locked: experiment files too.
    base.get_config().not_a_field = 1
  out = subprocess.run(_cli("configs/demo_phase0.py", "train.bogus_key=1", tmp_path / "w"),
                       env=_env(1), cwd=REPO, capture_output=True, text=True)
  assert out.returncode != 0 and "train.bogus_key" in out.stderr
  assert not (tmp_path / "w").exists()


def _toy_task(nan_at: int | None = None):
  """A linear least-squares task; the batch of step `nan_at` holds a NaN."""
  def init_fn(rng):
    return {"w": jax.random.normal(rng, (4, 1)) * 0.1}

  def loss_fn(params, batch, rng):
    del rng
    err = batch["x"] @ params["w"] - batch["y"]
    return jnp.sum(err ** 2), jnp.float32(batch["x"].shape[0]), {}

  def data_fn(start):
    step = start
    while True:
      rng = np.random.default_rng(step)
      x = rng.normal(size=(8, 4)).astype(np.float32)
      if step == nan_at:
        x[0, 0] = np.nan
      yield {"x": x, "y": (x @ np.arange(4.0)[:, None]).astype(np.float32)}
      step += 1

  spec = {"x": jax.ShapeDtypeStruct((8, 4), jnp.float32),
          "y": jax.ShapeDtypeStruct((8, 1), jnp.float32)}
  return loop.Task(init_fn=init_fn, loss_fn=loss_fn, data_fn=data_fn, batch_spec=spec)


def _toy_config(**kw):
  return base.get_config(_arg(**{"train__batch_size": 8, "train__total_steps": 10,
                                 "train__log_every": 1, "train__checkpoint_every": 2,
                                 "train__eval_batches": 0, "optim__name": "sgd",
                                 "optim__lr": 0.05, "optim__warmup_steps": 0, **kw}))


def test_a_bad_profile_range_is_refused_before_compiling(tmp_path):
  config = _toy_config(train__profile_steps="5-9")
  mesh = sharding.make_mesh(dict(config.mesh), devices=jax.devices()[:1])
  with pytest.raises(ValueError, match=r"train.profile_steps must be 'a:b'.*'5-9'"):
    loop.run(_toy_task(), config, str(tmp_path / "a"), mesh=mesh, log=lambda s: None)
  with pytest.raises(ValueError, match=r"train.profile_steps '4:2': need 0 < a <= b"):
    loop.run(_toy_task(), _toy_config(train__profile_steps="4:2"), str(tmp_path / "b"),
             mesh=mesh, log=lambda s: None)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = _toy_config()
  mesh = sharding.make_mesh(dict(config.mesh), devices=jax.devices()[:1])
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 7;.*Last good checkpoint: step 6"):
    loop.run(_toy_task(nan_at=6), config, str(tmp_path), mesh=mesh, log=lambda s: None)
  ck = checkpoints.Checkpointer(tmp_path, save_every=2, keep=3)
  assert ck.all_steps() == [2, 4, 6]
  state, data = ck.restore(6, loop.state_spec(_toy_task(), config, mesh).abstract_state)
  assert np.all(np.isfinite(np.asarray(state["params"]["w"]))) and data["step"] == 6


def test_nan_parameters_from_the_update_are_never_saved(tmp_path):
  """Finite loss and gradients, but an update (lr NaN) that makes the parameters NaN at a save
  step: the guard sees the updated parameters' norm and stops before that step is saved."""
  config = _toy_config(optim__lr="nan", train__checkpoint_every=1)
  mesh = sharding.make_mesh(dict(config.mesh), devices=jax.devices()[:1])
  with pytest.raises(loop.NonFiniteLossError, match=r"param_norm=nan at step 1;"):
    loop.run(_toy_task(), config, str(tmp_path), mesh=mesh, log=lambda s: None)
  assert checkpoints.Checkpointer(tmp_path, save_every=1, keep=3).all_steps() == []


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path):
  """The newest checkpoint's array files are cut to zero bytes (a torn save): the rerun resumes
  from the step before, says which step it skipped, and ends where an uninterrupted run ends."""
  config = _toy_config()
  mesh = sharding.make_mesh(dict(config.mesh), devices=jax.devices()[:1])
  ref = loop.run(_toy_task(), config, str(tmp_path / "ref"), mesh=mesh, log=lambda s: None)
  short = _toy_config(train__total_steps=6)
  loop.run(_toy_task(), short, str(tmp_path / "run"), mesh=mesh, log=lambda s: None)
  files = [f for f in (tmp_path / "run" / "checkpoints" / "6" / "state").rglob("*") if f.is_file()]
  assert files
  for f in files:
    f.write_bytes(b"")
  logs: list[str] = []
  result = loop.run(_toy_task(), config, str(tmp_path / "run"), mesh=mesh, log=logs.append,
                    force=True)
  assert "resumed from own checkpoint step 4" in result.source and "step 6" in result.source
  assert any("skipped unreadable step 6" in line for line in logs), logs
  np.testing.assert_array_equal(np.asarray(result.state["params"]["w"]),
                                np.asarray(ref.state["params"]["w"]))


def test_workdir_with_another_config_is_refused_unless_resume(tmp_path):
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
  first = _toy_config(train__total_steps=2)
  loop.run(_toy_task(), first, str(tmp_path), mesh=mesh, log=lambda s: None)
  other = _toy_config(train__total_steps=4, experiment="other")
  with pytest.raises(loop.WorkdirMismatchError, match="experiment.*other.*--resume"):
    loop.run(_toy_task(), other, str(tmp_path), mesh=mesh, log=lambda s: None)
  result = loop.run(_toy_task(), other, str(tmp_path), mesh=mesh, log=lambda s: None, force=True)
  assert result.step == 4 and "resumed from own checkpoint step 2" in result.source
  losses = _losses(tmp_path)
  assert losses[-1] < losses[0]


def test_paligemma_configs_state_structure_without_allocation():
  """The real settings: PaliGemma-3B 224 param count, freezing split and optimizer-state size,
  all from abstract shapes (nothing allocated, nothing compiled)."""
  from configs import paligemma_phase1
  from configs import paligemma_phase2
  mesh = sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 1})
  sizes = {}
  for module, frozen_prefix in ((paligemma_phase1, "llm/"), (paligemma_phase2, "img/")):
    config = module.get_config()
    assert (config.data.num_frames, config.data.fps, config.data.res) == (8, 2.0, 224)
    assert (config.optim.name, config.optim.lr, config.optim.warmup_steps,
            config.optim.adafactor_decay_rate) == ("adafactor", 1e-4, 1000, 0.8)
    cfg = _vlm_config(config, 257_152)
    init = variants.init_fn(cfg)
    task = loop.Task(init_fn=lambda rng, init=init: init(rng)["params"], loss_fn=None,
                     data_fn=None, batch_spec={})
    spec = loop.state_spec(task, config, mesh)
    params = spec.abstract_state["params"]
    from viit_jax import optim
    assert optim.tree_size(params) == 2_923_335_408  # docs/checkpoints.md: PaliGemma-3B 224.
    assert all(n.startswith(frozen_prefix) for n in spec.frozen) and spec.frozen
    assert not any(n.startswith(frozen_prefix) for n in spec.trainable)
    opt_paths = [jax.tree_util.keystr(p) for p, _ in
                 jax.tree_util.tree_leaves_with_path(spec.abstract_state["opt"])]
    assert not any(f"'{frozen_prefix[:-1]}'" in p for p in opt_paths)
    trainable, _ = optim.split_params(params, config.optim.freeze)
    sizes[config.experiment] = (optim.tree_size(spec.abstract_state["opt"]) /
                                optim.tree_size(trainable),
                                config.train.batch_size, config.train.total_steps)
    # FSDP: the big matrices are sharded over the 8 devices.
    emb = params["llm"]["embedder"]["input_embedding"]
    assert "fsdp" in str(emb.sharding.spec)
  # Adafactor without momentum: second moments only, factored where two dims are >= 128 (optax's
  # rule), so the state is well below one float per trainable parameter.
  assert sizes["paligemma_phase1"][0] < 0.5 and sizes["paligemma_phase2"][0] < 0.5, sizes
  assert sizes["paligemma_phase1"][1:] == (64, 40_000)
  assert sizes["paligemma_phase2"][1:] == (256, 10_000)

"""gs:// run directories on a real GCS JSON-API emulator (the `gcs_bucket` fixture), through the
entry points' command lines, as a user on Cloud TPU runs them: phase 0 killed and resumed, phase 1
initialised from phase 0's bucket workdir, evaluation of the bucket checkpoint, a tokenizer read
from the bucket; and preemption (SIGTERM) of a 2-process training run."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import flax.linen as nn
from flax import traverse_util

from configs import demo_phase0
from launch import local
from viit_jax import checkpoints
from viit_jax import loop
from viit_jax import paths
from viit_jax import runtime
from viit_jax import sharding
from viit_jax import train
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _arg(world, **kw) -> str:
  """The `test` model on the test world, float32, every step logged."""
  args = {"data.world_dir": world, "model.variant": "test", "model.scan": "false",
          "model.dtype": "float32", "data.res": 16, "train.batch_size": 8, "train.log_every": 1,
          "train.checkpoint_every": 4, "train.eval_every": 0, "train.eval_batches": 0,
          "optim.lr": 1e-2, "optim.warmup_steps": 2}
  args.update(kw)
  return ",".join(f"{k}={v}" for k, v in args.items())


def _env(devices: int = 1) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("VIIT_") or k ==
         "VIIT_COMPILE_CACHE"}
  env["XLA_FLAGS"] = local.xla_flags(os.environ["XLA_FLAGS"], devices)
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO)
  return env


def _cli(entry: str, config: str, workdir: str) -> list[str]:
  """The entry point's command line; `config` (file:args) is relative to the repository."""
  return [sys.executable, "-m", f"viit_jax.{entry}", f"--config={REPO}/{config}",
          f"--workdir={workdir}"]


def _params(workdir: str, step: int, arg: str) -> dict[str, np.ndarray]:
  """The parameters of checkpoint `step` of a phase-0 run with config argument `arg`, restored
  onto one device of this process (whatever devices wrote them)."""
  config = demo_phase0.get_config(arg)
  d = config.data
  cfg = runtime.model_config(config.model, vlm_lib.VLMConfig, num_frames=d.num_frames, res=d.res,
                             text_len=d.text_len)
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
                          nn.unbox(variants.abstract_params(cfg)))
  params, report = checkpoints.load_params_into(abstract, workdir, step=step)
  assert not report.kept
  return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}


def _assert_equal_params(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_phases_resume_chain_and_evaluate_on_gcs(demo_world, gcs_bucket, tmp_path):
  total = 24
  base = f"{gcs_bucket}/{tmp_path.name}"
  p0, p1, ev = f"{base}/phase0", f"{base}/phase1", f"{base}/eval"
  vocab = f"{base}/spm/demo.model"  # The tokenizer in the bucket too.
  paths.write_atomic(vocab, (demo_world / "spm" / "demo.model").read_bytes())
  arg0 = _arg(str(demo_world), **{"train.total_steps": total, "data.vocab_path": vocab})

  # The uninterrupted reference: in this process, local workdir, one device.
  config = demo_phase0.get_config(arg0)
  mesh = sharding.make_mesh(dict(config.mesh), devices=jax.devices()[:1])
  loop.run(train.build_task(config, mesh), config, str(tmp_path / "ref"), mesh=mesh,
           log=lambda s: None)

  # Phase 0 on the bucket, SIGKILLed once a checkpoint is committed there, then resumed.
  cmd = _cli("train", f"configs/demo_phase0.py:{arg0}", p0)
  log = open(tmp_path / "killed.log", "w")
  proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
  metrics = paths.path(p0) / loop.METRICS_FILE
  deadline = time.time() + 180
  while proc.poll() is None and time.time() < deadline:
    if metrics.exists() and len(paths.read_jsonl(metrics)) >= 10:
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
  steps = checkpoints.Checkpointer(p0, save_every=4, keep=3).all_steps()
  assert steps and steps[-1] < total, steps
  out = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"resumed from own checkpoint step {steps[-1]}" in out.stdout
  _assert_equal_params(_params(p0, total, arg0), _params(str(tmp_path / "ref"), total, arg0))
  # Every run-directory file is in the bucket; nothing went to a local "gs:" directory.
  for name in ("config.json", "memory.json", "metrics.jsonl"):
    assert (paths.path(p0) / name).exists(), name
  assert any(p.name.startswith("events.out.tfevents") for p in (paths.path(p0) / "tb").iterdir())
  logged = [r["step"] for r in paths.read_jsonl(metrics) if "train/loss" in r]
  assert logged[-1] == total and set(range(1, total + 1)) <= set(logged)
  assert not list(tmp_path.glob("gs*")) and not (REPO / "gs:").exists()

  # Phase 1 initialised from the bucket workdir; then evaluation of its bucket checkpoint.
  arg1 = _arg(str(demo_world), **{"train.total_steps": 4, "data.num_frames": 2,
                                  "data.text_len": 40, "init_from": p0, "data.vocab_path": vocab})
  out = subprocess.run(_cli("train", f"configs/demo_phase1.py:{arg1}", p1), env=_env(),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"init_from {p0} step {total}" in out.stdout
  args = (f"kind=vlm,checkpoint={p1},data.world_dir={demo_world},data.num_frames=2,"
          "eval.batch_size=8,eval.max_examples=8,eval.max_decode_len=4,eval.tasks=msrvtt_caption")
  out = subprocess.run(_cli("evaluate", f"configs/evaluate_demo.py:{args}", ev), env=_env(),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  report = paths.read_json(f"{ev}/metrics.json")
  assert report["checkpoint"] == {"path": p1, "step": 4, "experiment": "demo_phase1",
                                  "variant": "test"}
  assert report["vocab_path"] == vocab  # The bucket tokenizer phase 1 recorded.
  assert report["tasks"]["msrvtt_caption"]["metrics"]["CIDEr"] >= 0
  assert (paths.path(ev) / "predictions" / "msrvtt_caption.jsonl").exists()


def test_sigterm_saves_one_agreed_step_and_the_relaunch_matches(demo_world, tmp_path):
  """2 processes x 2 devices: SIGTERM to the launcher (forwarded to both) mid-training; both
  processes save the same step and exit with EXIT_PREEMPTED; the relaunch resumes from it and
  ends with the parameters of an uninterrupted 2-process run, bit for bit."""
  total = 48  # SIGTERM lands after step 5: ~40 steps of margin before the run would end.
  arg = _arg(str(demo_world), **{"train.total_steps": total, "train.checkpoint_every": 1000,
                                 "mesh.data": 1, "mesh.fsdp": -1, "mesh.tensor": 1})
  env = {k: v for k, v in _env().items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  env["XLA_FLAGS"] = os.environ["XLA_FLAGS"]

  def launch(workdir) -> list[str]:
    return [sys.executable, "launch/local.py", "--num_processes=2", "--devices_per_process=2",
            "--grace_s=60", "--", *_cli("train", f"configs/demo_phase0.py:{arg}", str(workdir))]

  ref, cut = tmp_path / "ref", tmp_path / "cut"
  done = subprocess.run(launch(ref), env=env, cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stdout[-4000:]

  proc = subprocess.Popen(launch(cut), env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  metrics = cut / loop.METRICS_FILE
  deadline = time.time() + 300
  while proc.poll() is None and time.time() < deadline:
    if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  log, _ = proc.communicate(timeout=300)
  assert proc.returncode == runtime.EXIT_PREEMPTED, log[-4000:]
  assert f"exit codes [{runtime.EXIT_PREEMPTED}, {runtime.EXIT_PREEMPTED}]" in log
  saved = [line.split("saved step ")[1].split()[0] for line in log.splitlines()
           if "preempted (SIGTERM): saved step" in line]
  assert len(saved) == 2 and saved[0] == saved[1], log[-4000:]
  step = int(saved[0])
  assert 0 < step < total
  assert checkpoints.Checkpointer(cut, save_every=1000, keep=3).all_steps() == [step]

  again = subprocess.run(launch(cut), env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=600)
  assert again.returncode == 0, again.stdout[-4000:]
  assert f"resumed from own checkpoint step {step}" in again.stdout
  _assert_equal_params(_params(str(cut), total, arg), _params(str(ref), total, arg))


def test_paths_write_whole_files_on_both_stores(gcs_bucket, tmp_path):
  """The path layer: atomic whole-file writes, streamed writes, a failed stream leaves nothing,
  torn JSONL tails are dropped, and a remote file is fetched once for libraries that need a name."""
  for root in (str(tmp_path / "local"), f"{gcs_bucket}/{tmp_path.name}"):
    paths.write_json(f"{root}/a/b.json", {"x": 1})
    assert paths.read_json(f"{root}/a/b.json") == {"x": 1}
    with paths.atomic_writer(f"{root}/big.jsonl") as f:
      f.write(paths.jsonl_bytes({"i": i} for i in range(3)))
      f.write(b'{"torn": ')
    assert paths.read_jsonl(f"{root}/big.jsonl") == [{"i": 0}, {"i": 1}, {"i": 2}]
    try:
      with paths.atomic_writer(f"{root}/failed.bin") as f:
        f.write(b"half")
        raise RuntimeError("cut")
    except RuntimeError:
      pass
    assert not paths.path(f"{root}/failed.bin").exists()
    assert sorted(p.name for p in paths.path(root).iterdir()) == ["a", "big.jsonl"]
    copy = paths.local_copy(f"{root}/a/b.json")
    assert json.loads(pathlib.Path(copy).read_text()) == {"x": 1}
  assert paths.name(f"{gcs_bucket}/x") == f"{gcs_bucket}/x"  # Never made local.


def test_phase2_reads_instruction_data_from_a_bucket(demo_world, gcs_bucket, tmp_path):
  """The VIIT tasks register over a synthesized version in a bucket, with the local run's pairs."""
  from configs import synthesize_demo  # pylint: disable=import-outside-toplevel
  from data import tasks  # pylint: disable=import-outside-toplevel
  from data import viit_tasks  # pylint: disable=import-outside-toplevel
  from viit_jax import synthesize  # pylint: disable=import-outside-toplevel
  config = synthesize_demo.get_config(f"world_dir={demo_world}")
  remote = f"{gcs_bucket}/{tmp_path.name}/viit"
  assert synthesize.run(config, remote) is not None
  assert synthesize.run(config, tmp_path / "viit") is not None
  version, local_version = viit_tasks.find_version(remote), viit_tasks.find_version(tmp_path / "viit")
  assert os.fspath(version) == f"{remote}/{config.version}"
  for kind in viit_tasks.KINDS:
    pairs = list(viit_tasks.read_records(version, kind))
    assert pairs and pairs == list(viit_tasks.read_records(local_version, kind))
  tasks.register_demo_tasks(demo_world, num_frames=2, fps=2.0, res=16)  # The mixture's captions.
  names = viit_tasks.register_viit_tasks(remote, vocab_path=demo_world / "spm" / "demo.model",
                                         num_frames=2, fps=2.0, res=16, world_dir=demo_world,
                                         name_prefix="gcs_viit_")
  assert names[-1] == "gcs_viit_mix"

"""The index-addressable input (data/indexed.py, `data.process_split=indexed`): the order is a
function of (seed, position), each process decodes only its rows, resume reads nothing before its
step, a hanging clip is abandoned, and the examples equal the seqio path's."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
import seqio

from configs import demo_phase1
from data import indexed
from data import registry
from data import tfds_builders as tb
from data import vlm_batches
from data.rejects import Rejects
from launch import local

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permutation_is_a_seeded_bijection(n):
  perm = indexed.Permutation(n, key=5)
  values = [perm(i) for i in range(n)]
  assert sorted(values) == list(range(n))
  if n >= 64:
    other = [indexed.Permutation(n, key=6)(i) for i in range(n)]
    assert other != values and values != list(range(n))
  with pytest.raises(IndexError):
    perm(n)


def test_order_follows_the_rates_and_the_seed():
  order = indexed.Order([10, 1000, 7], [1.0, 3.0, 0.0], seed=3)
  tasks = [order.task(k) for k in range(20000)]
  share = np.bincount(tasks, minlength=3) / len(tasks)
  np.testing.assert_allclose(share, [0.25, 0.75, 0.0], atol=0.02)
  again = indexed.Order([10, 1000, 7], [1.0, 3.0, 0.0], seed=3)
  assert [again.task(k) for k in range(500)] == tasks[:500]
  assert [indexed.Order([10, 1000, 7], [1, 3, 0], seed=4).task(k) for k in range(500)] != \
      tasks[:500]
  # One epoch of a task visits each item once; candidates after the first probe elsewhere.
  single = indexed.Order([50], [1.0], seed=0)
  assert sorted(next(single.candidates(k))[1] for k in range(50)) == list(range(50))
  assert sorted(next(single.candidates(k))[1] for k in range(50, 100)) == list(range(50))


def _arg(world: pathlib.Path, **kw) -> str:
  args = dict(data__world_dir=world, model__variant="test", data__res=16,
              train__batch_size=4, data__process_split="indexed", data__decode_workers=2)
  args.update(kw)
  return ",".join(f"{k.replace('__', '.')}={v}" for k, v in args.items())


WORKER = """
import json, sys
import numpy as np
from viit_jax import sharding
sharding.maybe_initialize_distributed()
from configs import demo_phase1
from data import indexed, registry, vlm_batches
calls = []
decode = indexed.IndexedItems.decode
def counting(self, i, seed):
  calls.append([self.name, i])
  return decode(self, i, seed)
indexed.IndexedItems.decode = counting
config = demo_phase1.get_config(sys.argv[1])
batches = vlm_batches.make_data_fn(config, registry.register_for_training(config.data))(0)
got = [next(batches) for _ in range(int(sys.argv[2]))]
np.savez(sys.argv[3], **{f"{s}/{k}": v for s, b in enumerate(got) for k, v in b.items()})
with open(sys.argv[3] + ".json", "w") as f:
  json.dump(calls, f)
"""


def test_two_processes_decode_disjoint_shares_that_make_the_one_process_batches(demo_world,
                                                                               tmp_path):
  """2 real JAX processes (jax.distributed over 127.0.0.1): each decodes only the clips of its
  rows (decode calls counted; none decoded by both) and their rows, put side by side, are the
  batches of a 1-process run."""
  arg, steps = _arg(demo_world), 2
  port = local.free_port()
  procs = []
  for p in range(2):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               XLA_FLAGS=local.xla_flags(os.environ.get("XLA_FLAGS", ""), 1),
               VIIT_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", VIIT_NUM_PROCESSES="2",
               VIIT_PROCESS_ID=str(p))
    procs.append(subprocess.Popen(
        [sys.executable, "-c", WORKER, arg, str(steps), str(tmp_path / f"p{p}.npz")], cwd=REPO,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  for proc in procs:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]

  config = demo_phase1.get_config(arg)
  one = vlm_batches.make_data_fn(config, registry.register_for_training(config.data))(0)
  reference = [next(one) for _ in range(steps)]
  parts = [np.load(tmp_path / f"p{p}.npz") for p in range(2)]
  for s, batch in enumerate(reference):
    for k, v in batch.items():
      np.testing.assert_array_equal(np.concatenate([part[f"{s}/{k}"] for part in parts]), v,
                                    err_msg=f"step {s} {k}")
  calls = [[tuple(c) for c in json.loads((tmp_path / f"p{p}.npz.json").read_text())]
           for p in range(2)]
  # 2 steps x 2 rows consumed + up to 2 local batches decoded ahead, all inside the first epoch
  # of the 24 training clips: each process decodes each of its clips once, the other's never.
  for c in calls:
    assert 4 <= len(c) <= 8 and len(set(c)) == len(c), c
  assert not set(calls[0]) & set(calls[1])


def _stream(world: pathlib.Path, **kw) -> indexed.Stream:
  config = demo_phase1.get_config(_arg(world))
  registry.register_for_training(config.data)
  kw = {"global_batch": 4, "process_index": 0, "process_count": 1, "workers": 2, **kw}
  stream, _ = indexed.from_provider(registry.provider(config.data.task), "train", seed=0, **kw)
  return stream


def test_resume_decodes_nothing_before_its_step(demo_world):
  """Starting at step 100 (epoch 16 of 24 clips) decodes the clips of steps 100, 101 (+ what is
  decoded ahead), not the 400 examples before them, and gives the examples a run from step 0
  gives there."""
  full = _stream(demo_world, prefetch=4)
  ex = full.examples(0)
  for _ in range(100 * 4):
    next(ex)
  want = [next(ex) for _ in range(8)]
  resumed = _stream(demo_world, prefetch=4)
  t0 = time.time()
  got_it = resumed.examples(100)
  got = [next(got_it) for _ in range(8)]
  assert time.time() - t0 < 60
  assert sum(resumed.stats.decoded.values()) <= 8 + 4
  expected = {c for k in range(400, 408) for c in [next(resumed.order.candidates(k))]}
  assert expected <= set(resumed.stats.decoded)
  for (ta, a), (tb_, b) in zip(want, got):
    assert ta == tb_ and a["video_id"] == b["video_id"]
    np.testing.assert_array_equal(a["frames"], b["frames"])


def test_a_hanging_clip_is_abandoned_and_the_batch_goes_on(demo_world, monkeypatch):
  """A decode that never returns (a test double that sleeps, like a read stuck in the kernel)
  is rejected as decode_timeout after the limit; its position gets the next candidate."""
  stream = _stream(demo_world, time_limit_s=1.0, workers=2, prefetch=4)
  t, hung = next(stream.order.candidates(1))
  decode = indexed.IndexedItems.decode

  def maybe_hang(self, i, seed):
    if i == hung:
      time.sleep(3600)
    return decode(self, i, seed)

  monkeypatch.setattr(indexed.IndexedItems, "decode", maybe_hang)
  t0 = time.time()
  it = stream.examples(0)
  got = [next(it) for _ in range(8)]
  assert time.time() - t0 < 30
  assert len(got) == 8 and stream.stats.timed_out == 1 and stream.stats.substituted == 1
  rejects = stream.tasks[t].rejects
  assert rejects.counts.get("decode_timeout") == 1
  assert str(stream.tasks[t].items[hung].path) in {r.item for r in rejects.records}
  assert got[1][1]["video_id"] != stream.tasks[t].items[hung].key


def test_indexed_examples_equal_the_seqio_path(demo_world):
  """Through the same seqio preprocessors, an item gives the same model example by index as from
  `get_dataset` (the val split: uniform windows)."""
  config = demo_phase1.get_config(_arg(demo_world))
  registry.register_for_training(config.data)
  task = seqio.get_mixture_or_task(config.data.eval_task)
  seqio_examples = {ex["video_id"]: ex for ex in task.get_dataset(
      sequence_length=None, split="val", shuffle=False, trim_output_features=False
  ).as_numpy_iterator()}
  stream = indexed.Stream([task.source.indexed("val", task.name)], [1.0], seed=0, global_batch=2,
                          process_index=0, process_count=1)
  ds = indexed.dataset(stream, [task], 0).take(len(seqio_examples))
  seen = set()
  for ex in ds.as_numpy_iterator():
    ref = seqio_examples[ex["video_id"]]
    seen.add(ex["video_id"])
    for k in ("frames", "prefix", "suffix"):
      np.testing.assert_array_equal(ex[k], ref[k], err_msg=k)
  assert seen == set(seqio_examples)


def test_seqio_shards_at_the_source_before_decoding(demo_world, monkeypatch):
  """A user's harness asking seqio for shard 1 of 2 decodes only that shard's clips."""
  config = demo_phase1.get_config(_arg(demo_world))
  registry.register_for_training(config.data)
  task = seqio.get_mixture_or_task(config.data.task)
  decoded = []
  decode_item = tb.decode_item

  def counting(item, *a, **k):
    if not threading.current_thread().name.startswith("watched"):  # Not other tests' streams.
      decoded.append(item.key)
    return decode_item(item, *a, **k)

  monkeypatch.setattr(tb, "decode_item", counting)
  shards = []
  for index in range(2):
    start = len(decoded)
    ds = task.get_dataset(sequence_length=None, split="train", shuffle=True, seed=1,
                          shard_info=seqio.ShardInfo(index=index, num_shards=2), num_epochs=1,
                          trim_output_features=False)
    shards.append(sorted(ex["video_id"].decode() for ex in ds.as_numpy_iterator()))
    assert len(decoded) - start == len(shards[-1])  # Nothing decoded and then dropped.
  assert not set(shards[0]) & set(shards[1])
  everything = sorted(item.key for item in tb.smit_items(demo_world / "smit", "train",
                                                          Rejects("smit")))
  assert sorted(shards[0] + shards[1]) == everything


def test_tasks_that_flatten_items_are_refused(demo_world):
  config = demo_phase1.get_config(_arg(demo_world, data__task="demo_stills_caption",
                                       data__num_frames=1))
  registry.register_for_training(config.data)
  with pytest.raises(ValueError, match="flatten_captions makes several examples"):
    indexed.from_provider(registry.provider("demo_stills_caption"), "train", seed=0,
                          global_batch=4, process_index=jax.process_index(), process_count=1)


def test_indexed_training_resumes_after_sigkill_bit_identical(demo_world, tmp_path):
  """The VLM trainer's CLI with data.process_split=indexed, SIGKILLed after a checkpoint and rerun,
  ends with the parameters of an uninterrupted CLI run."""
  from viit_jax import checkpoints  # pylint: disable=import-outside-toplevel
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  total = 12
  arg = _arg(demo_world, model__scan="false", train__total_steps=total, train__log_every=4,
             train__checkpoint_every=4, train__eval_every=0, train__eval_batches=0,
             model__dtype="float32", train__batch_size=8, init_from="", init_required="false")
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             XLA_FLAGS=local.xla_flags(os.environ.get("XLA_FLAGS", ""), 1))

  def cmd(workdir: str) -> list[str]:
    return [sys.executable, "-m", "viit_jax.train", f"--config=configs/demo_phase1.py:{arg}",
            f"--workdir={tmp_path / workdir}"]

  subprocess.run(cmd("a"), cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
  proc = subprocess.Popen(cmd("b"), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 180
  while not (tmp_path / "b" / "checkpoints" / "4").is_dir() and proc.poll() is None:
    assert time.time() < deadline, "no checkpoint in time"
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  steps = checkpoints.Checkpointer(tmp_path / "b", save_every=4, keep=3).all_steps()
  assert steps and steps[-1] < total, steps
  out = subprocess.run(cmd("b"), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  assert f"resumed from own checkpoint step {steps[-1]}" in out.stdout

  def params(workdir):
    manager = ocp.CheckpointManager(checkpoints.checkpoint_dir(workdir),
                                    item_handlers={"state": ocp.PyTreeCheckpointHandler()})
    state = manager.restore(total, args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))
    manager.close()
    return jax.tree.leaves(state["state"]["params"])

  for x, y in zip(params(tmp_path / "a"), params(tmp_path / "b")):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

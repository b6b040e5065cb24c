"""Prepared shards (data/prepared.py): N processes build a split's ArrayRecord shards, a reader
maps global indices through the shards' counts, windows are drawn at read time from
indexed.window_rng (fixed per (seed, item), different between items and seeds), the "original"
codec gives the file path's frames bit for bit and "h264" its window up to codec loss, bad clips
are counted by reason and not stored, a missing shard is named, and data.indexed streams it."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import seqio

from configs import demo_phase1
from data import indexed
from data import prepared
from data import preprocessors as pp
from data import registry
from data import tasks
from data import video
from viit_jax import sharding
from launch import local

REPO = pathlib.Path(__file__).resolve().parents[1]
TASK = "demo_smit_caption"
# 4 frames at 4 fps (a 1 s window of the 4 s demo clips, so random windows differ), 16 px.
OVERRIDES = "data.num_frames=4,data.fps=4.0,data.res=16"
SEEDS = (0, 7)


def _register(world: pathlib.Path) -> None:
  """The demo tasks at the test's sampling, as the trainers register them."""
  registry.register_for_training(
      demo_phase1.get_config(f"data.world_dir={world},{OVERRIDES}").data)


@pytest.fixture(scope="module")
def built(demo_world, tmp_path_factory) -> pathlib.Path:
  """The smit train split built as 2 shards (h264) by 2 `python -m data.prepared` processes
  running at once."""
  out = tmp_path_factory.mktemp("prepared") / "smit_h264"
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             XLA_FLAGS=local.xla_flags(os.environ.get("XLA_FLAGS", ""), 1))
  procs = [subprocess.Popen(
      [sys.executable, "-m", "data.prepared",
       f"--config=configs/demo_phase1.py:data.world_dir={demo_world},{OVERRIDES}",
       f"--task={TASK}", "--split=train", f"--out={out}", "--num_shards=2",
       f"--shard_index={i}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(2)]
  for proc in procs:
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    assert "12 of 12 items stored" in log, log[-3000:]
  return out


@pytest.fixture
def pyav(demo_world):
  """The PyAV task (registered again afterwards: tests replace it with prepared ones)."""
  _register(demo_world)
  yield seqio.get_mixture_or_task(TASK)
  _register(demo_world)


def test_two_processes_build_the_split_and_it_reads_back(built, pyav):
  """Counts, keys and item order: shard I holds the I-th contiguous block of the item list, and
  global index i is the PyAV path's item i (nothing was rejected)."""
  source_keys = [it.key for it in pyav.source.items("train")]
  assert len(source_keys) == 24
  metas = [json.loads((built / f"train-{i:05d}-of-00002.json").read_text()) for i in range(2)]
  assert [(m["first_item"], m["items"], m["records"]) for m in metas] == [(0, 12, 12),
                                                                          (12, 12, 12)]
  assert all(m["rejects"] == {} and m["split_items"] == 24 and m["codec"] == "h264"
             and m["sampling"] == {"num_frames": 4, "fps": 4.0, "res": 16, "mode": "random"}
             for m in metas)
  keys = [json.loads(line) for i in range(2)
          for line in (built / f"train-{i:05d}-of-00002.keys.jsonl").read_text().splitlines()]
  assert keys == source_keys
  items = prepared.PreparedItems(built, "train")
  assert items.name == TASK and len(items) == 24 and not items.build_rejects
  assert [items.locate(i) for i in (0, 11, 12, 23)] == [(0, 0), (0, 11), (1, 0), (1, 11)]
  with pytest.raises(IndexError):
    items.locate(24)
  # Random access, in any order: the records' keys are the source's.
  assert [items.record(i)["key"] for i in (23, 0, 12, 5)] == [source_keys[i]
                                                               for i in (23, 0, 12, 5)]


def test_h264_gives_the_file_path_window_up_to_codec_loss(built, pyav):
  """Same generator -> same window start and (every 4 fps source frame is stored at 8 fps) the
  same source frames as data.video picks; pixels within the H.264 loss of the file path's."""
  items = prepared.PreparedItems(built, "train")
  files = pyav.source.indexed("train", TASK)
  s = items.sampling
  for i in range(len(items)):
    for seed in SEEDS:
      info = video.probe(files.items[i].path)
      want = info.times_s[video.sample_indices(info.times_s, info.duration_s, s.num_frames, s.fps,
                                               mode="random",
                                               rng=indexed.window_rng(seed, TASK, i))]
      np.testing.assert_array_equal(items.frame_times(i, seed), want)
      got, ref = items.decode(i, seed), files.decode(i, seed)
      assert got["video_id"] == ref["video_id"] and got["caption"] == ref["caption"]
      assert got["frames"].shape == ref["frames"].shape == (4, 16, 16, 3)
      assert got["frames"].dtype == np.uint8
      mae = np.abs(got["frames"].astype(np.int32) - ref["frames"]).mean()
      assert mae < 8.0, (i, seed, mae)


def test_original_codec_frames_equal_the_file_path(demo_world, pyav, tmp_path):
  """The original bytes, decoded by data.video from memory: the file path's frames bit for bit,
  for every item and seed (same window generator)."""
  for i in range(3):
    prepared.build_shard(TASK, "train", tmp_path, 3, i,
                         options=prepared.StoreOptions(codec="original"))
  items = prepared.PreparedItems(tmp_path, "train")
  files = pyav.source.indexed("train", TASK)
  assert len(items) == len(files) == 24
  for i in range(len(items)):
    for seed in SEEDS:
      got, ref = items.decode(i, seed), files.decode(i, seed)
      assert got.keys() == ref.keys() and got["video_id"] == ref["video_id"]
      np.testing.assert_array_equal(got["frames"], ref["frames"], err_msg=f"item {i} seed {seed}")


def test_windows_differ_between_items_and_seeds_and_are_fixed(built):
  items = prepared.PreparedItems(built, "train")
  starts = {(i, seed): float(items.frame_times(i, seed)[0]) for i in range(24) for seed in SEEDS}
  assert len({starts[(i, 0)] for i in range(24)}) > 3  # items get different windows
  assert sum(starts[(i, 0)] != starts[(i, 7)] for i in range(24)) > 12  # so do seeds
  again = prepared.PreparedItems(built, "train")  # a fresh reader (another process, a restart)
  for i in (0, 13, 23):
    a, b = items.decode(i, 7), again.decode(i, 7)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    np.testing.assert_array_equal(a["frames"], items.decode(i, 7)["frames"])
  # frames follow the window: different starts give different frames
  i = next(i for i in range(24) if starts[(i, 0)] != starts[(i, 7)])
  assert not np.array_equal(items.decode(i, 0)["frames"], items.decode(i, 7)["frames"])


def test_bad_clips_are_counted_by_reason_and_not_stored(demo_world, tmp_path):
  """A custom item list with a corrupt, a zero-byte and a missing clip among good ones, built as
  2 shards: the json counts the rejects by reason, the records are the good items in order and
  the global index skips the rejected ones."""
  good = sorted((demo_world / "smit" / "videos").glob("*.mp4"))[:4]
  corrupt, empty = tmp_path / "corrupt.mp4", tmp_path / "empty.mp4"
  corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
  empty.write_bytes(b"")
  paths = [good[0], corrupt, good[1], tmp_path / "missing.mp4", good[2], empty, good[3]]
  item_list = [tasks.VideoText(key=f"k{j}", path=p, prefix="q", suffix="a")
               for j, p in enumerate(paths)]
  name = tasks.register_video_text_task(
      "prepared_test_custom", {"train": lambda: item_list},
      vocab_path=demo_world / "spm" / "demo.model", num_frames=4, fps=4.0, res=16)
  out = tmp_path / "out"
  metas = [prepared.build_shard(name, "train", out, 2, i, rejects_path=tmp_path / "rejects.jsonl",
                                workers=1 + i)  # shard 1 through the thread pool (in order)
           for i in range(2)]
  assert [(m["first_item"], m["items"], m["records"]) for m in metas] == [(0, 3, 2), (3, 4, 2)]
  assert metas[0]["rejects"] == {"corrupt": 1}
  assert metas[1]["rejects"] == {"empty_file": 1, "missing_file": 1}
  rejected = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
  assert sorted((r["item"], r["reason"]) for r in rejected) == sorted(
      [(str(corrupt), "corrupt"), (str(empty), "empty_file"),
       (str(tmp_path / "missing.mp4"), "missing_file")])
  items = prepared.PreparedItems(out, "train")
  assert items.build_rejects == {"corrupt": 1, "empty_file": 1, "missing_file": 1}
  assert [items.record(i)["key"] for i in range(len(items))] == ["k0", "k2", "k4", "k6"]
  example = items.decode(2, seed=0)
  assert example["key"] == "k4" and example["frames"].shape == (4, 16, 16, 3)
  # A rebuild of an existing shard is a no-op (restarted builders skip finished shards).
  assert prepared.build_shard(name, "train", out, 2, 0) == metas[0]
  seqio.TaskRegistry.remove(name)


def test_a_missing_shard_is_named(built, tmp_path):
  partial = tmp_path / "partial"
  shutil.copytree(built, partial)
  (partial / "train-00001-of-00002.json").unlink()  # an unfinished builder writes no json
  with pytest.raises(FileNotFoundError, match=r"1 of 2 shards.*train-00001-of-00002"):
    prepared.PreparedItems(partial, "train")
  (partial / "train-00000-of-00002.array_record").unlink()
  with pytest.raises(FileNotFoundError, match=r"train-00000-of-00002 \(json without"):
    prepared.PreparedItems(partial, "train")
  with pytest.raises(FileNotFoundError, match=r"no prepared shard of split 'val'"):
    prepared.PreparedItems(built, "val")


def test_a_stream_over_prepared_items_gives_the_pyav_batches(demo_world, built, pyav, tmp_path):
  """register_prepared_task under the task's own name: data.indexed streams it (through the
  task's preprocessors) into model batches; with the original bytes the examples are the PyAV
  stream's, position for position; h264 gives the same items at the same positions."""
  reference_stream, reference_tasks = indexed.from_provider(
      pyav, "train", seed=3, global_batch=4, process_index=0, process_count=1, workers=2)
  reference = list(indexed.dataset(reference_stream, reference_tasks, 0).take(8)
                   .as_numpy_iterator())
  for i in range(2):
    prepared.build_shard(TASK, "train", tmp_path, 2, i,
                         options=prepared.StoreOptions(codec="original"))
  for directory, exact in ((tmp_path, True), (built, False)):
    prepared.register_prepared_task(TASK, directory)
    task = seqio.get_mixture_or_task(TASK)
    assert isinstance(task.source, prepared.PreparedSource)
    stream, stream_tasks = indexed.from_provider(task, "train", seed=3, global_batch=4,
                                                 process_index=0, process_count=1, workers=2)
    assert isinstance(stream.tasks[0], prepared.PreparedItems)
    ds = indexed.dataset(stream, stream_tasks, 0)
    got = list(ds.take(8).as_numpy_iterator())
    for a, b in zip(got, reference):
      assert a["video_id"] == b["video_id"]
      np.testing.assert_array_equal(a["suffix"], b["suffix"])
      if exact:
        np.testing.assert_array_equal(a["frames"], b["frames"])
    batch = next(pp.numpy_iterator(pp.batch_for_model(
        ds, batch_size=4, seq_len=32, vocab=tasks.vocabulary(str(demo_world / "spm" /
                                                                 "demo.model")))))
    assert batch["frames"].shape == (4, 4, 16, 16, 3) and batch["tokens"].shape == (4, 32)
    # seqio users: get_dataset(shard_info) reads only its share; the shares make the split.
    shares = [{ex["video_id"] for ex in task.source.get_dataset(
        "train", shuffle=True, seed=1, shard_info=seqio.ShardInfo(k, 2)).as_numpy_iterator()}
        for k in range(2)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 24


def test_the_trainer_reads_prepared_tasks_named_in_the_config(demo_world, built, pyav):
  """data.prepared="task=dir": register_for_training puts the prepared source in the task's place
  and the VLM trainer's indexed input feeds model batches from it; an unknown task or a malformed
  entry is an error naming the key."""
  del pyav  # Re-registers the PyAV tasks afterwards.
  from data import vlm_batches  # pylint: disable=import-outside-toplevel
  config = demo_phase1.get_config(
      f"data.world_dir={demo_world},{OVERRIDES},data.prepared={TASK}={built},"
      "data.process_split=indexed,train.batch_size=4")
  vocab = registry.register_for_training(config.data)
  assert isinstance(seqio.get_mixture_or_task(TASK).source, prepared.PreparedSource)
  batch = next(vlm_batches.make_data_fn(config, vocab)(0))
  assert batch["frames"].shape == (4, 4, 16, 16, 3) and batch["frames"].any()
  for bad, match in ((f"nope={built}", "names task 'nope'"), (str(built), "not task=directory")):
    with pytest.raises(ValueError, match=match):
      registry.register_for_training(demo_phase1.get_config(
          f"data.world_dir={demo_world},{OVERRIDES},data.prepared={bad}").data)


def test_the_dual_encoder_reads_a_prepared_caption_source(demo_world, built, pyav):
  """The dual encoder's `smit` caption source from the prepared shards (data.prepared), by index:
  its batches hold the clips' frames and caption tokens."""
  del pyav  # Re-registers the PyAV tasks afterwards.
  from configs import dual_encoder_demo  # pylint: disable=import-outside-toplevel
  from viit_jax import train_dual_encoder as tde  # pylint: disable=import-outside-toplevel
  config = dual_encoder_demo.get_config(
      f"data.world_dir={demo_world},{OVERRIDES},model.variant=test-de,data.text_len=8,"
      f"train.batch_size=8,dual_encoder.caption_source=smit:1,data.process_split=indexed,"
      f"data.prepared={TASK}={built},init_from='',init_required=false")
  task = tde.build_task(config, sharding.make_mesh(dict(config.mesh)))
  assert isinstance(seqio.get_mixture_or_task(TASK).source, prepared.PreparedSource)
  batch = next(task.data_fn(0))
  assert batch["frames"].shape == (8, 4, 16, 16, 3) and batch["frames"].any()
  assert batch["tokens"].shape == (8, 8) and (batch["tokens"] > 0).any()

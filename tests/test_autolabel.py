"""Auto-labeling end to end: exactly once across SIGKILL and restarts, 2 processes, bad clips,
the frame-captioner mode, TFRecord/JSONL agreement, the seqio caption task, motion verbs.

A tiny random-init `test` VLM is saved as a real orbax checkpoint (the trainer's layout, with the
trainer's meta config); corpora are the demo world's real mp4 clips.
"""
import csv
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import autolabel_demo
from configs import base as base_config
from launch import local as local_launch
from viit_jax import autolabel
from viit_jax import caption_sets
from viit_jax import cards
from viit_jax import checkpoints
from viit_jax import config_lib
from viit_jax import paths
from viit_jax import runtime
from viit_jax.metrics import caption_stats
from viit_jax.models import variants

REPO = pathlib.Path(__file__).resolve().parents[1]
REPEATS = 4  # The kill-test corpus lists each pool clip this many times (under new ids).


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> pathlib.Path:
  """A trainer-layout workdir with one checkpoint of a random-init `test` VLM."""
  workdir = tmp_path_factory.mktemp("vlm")
  trained = base_config.get_config("model.variant=test,model.dtype=float32,data.res=16,"
                                   "data.num_frames=2")
  cfg = variants.get_config("test", {"llm.dtype": "float32", "img.dtype": "float32"})
  params = nn.unbox(jax.jit(variants.init_fn(cfg))(jax.random.PRNGKey(1))["params"])
  ck = checkpoints.Checkpointer(workdir, save_every=1, keep=1, async_save=False)
  ck.save(5, {"step": jnp.int32(5), "params": params}, data={"step": 5},
          meta={"experiment": trained.experiment, "variant": "test",
                "config": config_lib.to_plain(trained)})
  ck.close()
  return workdir


def _pool_rows(world: pathlib.Path) -> list[list[str]]:
  lines = (world / "webvid" / "results_pool.csv").read_text().splitlines()
  return list(csv.reader(lines))[1:]


@pytest.fixture(scope="module")
def corpus(demo_world, tmp_path_factory) -> pathlib.Path:
  """A WebVid-format root listing every pool clip REPEATS times (new ids, same files)."""
  root = tmp_path_factory.mktemp("webvid")
  (root / "videos").symlink_to(demo_world / "webvid" / "videos")
  lines = ["videoid,contentUrl,duration,page_dir,name"]
  for r in range(REPEATS):
    for videoid, url, duration, page, name in _pool_rows(demo_world):
      lines.append(f'{videoid}-{r},{url},{duration},{page},"{name}"')
  (root / "pool.csv").write_text("\n".join(lines) + "\n")
  return root


def _args(ckpt, extra: str = "") -> str:
  args = (f"init_from={ckpt},data.num_frames=2,unit_size=2,batch_size=8,"
          "decode.max_decode_len=6,decode.num_samples=2,data.decode_workers=2,log_every_s=0")
  return args + ("," + extra if extra else "")


def _webvid(corpus, demo_world) -> str:
  return (f"corpus.format=webvid,corpus.root={corpus},corpus.file=pool.csv,"
          f"corpus.path_template={{contentUrl}},vocab_path={demo_world}/spm/demo.model")


def _config(arg: str):
  return autolabel_demo.get_config(arg)


def _all_rows(out: pathlib.Path) -> list[dict]:
  return list(caption_sets.caption_rows(out))


def _env() -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  return env


@pytest.fixture(scope="module")
def reference(ckpt, corpus, demo_world, tmp_path_factory) -> pathlib.Path:
  """An uninterrupted in-process run over the kill-test corpus."""
  workdir = tmp_path_factory.mktemp("ref")
  manifest = autolabel.run(_config(_args(ckpt, _webvid(corpus, demo_world))), workdir)
  assert manifest is not None
  return workdir / "v1"


def test_exactly_once_after_sigkill_and_restart(ckpt, corpus, demo_world, reference, tmp_path):
  arg = _args(ckpt, _webvid(corpus, demo_world))
  out = tmp_path / "v1"
  log = open(tmp_path / "killed.log", "w")
  proc = subprocess.Popen(
      [sys.executable, "-m", "viit_jax.autolabel", f"--config=configs/autolabel_demo.py:{arg}",
       f"--workdir={tmp_path}"], cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
  # A random point: once a random number of units (in the first third) is finished, plus a
  # random fraction of the next unit's time (the kill may land inside a unit's writes).
  num_units = json.loads((reference / "manifest.json").read_text())["num_units"]
  seed = random.randrange(10**6)
  rng = random.Random(seed)
  target, delay = rng.randint(1, num_units // 3), rng.uniform(0.0, 0.05)
  try:
    deadline = time.time() + 240
    while len(list(out.glob("units/*.meta.json"))) < target:
      assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
      assert time.time() < deadline, "units did not finish in time"
      time.sleep(0.005)
    time.sleep(delay)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
  finished = len(list((out / "units").glob("*.meta.json")))
  assert not (out / "manifest.json").exists(), f"job finished before SIGKILL (seed {seed})"
  assert target <= finished < num_units, (target, finished, num_units, seed)

  manifest = autolabel.run(_config(arg), tmp_path)  # The restart: skips finished units.
  assert manifest is not None and manifest["num_units"] == num_units
  rows = _all_rows(out)
  ids = [r["clip_id"] for r in rows]
  expected = [f"{r[0]}-{k}" for k in range(REPEATS) for r in _pool_rows(demo_world)]
  assert ids == expected and len(set(ids)) == len(ids)  # Every clip exactly once, in order.
  assert rows == _all_rows(reference)  # Identical to the uninterrupted run (same seed).
  runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
  assert len(runs) == 1 and runs[0]["units_skipped"] == finished
  assert runs[0]["units_written"] == num_units - finished
  assert manifest["num_captioned"] == len(expected) and manifest["num_rejected"] == 0
  assert manifest["checkpoint"] == {"path": str(ckpt), "step": 5, "experiment": "base",
                                    "variant": "test"}
  assert manifest["decode"]["sampler"] == "nucleus" and manifest["seed"] == 0
  assert manifest["prompt"] == "Generate the alt-text:"
  # Its data card, written with the manifest: checkpoint and step, counts, plots, examples.
  card = (out / cards.CARD).read_text()
  assert f"| checkpoint | `{ckpt}` |" in card and "| step | 5 |" in card
  assert f"| clips captioned | {len(expected)} |" in card and "| decode.sampler | nucleus |" in card
  assert f"- `{rows[0]['clip_id']}` (alt-text: " in card and f"  - {rows[0]['captions'][0]}" in card
  for png in ("caption_lengths.png", "caption_words.png"):
    assert (out / cards.FILES / png).read_bytes()[:4] == b"\x89PNG"
    assert f"]({cards.FILES}/{png})" in card


def test_a_second_run_on_the_workdir_exits_naming_the_first(ckpt, corpus, demo_world, reference,
                                                            tmp_path, run_twice_at_once):
  """Two identical CLI runs at once: the second exits EXIT_WORKDIR_LOCKED naming the first (and
  deletes none of its temp files); the first's captions equal the uninterrupted run's."""
  arg = _args(ckpt, _webvid(corpus, demo_world))
  cmd = [sys.executable, "-m", "viit_jax.autolabel", f"--config=configs/autolabel_demo.py:{arg}",
         f"--workdir={tmp_path}"]
  first = run_twice_at_once(cmd, tmp_path / ".lock", _env())
  assert first.returncode == 0, first.stdout[-3000:]
  assert _all_rows(tmp_path / "v1") == _all_rows(reference)
  assert len(list((tmp_path / "v1" / "runs").glob("*.json"))) == 1


@pytest.mark.parametrize("store", ["local", "gcs"])
def test_two_processes_split_units_and_match_one_process(ckpt, corpus, demo_world, reference,
                                                         tmp_path, store, request):
  """2 processes x 2 devices; the version on a local disk or in a bucket (GCS emulator), where
  process 0 sees the other's units to write the manifest."""
  workdir = (str(tmp_path) if store == "local"
             else f"{request.getfixturevalue('gcs_bucket')}/{tmp_path.name}")
  arg = _args(ckpt, _webvid(corpus, demo_world))
  rc = local_launch.run_local(
      [sys.executable, "-m", "viit_jax.autolabel", f"--config=configs/autolabel_demo.py:{arg}",
       f"--workdir={workdir}"], num_processes=2, devices_per_process=2, env=_env(), cwd=str(REPO),
      out=open(tmp_path / "launch.log", "w"))
  assert rc == 0, (tmp_path / "launch.log").read_text()[-3000:]
  out = paths.path(workdir) / "v1"
  manifest = paths.read_json(out / "manifest.json")
  units = caption_sets.Units(out)
  by_process = {0: [], 1: []}
  for u in range(manifest["num_units"]):
    by_process[units.meta(u)["process"]].append(u)
  assert by_process[0] == list(range(0, manifest["num_units"], 2))
  assert by_process[1] == list(range(1, manifest["num_units"], 2))
  rows = _all_rows(out)
  ids = [r["clip_id"] for r in rows]
  assert sorted(ids) == sorted(r["clip_id"] for r in _all_rows(reference))
  assert len(set(ids)) == len(ids) == REPEATS * len(_pool_rows(demo_world))
  # Same seed, 2 processes x 2 devices vs 1 process x 8 devices: the same captions.
  ref = {r["clip_id"]: r for r in _all_rows(reference)}
  for r in rows:
    assert r["captions"] == ref[r["clip_id"]]["captions"]
    np.testing.assert_allclose(r["mean_logprobs"], ref[r["clip_id"]]["mean_logprobs"], atol=1e-4)
  assert len(list((out / "runs").glob("*-p0.json"))) == 1
  assert len(list((out / "runs").glob("*-p1.json"))) == 1


def test_job_shards_split_units_and_the_last_one_writes_the_manifest(ckpt, corpus, demo_world,
                                                                      reference, tmp_path):
  """Two independent jobs (num_shards=2) on one version: each captions its units only; the first
  to finish leaves no manifest, the second writes it, and the captions equal one job's."""
  arg = _args(ckpt, _webvid(corpus, demo_world))
  assert autolabel.run(_config(arg + ",shard_index=1,num_shards=2"), tmp_path) is None
  units = caption_sets.Units(tmp_path / "v1")
  num_units = paths.read_json(reference / "manifest.json")["num_units"]
  done = [u for u in range(num_units) if units.meta(u) is not None]
  assert done == list(range(1, num_units, 2))
  assert not (tmp_path / "v1" / "manifest.json").exists()
  manifest = autolabel.run(_config(arg + ",shard_index=0,num_shards=2"), tmp_path)
  assert manifest is not None and manifest["num_units"] == num_units
  ref = {r["clip_id"]: r["captions"] for r in _all_rows(reference)}
  assert {r["clip_id"]: r["captions"] for r in _all_rows(tmp_path / "v1")} == ref
  with pytest.raises(ValueError, match="shard_index 2 is not in"):
    autolabel.run(_config(arg + ",shard_index=2,num_shards=2"), tmp_path)


def test_sigterm_finishes_the_unit_and_stops_without_manifest(ckpt, corpus, demo_world,
                                                              reference, tmp_path):
  """SIGTERM (a preemption notice): the unit in progress is written, the job exits with
  EXIT_PREEMPTED and no manifest; the same command then completes the identical version."""
  arg = _args(ckpt, _webvid(corpus, demo_world))
  cmd = [sys.executable, "-m", "viit_jax.autolabel", f"--config=configs/autolabel_demo.py:{arg}",
         f"--workdir={tmp_path}"]
  out = tmp_path / "v1"
  num_units = json.loads((reference / "manifest.json").read_text())["num_units"]
  proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 240
  while not list(out.glob("units/*.meta.json")) and time.time() < deadline:
    assert proc.poll() is None
    time.sleep(0.005)
  proc.send_signal(signal.SIGTERM)
  log, _ = proc.communicate(timeout=120)
  assert proc.returncode == runtime.EXIT_PREEMPTED, log[-3000:]
  assert "stopped by SIGTERM" in log
  assert not (out / "manifest.json").exists()
  finished = sorted(p.name.split(".")[0] for p in (out / "units").glob("*.meta.json"))
  assert 1 <= len(finished) < num_units
  for unit in finished:  # Whole units only: every data file next to its meta, no temp file.
    for suffix in ("tfrecord", "jsonl", "rejects.jsonl"):
      assert (out / "units" / f"{unit}.{suffix}").is_file()
  assert not list((out / "units").glob(".*tmp*"))
  runs = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
  assert len(runs) == 1 and runs[0]["preempted"] and runs[0]["units_written"] == len(finished)
  again = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stdout[-3000:]
  assert _all_rows(out) == _all_rows(reference)


def test_bad_clips_are_skipped_and_counted(ckpt, demo_world, tmp_path):
  from data.demo_world import render as world_render
  root = tmp_path / "corpus"
  (root / "videos").mkdir(parents=True)
  pool = _pool_rows(demo_world)[:5]
  for videoid, url, *_ in pool:
    (root / url).symlink_to(demo_world / "webvid" / url)
  (root / "videos" / "empty.mp4").write_bytes(b"")
  (root / "videos" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
  world_render.encode_mp4(np.zeros((1, 64, 64, 3), np.uint8), root / "videos" / "short.mp4", fps=4)
  lines = ["videoid,contentUrl,duration,page_dir,name"]
  lines += [f'{v},{u},{d},{p},"{n}"' for v, u, d, p, n in pool[:2]]
  lines += ["missing,videos/missing.mp4,PT00H00M04S,x,gone",
            "empty,videos/empty.mp4,PT00H00M04S,x,zero bytes",
            "corrupt,videos/corrupt.mp4,PT00H00M04S,x,noise",
            "short,videos/short.mp4,PT00H00M01S,x,one frame",
            "malformed,videos/x.mp4,PT00H00M04S",  # A field short.
            f'{pool[0][0]},{pool[0][1]},PT00H00M04S,x,"a repeated id"']
  lines += [f'{v},{u},{d},{p},"{n}"' for v, u, d, p, n in pool[2:]]
  (root / "pool.csv").write_text("\n".join(lines) + "\n")
  arg = _args(ckpt, f"corpus.format=webvid,corpus.root={root},corpus.file=pool.csv,"
                    f"corpus.path_template={{contentUrl}},vocab_path={demo_world}/spm/demo.model")
  manifest = autolabel.run(_config(arg), tmp_path / "out")
  assert manifest is not None  # The job finished.
  assert manifest["rejects_per_reason"] == {"missing_file": 1, "empty_file": 1, "corrupt": 1,
                                            "too_short": 1, "malformed_row": 1,
                                            "duplicate_key": 1}
  assert manifest["num_captioned"] == 5 and manifest["num_rejected"] == 4
  assert manifest["num_input_rows_rejected"] == 2
  rows = _all_rows(tmp_path / "out" / "v1")
  assert [r["clip_id"] for r in rows] == [p[0] for p in pool]
  merged = [json.loads(x) for x in (tmp_path / "out" / "v1" / "rejects.jsonl").read_text()
            .splitlines()]
  items = {(r["item"], r["reason"]) for r in merged}
  assert {("videos/missing.mp4", "missing_file"), ("videos/empty.mp4", "empty_file"),
          ("videos/corrupt.mp4", "corrupt"), ("videos/short.mp4", "too_short")} <= items


def test_an_unreachable_video_store_stops_the_job_without_a_manifest(ckpt, demo_world, tmp_path):
  """The corpus file is fine but its videos are gone (an unmounted store): the breaker (a window
  of 4 clips here) trips at the second unit; the CLI exits EXIT_BACKEND_FAILED naming the reason
  and the setting, with no unit and no manifest written."""
  root = tmp_path / "corpus"
  root.mkdir()
  lines = ["videoid,contentUrl,duration,page_dir,name"]
  lines += [f'{v},{u},{d},{p},"{n}"' for v, u, d, p, n in _pool_rows(demo_world)[:6]]
  (root / "pool.csv").write_text("\n".join(lines) + "\n")
  arg = _args(ckpt, f"corpus.format=webvid,corpus.root={root},corpus.file=pool.csv,"
                    f"corpus.path_template={{contentUrl}},vocab_path={demo_world}/spm/demo.model,"
                    "breaker_min_clips=4")
  out = tmp_path / "out"
  run = subprocess.run([sys.executable, "-m", "viit_jax.autolabel",
                        f"--config=configs/autolabel_demo.py:{arg}", f"--workdir={out}"],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert run.returncode == runtime.EXIT_BACKEND_FAILED, run.stdout[-2000:] + run.stderr[-3000:]
  assert "4 of the last 4 clips were rejected (unit 1: {'missing_file': 2}" in run.stderr, \
      run.stderr
  assert "max_unit_reject_rate=0.9" in run.stderr
  assert not (out / "v1" / "manifest.json").exists()
  # Unit 0 alone was below the window (written, its rejects counted); unit 1 tripped it.
  assert sorted(p.name for p in (out / "v1" / "units").glob("*.meta.json")) == [
      "unit-00000.meta.json"]
  # Half of the clips bad is below the threshold: the job runs through.
  (root / "videos").mkdir()
  for _, url, *_ in _pool_rows(demo_world)[:6:2]:
    (root / url).symlink_to(demo_world / "webvid" / url)
  manifest = autolabel.run(_config(arg), tmp_path / "out2")
  assert manifest is not None and manifest["num_captioned"] == 3
  assert manifest["rejects_per_reason"] == {"missing_file": 3}


def test_a_hanging_clip_is_abandoned_and_the_unit_goes_on(ckpt, corpus, demo_world, tmp_path,
                                                           monkeypatch):
  """A decode that never returns (a test double that sleeps, as a read stuck in the kernel) is
  rejected as decode_timeout after data.decode_time_limit_s; its unit is written with the rest."""
  hung = _pool_rows(demo_world)[1][0] + "-0"
  decode = autolabel.decode_clip

  def maybe_hang(clip, *args):
    if clip.clip_id == hung:
      time.sleep(3600)
    return decode(clip, *args)

  monkeypatch.setattr(autolabel, "decode_clip", maybe_hang)
  arg = _args(ckpt, _webvid(corpus, demo_world) + ",corpus.limit=6,data.decode_time_limit_s=1.0")
  t0 = time.time()
  manifest = autolabel.run(_config(arg), tmp_path)
  assert time.time() - t0 < 120
  assert manifest["num_captioned"] == 5 and manifest["rejects_per_reason"] == {"decode_timeout": 1}
  assert hung not in [r["clip_id"] for r in _all_rows(tmp_path / "v1")]


def test_internvid_segments(ckpt, demo_world, tmp_path):
  """InternVid JSONL over whole videos: each line's [start, end) segment is the clip."""
  root = tmp_path / "internvid"
  (root / "videos").mkdir(parents=True)
  lines = []
  for videoid, url, *_ in _pool_rows(demo_world)[:3]:
    (root / "videos" / f"yt{videoid}.mp4").symlink_to(demo_world / "webvid" / url)
    for start, end in (("00:00:00.000", "00:00:02.000"), ("00:00:01.500", "00:00:04.000")):
      lines.append(json.dumps({"YoutubeID": f"yt{videoid}", "Start_timestamp": start,
                               "End_timestamp": end, "Caption": f"clip of {videoid}"}))
  lines.append(json.dumps({"YoutubeID": "ytgone", "Start_timestamp": "00:00:00.000",
                           "End_timestamp": "00:00:01.000", "Caption": "no file"}))
  (root / "InternVid-10M-FLT.jsonl").write_text("\n".join(lines) + "\n")
  arg = _args(ckpt, f"corpus.format=internvid,corpus.root={root},"
                    f"vocab_path={demo_world}/spm/demo.model")
  manifest = autolabel.run(_config(arg), tmp_path / "out")
  assert manifest["num_captioned"] == 6 and manifest["rejects_per_reason"] == {"missing_file": 1}
  rows = _all_rows(tmp_path / "out" / "v1")
  assert [r["segment"] for r in rows[:2]] == [[0.0, 2.0], [1.5, 4.0]]
  assert rows[0]["clip_id"].endswith("_0_2000") and rows[0]["path"].startswith("videos/yt")
  assert rows[0]["alt_text"].startswith("clip of")


def test_frame_captioner_mode(ckpt, demo_world, tmp_path):
  arg = _args(ckpt, f"mode=frame_captioner,corpus.world_dir={demo_world},corpus.limit=6,"
                    "frame_captioner.num_frames=3,frame_captioner.fps=1.0,version=frames")
  manifest = autolabel.run(_config(arg), tmp_path)
  assert manifest["mode"] == "frame_captioner" and manifest["num_captioned"] == 6
  assert manifest["frames"] == {"num_frames": 3, "fps": 1.0, "res": 16, "per_frame": True}
  for row in _all_rows(tmp_path / "frames"):
    assert len(row["frame_captions"]) == 2 and all(len(s) == 3 for s in row["frame_captions"])
    for caption, frames in zip(row["captions"], row["frame_captions"]):
      assert caption == "; ".join(dict.fromkeys(c for c in frames if c))
    assert all(n > 0 for n in row["num_tokens"])


def test_changed_settings_are_refused(ckpt, corpus, demo_world, reference):
  arg = _args(ckpt, _webvid(corpus, demo_world) + ",seed=1")
  with pytest.raises(ValueError, match="other settings.*seed"):
    autolabel.run(_config(arg), reference.parent)


def test_tfrecords_match_jsonl_and_caption_task(reference, demo_world, corpus):
  import seqio
  import tensorflow as tf
  from data import caption_tasks
  units = caption_sets.Units(reference)
  for u in (0, 3):
    rows = units.rows(u)
    records = list(tf.data.TFRecordDataset(str(units.path(u, "tfrecord"))).as_numpy_iterator())
    assert len(records) == len(rows) > 0
    for row, raw in zip(rows, records):
      f = tf.train.Example.FromString(raw).features.feature
      assert f["clip_id"].bytes_list.value[0].decode() == row["clip_id"]
      assert f["path"].bytes_list.value[0].decode() == row["path"]
      assert [c.decode() for c in f["captions"].bytes_list.value] == row["captions"]
      assert list(f["index"].int64_list.value) == [row["index"]]
      assert list(f["num_tokens"].int64_list.value) == row["num_tokens"]
      np.testing.assert_allclose(f["mean_logprobs"].float_list.value, row["mean_logprobs"],
                                 rtol=1e-6)
  name = caption_tasks.register_caption_task("test_autolabel_captions", reference, None,
                                             num_frames=2, fps=2.0, res=16,
                                             vocab_path=demo_world / "spm" / "demo.model")
  ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=None, split="train",
                                                   shuffle=False, seed=0)
  by_id = {r["clip_id"]: r for r in list(caption_sets.caption_rows(reference))}
  examples = list(ds.take(3).as_numpy_iterator())
  assert len(examples) == 3
  for ex in examples:
    row = by_id[ex["clip_id"].decode()]
    assert ex["frames"].shape == (2, 16, 16, 3) and ex["frames"].dtype == np.uint8
    assert [c.decode() for c in ex["captions"]] == row["captions"]
    assert ex["suffix_pretokenized"].decode() in row["captions"]
    assert ex["prefix_pretokenized"].decode() == "Generate the alt-text:"


def test_prompt_tokens_match_the_training_sequence(demo_world):
  import tensorflow as tf
  from data import preprocessors as pp
  from data import tasks
  vocab = tasks.vocabulary(str(demo_world / "spm" / "demo.model"))
  seq = pp.vlm_sequence(tf.constant(vocab.encode(pp.CAPTION_PROMPT), tf.int32),
                        tf.constant([5, 6], tf.int32), seq_len=32, bos_id=2, eos_id=1,
                        sep_ids=pp.separator_ids(vocab))
  head = seq["tokens"].numpy()[seq["mask_ar"].numpy() == 0].tolist()
  tok = autolabel.Tokenizer(demo_world / "spm" / "demo.model")
  assert tok.prompt_ids(pp.CAPTION_PROMPT) == head
  assert tok.text(np.array([*vocab.encode("a red circle moves left"), 1, 0, 0])) == \
      "a red circle moves left"


def test_motion_verb_share():
  captions = ["a red circle moves left", "the square bounces off the wall",
              "a big blue square", "little purple diamond and small red circle",
              "a triangle is going up then stopping", "two circles turn purple",
              "the diamond slid down", "a square on the left"]
  assert caption_stats.motion_verb_share(captions) == 4 / 8
  assert caption_stats.motion_verb_share([]) == 0.0
  assert caption_stats.has_motion_verb("it hopped and rolled")
  assert not caption_stats.has_motion_verb("a close-up shot of a rose")
  stats = caption_stats.caption_stats(["a red circle moves", "a red square"])
  assert stats == {"num_captions": 2, "mean_words": 3.5, "unique_words": 5,
                   "motion_verb_share": 0.5}

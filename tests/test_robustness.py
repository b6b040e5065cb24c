"""Bad inputs are skipped and counted by reason, and the rest of the data flows: through the
seqio PyAV path and through the TFDS builders."""
import csv
import io
import json
import shutil

import av
import numpy as np
import pytest
import seqio
import tensorflow_datasets as tfds

from data import rejects as rj
from data import tasks
from data import tfds_builders as tb
from data import video
from data.rejects import Rejects

SEQ = {"prefix": 48, "suffix": 48}


def _one_frame_mp4(path):
  with av.open(str(path), "w") as c:
    s = c.add_stream("libx264", rate=4)
    s.width = s.height = 64
    s.pix_fmt = "yuv420p"
    frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
    for p in [*s.encode(frame), *s.encode()]:
      c.mux(p)


@pytest.fixture(scope="module")
def bad_pool(demo_world, tmp_path_factory):
  """The demo pool plus one bad input of each kind. Returns (root, good rows)."""
  root = tmp_path_factory.mktemp("pool")
  shutil.copytree(demo_world / "webvid" / "videos", root / "videos")
  with (demo_world / "webvid" / "results_pool.csv").open(newline="") as f:
    good = list(csv.DictReader(f))[:6]
  v = root / "videos"
  v.joinpath("corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
  data = (demo_world / "webvid" / good[0]["contentUrl"]).read_bytes()
  v.joinpath("truncated.mp4").write_bytes(data[: len(data) // 3])
  v.joinpath("zero.mp4").write_bytes(b"")
  _one_frame_mp4(v / "one.mp4")
  text = io.StringIO()
  w = csv.writer(text, lineterminator="\n")
  w.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
  rows = [[r["videoid"], r["contentUrl"], r["duration"], r["page_dir"], r["name"]] for r in good]
  bad = {
      "c1": ["c1", "videos/corrupt.mp4", "PT00H00M04S", "p", "corrupt clip"],
      "c2": ["c2", "videos/truncated.mp4", "PT00H00M04S", "p", "truncated clip"],
      "z": ["z", "videos/zero.mp4", "PT00H00M04S", "p", "zero bytes"],
      "m": ["m", "videos/missing.mp4", "PT00H00M04S", "p", "missing file"],
      "s": ["s", "videos/one.mp4", "PT00H00M01S", "p", "one frame"],
      "f": ["f", "videos/one.mp4", "PT00H00M01S", "p"],  # 4 fields
      "d": ["d", good[1]["contentUrl"], "four seconds", "p", "bad duration"],
      "u": ["u", good[2]["contentUrl"], "PT00H00M04S", "p", "UTF8_HOLE"],
      "dup": rows[3],
      "g": ["g", "videos/one.mp4", "PT00H00M01S", "UTF8_HOLE"],  # 4 fields and bad bytes
  }
  # Interleave bad rows between good ones: the rest must still flow, in order.
  order = [rows[0], bad["c1"], bad["z"], rows[1], bad["m"], bad["f"], rows[2], bad["s"],
           bad["u"], rows[3], bad["c2"], bad["d"], rows[4], bad["dup"], rows[5], bad["g"]]
  for r in order:
    w.writerow(r)
  raw = text.getvalue().encode("utf-8").replace(b"UTF8_HOLE", b"caf\xe9 \xff bad")
  (root / "results_pool.csv").write_bytes(raw)
  return root, good


EXPECTED_COUNTS = {rj.CORRUPT: 2, rj.EMPTY_FILE: 1, rj.MISSING_FILE: 1, rj.TOO_SHORT: 1,
                   rj.MALFORMED_ROW: 3, rj.INVALID_UTF8: 1, rj.DUPLICATE_KEY: 1}


def test_pyav_task_skips_and_counts_bad_inputs(demo_world, bad_pool, tmp_path):
  root, good = bad_pool
  names = tasks.register_real_tasks(
      {"webvid": root}, num_frames=8, fps=2.0, res=32,
      vocab_path=demo_world / "spm" / "demo.model", name_prefix="bad_",
      webvid_csv="results_pool.csv", webvid_path_template="{contentUrl}",
      rejects_dir=tmp_path / "rejects")
  assert names == ["bad_webvid_pool"]
  task = seqio.get_mixture_or_task("bad_webvid_pool")
  for _ in range(2):  # a second epoch counts nothing twice
    out = list(task.get_dataset(sequence_length=SEQ, split="train",
                                shuffle=False).as_numpy_iterator())
    assert [e["clip_id"].decode() for e in out] == [r["videoid"] for r in good]
    assert [e["alt_text"].decode() for e in out] == [r["name"] for r in good]
    for e, r in zip(out, good):
      np.testing.assert_array_equal(
          e["frames"], video.decode_frames(root / r["contentUrl"], 8, 2.0, 32))
    rejects = tasks.task_rejects("bad_webvid_pool")
    assert rejects.counts == EXPECTED_COUNTS, rejects.records
  lines = [json.loads(x) for x in
           (tmp_path / "rejects" / "bad_webvid_pool.jsonl").read_text().splitlines()]
  assert len(lines) == sum(EXPECTED_COUNTS.values())
  by_reason = {}
  for x in lines:
    assert set(x) == {"source", "item", "reason", "detail"} and x["detail"]
    by_reason.setdefault(x["reason"], []).append(x)
  assert {x["item"] for x in by_reason[rj.MALFORMED_ROW]} == {"line 7", "line 13", "line 17"}
  assert by_reason[rj.INVALID_UTF8][0]["item"] == "line 10"
  assert by_reason[rj.MISSING_FILE][0]["source"].endswith("results_pool.csv")
  assert by_reason[rj.EMPTY_FILE][0]["item"].endswith("zero.mp4")
  assert by_reason[rj.TOO_SHORT][0]["item"].endswith("one.mp4")
  assert sorted(x["item"].rsplit("/", 1)[1] for x in by_reason[rj.CORRUPT]) == [
      "corrupt.mp4", "truncated.mp4"]


def test_tfds_builder_skips_and_counts_bad_inputs(bad_pool, tmp_path):
  root, good = bad_pool
  config = tb.make_config(8, 2.0, 32, annotations=(("train", "results_pool.csv"),),
                          path_template="{contentUrl}")
  rejects = Rejects("webvid", tmp_path / "rejects.jsonl")
  directory = tb.prepare("webvid", root, tmp_path / "tfds", config, rejects=rejects)
  assert rejects.counts == EXPECTED_COUNTS
  builder = tfds.builder_from_directory(str(directory))
  assert builder.info.metadata["rejects"] == {"train": EXPECTED_COUNTS}
  ids = [e["clip_id"].decode() for e in builder.as_dataset(split="train").as_numpy_iterator()]
  assert ids == [r["videoid"] for r in good]
  assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 10


def test_a_bad_video_drops_its_questions_and_is_counted(demo_world, tmp_path):
  root = tmp_path / "nextqa"
  shutil.copytree(demo_world / "nextqa", root)
  with (root / "val.csv").open(newline="") as f:
    rows = list(csv.DictReader(f))
  vid_map = json.loads((root / "map_vid_vidorID.json").read_text())
  victim = rows[0]["video"]
  (root / "NExTVideo" / f"{vid_map[victim]}.mp4").write_bytes(b"\x00" * 1000)
  lost = sum(r["video"] == victim for r in rows)
  tasks.register_real_tasks({"nextqa": root}, num_frames=8, fps=2.0, res=32,
                            vocab_path=demo_world / "spm" / "demo.model", name_prefix="badqa_")
  out = list(seqio.get_mixture_or_task("badqa_nextqa_oe").get_dataset(
      sequence_length=SEQ, split="val", shuffle=False).as_numpy_iterator())
  assert sorted(e["key"].decode() for e in out) == sorted(
      f"{r['video']}_{r['qid']}" for r in rows if r["video"] != victim)
  rejects = tasks.task_rejects("badqa_nextqa_oe")
  assert rejects.counts == {rj.CORRUPT: 1}
  assert f"({lost} questions dropped)" in rejects.records[0].detail

"""TFDS builders: the demo MSR-VTT and NExT-QA sets prepared as shards (manual_dir = the data
set's root) and read through seqio tasks give the same examples as the direct PyAV path."""
import json

import numpy as np
import pytest
import seqio
import tensorflow_datasets as tfds

from data import tasks
from data import tfds_builders as tb
from data import video
from data.rejects import Rejects

SEQ = {"prefix": 48, "suffix": 48}


def _by(name, split, key):
  ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=SEQ, split=split,
                                                   shuffle=False)
  out = {}
  for e in ds.as_numpy_iterator():
    assert e[key] not in out
    out[e[key]] = e
  return out


@pytest.fixture(scope="module")
def prepared(demo_world, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  config = tb.make_config(8, 2.0, 32)
  dirs = {}
  for name in ("msrvtt", "nextqa"):
    rejects = Rejects(name)
    dirs[name] = tb.prepare(name, demo_world / name, data_dir, config, rejects=rejects,
                            num_shards=2)
    assert rejects.total == 0, rejects.records
  return data_dir, config, dirs


def test_shards_on_disk(prepared):
  data_dir, config, dirs = prepared
  assert dirs["msrvtt"] == data_dir / "viit_msrvtt" / config.name / tb.DATA_VERSION
  builder = tfds.builder_from_directory(str(dirs["msrvtt"]))
  assert set(builder.info.splits) == {"train", "validate", "test", "test_1ka"}
  assert builder.info.splits["test"].num_shards == 2
  assert len(list(dirs["msrvtt"].glob("viit_msrvtt-test.tfrecord-*-of-00002"))) == 2
  assert builder.info.metadata["rejects"] == {s: {} for s in builder.info.splits}
  frames = builder.info.features["frames"]
  assert isinstance(frames, tfds.features.Video) and frames.shape == (8, 32, 32, 3)
  assert json.loads((dirs["nextqa"] / "features.json").read_text())
  info = json.loads((dirs["nextqa"] / "dataset_info.json").read_text())
  assert {s["name"] for s in info["splits"]} == {"val", "test"}


def test_tfds_tasks_equal_the_pyav_path(demo_world, prepared):
  data_dir, _, _ = prepared
  vocab = demo_world / "spm" / "demo.model"
  names = tasks.register_real_tasks({"msrvtt": demo_world / "msrvtt",
                                     "nextqa": demo_world / "nextqa"},
                                    num_frames=8, fps=2.0, res=32, vocab_path=vocab,
                                    tfds_data_dir=data_dir, name_prefix="tfds_")
  assert sorted(names) == ["tfds_msrvtt_caption", "tfds_msrvtt_full_retrieval", "tfds_msrvtt_qa",
                          "tfds_msrvtt_retrieval", "tfds_nextqa_oe"]
  # MSR-VTT-QA has no TFDS builder: it stays on the PyAV path.
  assert {n: tasks.task_info(n).backend for n in names} == {
      "tfds_msrvtt_caption": "tfds", "tfds_msrvtt_full_retrieval": "tfds",
      "tfds_msrvtt_qa": "pyav", "tfds_msrvtt_retrieval": "tfds", "tfds_nextqa_oe": "tfds"}
  tasks.register_demo_tasks(demo_world, num_frames=8, fps=2.0, res=32)
  pairs = [("tfds_msrvtt_caption", "demo_msrvtt_caption", "test", "video_id"),
           ("tfds_msrvtt_retrieval", "demo_msrvtt_retrieval", "test", "key"),
           ("tfds_msrvtt_full_retrieval", "demo_msrvtt_full_retrieval", "test", "key"),
           ("tfds_nextqa_oe", "demo_nextqa_oe", "val", "key"),
           ("tfds_nextqa_oe", "demo_nextqa_oe", "test", "key")]
  for tfds_name, pyav_name, split, key in pairs:
    a, b = _by(tfds_name, split, key), _by(pyav_name, split, key)
    assert a and sorted(a) == sorted(b), tfds_name
    for k, ea in a.items():
      eb = b[k]
      assert sorted(ea) == sorted(eb)
      for field in ea:
        np.testing.assert_array_equal(ea[field], eb[field], err_msg=f"{tfds_name} {k} {field}")
  # And the stored frames are the sampling rule applied to the mp4 (not just equal to each other).
  one = next(iter(_by("tfds_msrvtt_caption", "test", "video_id").values()))
  path = demo_world / "msrvtt" / "videos" / "all" / f"{one['video_id'].decode()}.mp4"
  np.testing.assert_array_equal(one["frames"], video.decode_frames(path, 8, 2.0, 32))


def test_command_line_and_reuse(demo_world, tmp_path):
  tb.main(["--dataset=kinetics", f"--manual_dir={demo_world / 'kinetics'}",
           f"--data_dir={tmp_path}", "--num_frames=4", "--fps=1", "--res=16",
           f"--rejects={tmp_path / 'rejects.jsonl'}"])
  config = tb.make_config(4, 1.0, 16)
  directory = tb.prepared_dir("kinetics", tmp_path, config)
  assert directory.name == tb.DATA_VERSION and directory.parent.name == "f4_fps1_r16"
  ds = tfds.builder_from_directory(str(directory)).as_dataset(split="test")
  labels = tb.kinetics_labels(demo_world / "kinetics", "test")
  examples = list(ds.as_numpy_iterator())
  assert len(examples) == len(list((demo_world / "kinetics").rglob("*.mp4")))
  for e in examples[:3]:
    assert e["frames"].shape == (4, 16, 16, 3)
    assert labels[e["label_id"]] == e["label"].decode()
  assert not (tmp_path / "rejects.jsonl").exists()  # clean data: nothing rejected
  mtime = (directory / "dataset_info.json").stat().st_mtime
  tb.prepare("kinetics", demo_world / "kinetics", tmp_path, config)  # already there: reused
  assert (directory / "dataset_info.json").stat().st_mtime == mtime

"""seqio tasks of the demo world: one batch of every task, content equals the readers + PyAV,
model batches follow [BOS + prefix + "\\n" | suffix + EOS], mixtures, seeding, idempotence."""
import collections
import csv

import numpy as np
import pytest
import seqio
import tensorflow as tf

from data import preprocessors as pp
from data import readers
from data import tasks
from data import video
from data.rejects import Rejects

SEQ = {"prefix": 48, "suffix": 48}
EXPECTED = {
    "demo_stills_caption": {"image_id", "references"},
    "demo_smit_caption": {"video_id", "caption", "references"},
    "demo_pool": {"clip_id", "alt_text"},
    "demo_msrvtt_caption": {"video_id", "references"},
    "demo_msrvtt_retrieval": {"video_id", "key", "text"},
    "demo_msrvtt_full_retrieval": {"video_id", "key", "text", "captions"},
    "demo_nextqa_oe": {"video_id", "qid", "key", "type", "question", "answer", "answers"},
    "demo_msrvtt_qa": {"video_id", "qid", "key", "type", "question", "answer", "answers"},
    "demo_anet_caption": {"key", "video_id", "references"},
    "demo_anet_qa": {"video_id", "qid", "key", "type", "question", "answer", "answers"},
    "demo_vatex_retrieval": {"video_id", "key", "text", "captions"},
    "demo_kinetics": {"clip_id", "label", "label_id"},
}


@pytest.fixture(scope="module")
def demo_tasks(demo_world):
  return tasks.register_demo_tasks(demo_world, num_frames=8, fps=2.0, res=32)


def _vocab(demo_world):
  return tasks.vocabulary(str(demo_world / "spm" / "demo.model"))


def _all(name, split, **kw):
  ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=SEQ, split=split,
                                                   shuffle=False, **kw)
  return list(ds.as_numpy_iterator())


def test_every_demo_task_gives_a_batch(demo_world, demo_tasks):
  assert set(demo_tasks) == set(EXPECTED)
  vocab = _vocab(demo_world)
  for name in demo_tasks:
    info = tasks.task_info(name)
    assert info.backend == "pyav" and info.splits
    for split in info.splits[:1]:  # other splits: test_task_content_equals_readers_and_pyav
      ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=SEQ, split=split,
                                                       shuffle=False)
      keep = ("prefix", "suffix", "prefix_pretokenized", "suffix_pretokenized", *EXPECTED[name])
      batch = next(pp.batch_for_model(ds, batch_size=2, seq_len=64, vocab=vocab, keep=keep)
                   .as_numpy_iterator())
      t = 1 if name == "demo_stills_caption" else 8
      assert batch["frames"].dtype == np.uint8 and batch["frames"].shape == (2, t, 32, 32, 3)
      assert batch["frames"].max() > batch["frames"].min()  # real pixels, not padding
      for k in ("tokens", "mask_ar", "mask_loss", "mask_input"):
        assert batch[k].shape == (2, 64) and batch[k].dtype == np.int32
      for k in ("prefix", "suffix"):
        assert batch[k].dtype == np.int32 and batch[k].ndim == 2 and batch[k].shape[1] > 0
      prefix = vocab.decode(batch["prefix"][0].tolist())
      suffix = vocab.decode(batch["suffix"][0].tolist())
      if name in ("demo_nextqa_oe", "demo_msrvtt_qa", "demo_anet_qa"):
        assert prefix.startswith("answer in en: ") and prefix.endswith(
            batch["question"][0].decode().lower())
      else:
        assert prefix == "generate the alt-text:"
      assert suffix == batch["suffix_pretokenized"][0].decode().lower()
      n_prefix = int((batch["prefix"][0] > 0).sum())
      assert batch["tokens"][0, 0] == 2 and int(batch["mask_ar"][0].argmax()) == n_prefix + 2


def test_task_content_equals_readers_and_pyav(demo_world, demo_tasks):
  del demo_tasks
  root = demo_world / "msrvtt"
  truth = {v.video_id: v for v in readers.read_msrvtt(root, "test", rejects=Rejects("t"))}
  examples = _all("demo_msrvtt_caption", "test")
  assert sorted(e["video_id"].decode() for e in examples) == sorted(truth)
  for e in examples[:4]:
    v = truth[e["video_id"].decode()]
    assert [r.decode() for r in e["references"]] == list(v.captions)
    assert e["suffix_pretokenized"].decode() == v.captions[0]
    np.testing.assert_array_equal(e["frames"], video.decode_frames(v.path, 8, 2.0, 32))
  with (root / "MSRVTT_JSFUSION_test.csv").open(newline="") as f:
    pairs = list(csv.DictReader(f))
  retrieval = _all("demo_msrvtt_retrieval", "test")
  assert [(e["key"].decode(), e["text"].decode()) for e in retrieval] == [
      (p["key"], p["sentence"]) for p in pairs]
  # NExT-QA: every CSV row is one example, keys unique, answers kept.
  for split in ("val", "test"):
    with (demo_world / "nextqa" / f"{split}.csv").open(newline="") as f:
      rows = list(csv.DictReader(f))
    qa = _all("demo_nextqa_oe", split)
    assert sorted(e["key"].decode() for e in qa) == sorted(f"{r['video']}_{r['qid']}"
                                                           for r in rows)
    by_key = {f"{r['video']}_{r['qid']}": r for r in rows}
    for e in qa:
      r = by_key[e["key"].decode()]
      assert e["answer"].decode() == r["answer"] and e["type"].decode() == r["type"]
      assert [a.decode() for a in e["answers"]] == [r["answer"]]
  # Kinetics: label ids index the task's class list.
  labels = tasks.task_info("demo_kinetics").labels["test"]
  for e in _all("demo_kinetics", "test"):
    assert labels[e["label_id"]] == e["label"].decode()
  # Stills: one example per caption; pool: one per CSV row.
  stills = _all("demo_stills_caption", "val")
  per_image = collections.Counter(e["image_id"] for e in stills)
  assert all(n == len(e["references"]) for e in stills for n in [per_image[e["image_id"]]])
  with (demo_world / "webvid" / "results_pool.csv").open(newline="") as f:
    pool_rows = list(csv.DictReader(f))
  pool = _all("demo_pool", "train")
  assert [(e["clip_id"].decode(), e["alt_text"].decode()) for e in pool] == [
      (r["videoid"], r["name"]) for r in pool_rows]
  for name in ("demo_msrvtt_caption", "demo_nextqa_oe", "demo_kinetics", "demo_pool"):
    assert tasks.task_rejects(name).total == 0, tasks.task_rejects(name)


def test_batch_for_model_sequence_convention(demo_world):
  vocab = _vocab(demo_world)
  sep = pp.separator_ids(vocab)
  assert sep == (vocab.tokenizer.piece_to_id("\n"),)
  prefix, suffix = [5, 6, 7], [8, 9]
  ds = tf.data.Dataset.from_tensors({
      "frames": tf.zeros([2, 4, 4, 3], tf.uint8), "prefix": tf.constant(prefix, tf.int32),
      "suffix": tf.constant(suffix, tf.int32), "video_id": tf.constant("v")})
  b = next(pp.batch_for_model(ds.repeat(2), batch_size=2, seq_len=12, vocab=vocab,
                              keep=("video_id",)).as_numpy_iterator())
  bos, eos = vocab.tokenizer.bos_id(), vocab.tokenizer.eos_id()
  assert (bos, eos) == (2, 1)
  np.testing.assert_array_equal(b["tokens"][0], [2, 5, 6, 7, *sep, 8, 9, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(b["mask_ar"][0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
  np.testing.assert_array_equal(b["mask_loss"][0], [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(b["mask_input"][0], [1] * 8 + [0] * 4)
  assert b["video_id"].tolist() == [b"v", b"v"]
  # Too long: cut at seq_len (EOS goes first); prefix-only inputs for decoding.
  cut = next(pp.batch_for_model(ds, batch_size=1, seq_len=6, vocab=vocab).as_numpy_iterator())
  np.testing.assert_array_equal(cut["tokens"][0], [2, 5, 6, 7, *sep, 8])
  np.testing.assert_array_equal(cut["mask_loss"][0], [0, 0, 0, 0, 0, 1])
  dec = next(pp.batch_for_model(ds, batch_size=1, seq_len=8, vocab=vocab,
                                include_suffix=False).as_numpy_iterator())
  np.testing.assert_array_equal(dec["tokens"][0], [2, 5, 6, 7, *sep, 0, 0, 0])
  assert dec["mask_loss"].sum() == 0 and dec["mask_input"].sum() == 5


def test_training_window_is_random_and_seeded(demo_world, demo_tasks):
  del demo_tasks
  try:
    tasks.register_demo_tasks(demo_world, num_frames=4, fps=2.0, res=16)  # 2 s of 4 s clips
    task = seqio.get_mixture_or_task("demo_smit_caption")
    assert task.output_features["frames"].rank == 4

    def frames(seed, split="train"):
      ds = task.get_dataset(sequence_length=SEQ, split=split, shuffle=False, seed=seed)
      return np.stack([e["frames"] for e in ds.take(6).as_numpy_iterator()])

    a, b, c = frames(1), frames(1), frames(2)
    assert a.shape[1:] == (4, 16, 16, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(frames(1, "val"), frames(2, "val"))  # eval: centred window
    # Shuffled training order (seeded) covers every clip once.
    pool = seqio.get_mixture_or_task("demo_pool")
    ids = [e["clip_id"] for e in pool.get_dataset(sequence_length=SEQ, split="train",
                                                  shuffle=True, seed=3).as_numpy_iterator()]
    plain = [e["clip_id"] for e in pool.get_dataset(sequence_length=SEQ, split="train",
                                                    shuffle=False).as_numpy_iterator()]
    assert sorted(ids) == sorted(plain) and ids != plain
  finally:
    tasks.register_demo_tasks(demo_world, num_frames=8, fps=2.0, res=32)
  assert seqio.get_mixture_or_task("demo_smit_caption").get_dataset(
      sequence_length=SEQ, split="val", shuffle=False).element_spec["frames"].shape == (
          8, 32, 32, 3)


def test_parallel_decoding_gives_the_same_examples(demo_world, demo_tasks):
  del demo_tasks  # Registers demo_pool, the sequential reference.
  names = tasks.register_real_tasks({"webvid": demo_world / "webvid"}, num_frames=8, fps=2.0,
                                    res=32, vocab_path=demo_world / "spm" / "demo.model",
                                    name_prefix="par_", webvid_csv="results_pool.csv",
                                    webvid_path_template="{contentUrl}", decode_workers=2)
  assert names == ["par_webvid_pool"]
  par = _all("par_webvid_pool", "train")
  seq = {e["clip_id"]: e for e in _all("demo_pool", "train")}
  assert sorted(e["clip_id"] for e in par) == sorted(seq)
  for e in par:
    np.testing.assert_array_equal(e["frames"], seq[e["clip_id"]]["frames"])
  assert [e["clip_id"] for e in par] == [e["clip_id"] for e in _all("par_webvid_pool", "train")]


def test_viit_mixture_slot_and_video_text_tasks(demo_world, demo_tasks):
  del demo_tasks
  vidln = list(readers.read_vidln(demo_world / "vidln", "train", rejects=Rejects("v")))
  items = [tasks.VideoText(key=v.video_id, path=v.path,
                           prefix=f"{pp.QA_PROMPT} what does {v.narratives[0].actor_name} do?",
                           suffix=v.narratives[0].description, meta={"video_id": v.video_id})
           for v in vidln]
  name = tasks.register_video_text_task(
      "test_vidln_qa", {"train": lambda: items}, vocab_path=demo_world / "spm" / "demo.model",
      num_frames=8, fps=2.0, res=32, meta_keys=("video_id",))
  ex = _all(name, "train")
  assert [e["key"].decode() for e in ex] == [v.video_id for v in vidln]
  mixture = tasks.register_viit_mixture("test_viit", [(name, 1.0), ("demo_smit_caption", 2.0)])
  assert mixture is seqio.get_mixture_or_task("test_viit")
  tasks.register_viit_mixture("test_viit", [(name, 1.0), ("demo_smit_caption", 1.0)])  # replace
  ds = seqio.get_mixture_or_task("test_viit").get_dataset(sequence_length=SEQ, split="train",
                                                           shuffle=False, seed=0)
  batch = next(pp.batch_for_model(ds, batch_size=4, seq_len=64, vocab=_vocab(demo_world))
               .as_numpy_iterator())
  assert batch["frames"].shape == (4, 8, 32, 32, 3) and batch["tokens"].dtype == np.int32
  with pytest.raises(KeyError):
    tasks.register_viit_mixture("bad", [("no_such_task", 1.0)])
  with pytest.raises(ValueError):
    tasks.register_viit_mixture("bad", [])


def test_cache_decoded_decodes_once_and_changes_no_example(demo_world):
  vidln = list(readers.read_vidln(demo_world / "vidln", "train", rejects=Rejects("v")))[:5]
  items = [tasks.VideoText(key=v.video_id, path=v.path, prefix="q", suffix="a") for v in vidln]
  passes = collections.Counter()

  def examples(cache: bool) -> list[dict]:
    def train_items(cache=cache):
      passes[cache] += 1
      return items
    name = tasks.register_video_text_task(
        f"test_cache_{cache}", {"train": train_items},
        vocab_path=demo_world / "spm" / "demo.model", num_frames=4, fps=2.0, res=16,
        cache_decoded=cache)
    ds = seqio.get_mixture_or_task(name).get_dataset(
        sequence_length=SEQ, split="train", shuffle=False, seed=7, num_epochs=3)
    return list(ds.as_numpy_iterator())

  cached, plain = examples(True), examples(False)
  assert passes == {True: 1, False: 3}  # the cached task reads (and decodes) its items once
  assert len(cached) == len(plain) == 3 * len(items)
  for c, p in zip(cached, plain):
    assert c["key"] == p["key"]
    np.testing.assert_array_equal(c["frames"], p["frames"])


def test_registration_is_idempotent_and_checks_inputs(demo_world, tmp_path, demo_tasks):
  again = tasks.register_demo_tasks(demo_world, num_frames=8, fps=2.0, res=32)
  assert again == demo_tasks
  assert all(seqio.TaskRegistry.get(n).name == n for n in again)
  with pytest.raises(FileNotFoundError):
    tasks.register_demo_tasks(tmp_path)  # no world there: no vocabulary
  with pytest.raises(ValueError, match="unknown data sets"):
    tasks.register_real_tasks({"ucf": str(tmp_path)}, num_frames=8, fps=2.0, res=32,
                              vocab_path=demo_world / "spm" / "demo.model")
  with pytest.raises(FileNotFoundError, match="no prepared TFDS data"):
    tasks.register_real_tasks({"msrvtt": demo_world / "msrvtt"}, num_frames=8, fps=2.0, res=32,
                              vocab_path=demo_world / "spm" / "demo.model",
                              tfds_data_dir=tmp_path / "tfds")

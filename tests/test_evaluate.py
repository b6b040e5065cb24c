"""viit_jax.evaluate on tiny checkpoints: every evaluation task of the paper registered on the demo
world and run by seqio.Evaluator: a VLM (MSR-VTT and ActivityNet captioning, MSR-VTT-QA and
ActivityNet-QA exact match, NExT-OE WUPS) and a dual encoder (1k-A and VATEX retrieval, zero-shot
classification); metrics.json / metrics.md / predictions.

Checkpoints are real orbax trainer checkpoints (the loop's layout: state + data + meta with the
training config) of freshly initialised `test` / `test-de` models, so the numbers are near chance;
the tests check the report's structure and recompute every number independently: pycocoevalcap's
scorers and the WUPS / exact-match references on the written predictions, and retrieval and
zero-shot ranks by hand (ties included) from embeddings computed here with the model itself.
"""
import json
import math
import os
import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

from configs import demo_phase1
from configs import dual_encoder_demo
from configs import evaluate_demo
from data import preprocessors as pp
from data import readers
from data import tasks as tasks_lib
from launch import local as local_launch
from viit_jax import checkpoints
from viit_jax import config_lib
from viit_jax import evaluate
from viit_jax import runtime
from viit_jax.metrics import classification
from viit_jax.metrics import qa
from viit_jax.metrics import task_fns
from viit_jax.metrics import wups
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _save(workdir: pathlib.Path, config, model_cfg, step: int) -> None:
  """A trainer checkpoint as viit_jax.loop writes it (params of a fresh model)."""
  params = nn.unbox(variants.init_fn(model_cfg)(jax.random.PRNGKey(step))["params"])
  ck = checkpoints.Checkpointer(workdir, save_every=1, keep=1, async_save=False)
  ck.save(step, {"step": jnp.int32(step), "params": params}, data={"step": step},
          meta={"experiment": config.experiment, "variant": config.model.variant,
                "config": config_lib.to_plain(config)})
  ck.close()


def _model_config(config, want: type):
  """The trained model of `config` (the trainers' model_config, tokenizer of 244 ids)."""
  d = config.data
  return runtime.model_config(config.model, want, num_frames=d.num_frames, res=d.res,
                              text_len=d.text_len, vocab_size=244)


@pytest.fixture(scope="module")
def vlm_checkpoint(demo_world, tmp_path_factory):
  config = demo_phase1.get_config(
      f"model.variant=test,model.scan=false,data.res=16,data.num_frames=2,data.text_len=24,"
      f"data.world_dir={demo_world},init_from=''")
  work = tmp_path_factory.mktemp("vlm")
  _save(work, config, _model_config(config, vlm_lib.VLMConfig), 5)
  return work


@pytest.fixture(scope="module")
def de_checkpoint(demo_world, tmp_path_factory):
  config = dual_encoder_demo.get_config(
      f"model.variant=test-de,model.scan=false,data.res=16,data.num_frames=2,data.text_len=8,"
      f"data.world_dir={demo_world},init_from=''")
  work = tmp_path_factory.mktemp("de")
  _save(work, config, _model_config(config, de_lib.DualEncoderConfig), 7)
  return work


def _jsonl(path) -> list[dict]:
  return [json.loads(l) for l in open(path)]


def test_evaluate_vlm(vlm_checkpoint, demo_world, tmp_path):
  config = evaluate_demo.get_config(
      f"kind=vlm,checkpoint={vlm_checkpoint},data.world_dir={demo_world},data.num_frames=4,"
      "eval.batch_size=8,eval.max_examples=12,eval.max_decode_len=6")
  report = evaluate.evaluate(config, str(tmp_path), log=lambda s: None)
  on_disk = json.loads((tmp_path / "metrics.json").read_text())
  assert on_disk["tasks"].keys() == set(evaluate.TASKS["vlm"])
  assert on_disk["checkpoint"]["step"] == 5 and on_disk["checkpoint"]["variant"] == "test"
  # The image model is evaluated on more frames than it was trained on (4 vs 2).
  assert on_disk["frames"] == {"num_frames": 4, "fps": 2.0, "res": 16}
  assert on_disk["tasks"] == json.loads(json.dumps(report["tasks"]))

  cap = on_disk["tasks"]["msrvtt_caption"]["metrics"]
  assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"} <= cap.keys() and cap["count"] == 12
  assert all(0 <= cap[k] <= 100 for k in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr"))
  preds = _jsonl(tmp_path / "predictions" / "msrvtt_caption.jsonl")
  assert len(preds) == 12 and all(len(p["references"]) >= 6 for p in preds)
  # seqio.Evaluator scored the task with its own metric_fns; pycocoevalcap directly, from the
  # predictions file, gives the same CIDEr-D and BLEU-4.
  task = seqio.get_mixture_or_task("demo_msrvtt_caption")
  assert task.metric_fns and task.postprocess_fn("a cat. ", is_target=False) == "a cat."
  from pycocoevalcap.bleu.bleu import Bleu
  from pycocoevalcap.cider.cider import Cider
  from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
  tok = PTBTokenizer()
  gts = tok.tokenize({p["video_id"]: [{"caption": r} for r in p["references"]] for p in preds})
  res = tok.tokenize({p["video_id"]: [{"caption": p["prediction"]}] for p in preds})
  assert cap["CIDEr"] == pytest.approx(100 * Cider().compute_score(gts, res)[0], abs=1e-6)
  assert cap["BLEU-4"] == pytest.approx(100 * Bleu(4).compute_score(gts, res, verbose=0)[0][3],
                                        abs=1e-6)
  # ActivityNet Captions: one example per segment of activitynet/val_1.json, scored against its
  # one sentence.
  anet = on_disk["tasks"]["anet_caption"]
  assert anet["data_task"] == "demo_anet_caption" and anet["split"] == "val_1"
  segs = _jsonl(tmp_path / "predictions" / "anet_caption.jsonl")
  published = json.loads((demo_world / "activitynet" / "val_1.json").read_text())
  assert len(segs) == 12 and len({p["key"] for p in segs}) == 12
  for p in segs:
    vid, i = p["key"].rsplit("_", 1)
    assert p["video_id"] == vid and p["references"] == [published[vid]["sentences"][int(i)]]
  gts = tok.tokenize({p["key"]: [{"caption": r} for r in p["references"]] for p in segs})
  res = tok.tokenize({p["key"]: [{"caption": p["prediction"]}] for p in segs})
  assert anet["metrics"]["CIDEr"] == pytest.approx(100 * Cider().compute_score(gts, res)[0],
                                                   abs=1e-6)
  # S-MiT (the ablation metric): one spoken caption per clip of smit/val.csv.
  smit = on_disk["tasks"]["smit_caption"]
  clips = _jsonl(tmp_path / "predictions" / "smit_caption.jsonl")
  published = (demo_world / "smit" / "val.csv").read_text().splitlines()[1:]
  assert smit["split"] == "val" and len(clips) == min(12, len(published))
  assert all(len(p["references"]) == 1 for p in clips)
  gts = tok.tokenize({p["video_id"]: [{"caption": p["references"][0]}] for p in clips})
  res = tok.tokenize({p["video_id"]: [{"caption": p["prediction"]}] for p in clips})
  assert smit["metrics"]["CIDEr"] == pytest.approx(100 * Cider().compute_score(gts, res)[0],
                                                   abs=1e-6)

  rows = _jsonl(tmp_path / "predictions" / "nextqa_oe.jsonl")
  assert len(rows) == 12
  w = on_disk["tasks"]["nextqa_oe"]["metrics"]
  types = {r["type"] for r in rows}
  assert {"WUPS@0", "WUPS@0.9", "count"} <= w.keys()
  assert {f"WUPS@0/{t}" for t in types} | {f"WUPS@0.9/{t[0]}" for t in types} <= w.keys()
  expected = wups.nextoe_wups([task_fns.strip_trailing_punctuation(r["prediction"]) for r in rows],
                              [r["answers"] for r in rows], [r["type"] for r in rows])
  assert w == pytest.approx(expected)
  # MSR-VTT-QA in its public layout (the demo world's MSRVTT-QA/test_qa.json), scored by the
  # task's own metric_fn: exact match per question word, recomputed here from the predictions.
  q = on_disk["tasks"]["msrvtt_qa"]
  assert q["data_task"] == "demo_msrvtt_qa"
  qa_rows = _jsonl(tmp_path / "predictions" / "msrvtt_qa.jsonl")
  published = json.loads((demo_world / "msrvtt" / "MSRVTT-QA" / "test_qa.json").read_text())
  assert len(qa_rows) == 12 and qa_rows[0]["question"] == published[0]["question"]
  assert qa_rows[0]["answers"] == [published[0]["answer"]]
  assert {r["type"] for r in qa_rows} <= {"what", "who", "how", "when", "where", "other"}
  assert q["metrics"] == pytest.approx(qa.qa_accuracy(
      [task_fns.strip_trailing_punctuation(r["prediction"]) for r in qa_rows],
      [r["answers"] for r in qa_rows], [r["type"] for r in qa_rows]))
  # ActivityNet-QA: questions and answers matched by question_id across test_{q,a}.json.
  aq = on_disk["tasks"]["anet_qa"]
  anet_rows = _jsonl(tmp_path / "predictions" / "anet_qa.jsonl")
  questions = json.loads((demo_world / "activitynet" / "test_q.json").read_text())
  answers = {a["question_id"]: a for a in
             json.loads((demo_world / "activitynet" / "test_a.json").read_text())}
  assert len(anet_rows) == 12 and anet_rows[0]["question"] == questions[0]["question"]
  first = answers[questions[0]["question_id"]]
  assert anet_rows[0]["answers"] == [first["answer"]]
  assert anet_rows[0]["type"] == readers.ANET_QA_TYPES[first["type"]]
  assert aq["metrics"] == pytest.approx(qa.qa_accuracy(
      [task_fns.strip_trailing_punctuation(r["prediction"]) for r in anet_rows],
      [r["answers"] for r in anet_rows], [r["type"] for r in anet_rows]))

  md = (tmp_path / "metrics.md").read_text()
  for name in evaluate.TASKS["vlm"]:
    assert f"## {name} (" in md
  assert "| WUPS@0 |" in md and "| accuracy |" in md and "CIDEr" in md
  assert "## msrvtt_qa (`demo_msrvtt_qa`" in md


def test_two_process_vlm_evaluation_equals_one_process(vlm_checkpoint, demo_world, tmp_path):
  """2 processes x 4 devices (each decodes half the examples, predictions gathered once) give the
  same predictions and metrics, task by task, as 1 process x 8 devices."""
  arg = (f"kind=vlm,checkpoint={vlm_checkpoint},data.world_dir={demo_world},data.num_frames=4,"
         "eval.batch_size=8,eval.max_examples=10,eval.max_decode_len=6,"
         "eval.caption_metrics=('BLEU-4','CIDEr')")
  one = evaluate.evaluate(evaluate_demo.get_config(arg), str(tmp_path / "one"),
                          log=lambda s: None)
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  rc = local_launch.run_local(
      [sys.executable, "-m", "viit_jax.evaluate",
       f"--config={REPO}/configs/evaluate_demo.py:{arg}", f"--workdir={tmp_path / 'two'}"],
      num_processes=2, devices_per_process=4, env=env, cwd=str(REPO),
      out=open(tmp_path / "launch.log", "w"))
  assert rc == 0, (tmp_path / "launch.log").read_text()[-3000:]
  two = json.loads((tmp_path / "two" / "metrics.json").read_text())
  assert two["tasks"].keys() == one["tasks"].keys() == set(evaluate.TASKS["vlm"])
  for name in one["tasks"]:
    assert two["tasks"][name]["metrics"] == pytest.approx(one["tasks"][name]["metrics"]), name
    assert (_jsonl(tmp_path / "two" / "predictions" / f"{name}.jsonl")
            == _jsonl(tmp_path / "one" / "predictions" / f"{name}.jsonl"))
  assert one["tasks"]["msrvtt_caption"]["metrics"]["count"] == 10


def test_evaluate_dual_encoder_cli(de_checkpoint, demo_world, tmp_path):
  """The entry point as users run it: 2 processes x 4 devices (each embeds half the video
  batches, one all-gather), "average" = the expected tie policy; the metrics equal a 1-process
  run's."""
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  arg = (f"kind=dual_encoder,checkpoint={de_checkpoint},data.world_dir={demo_world},"
         "eval.batch_size=8,eval.tie_policy=average")
  rc = local_launch.run_local(
      [sys.executable, "-m", "viit_jax.evaluate", f"--config={REPO}/configs/evaluate_demo.py:{arg}",
       f"--workdir={tmp_path}"], num_processes=2, devices_per_process=4, env=env, cwd=str(REPO),
      out=open(tmp_path / "launch.log", "w"))
  assert rc == 0, (tmp_path / "launch.log").read_text()[-3000:]
  report = json.loads((tmp_path / "metrics.json").read_text())
  one = evaluate.evaluate(evaluate_demo.get_config(arg), str(tmp_path / "one"), log=lambda s: None)
  assert report["tasks"].keys() == one["tasks"].keys() == set(evaluate.TASKS["dual_encoder"])
  for name in one["tasks"]:
    assert report["tasks"][name]["metrics"] == pytest.approx(one["tasks"][name]["metrics"]), name
    assert (_jsonl(tmp_path / "predictions" / f"{name}.jsonl")
            == _jsonl(tmp_path / "one" / "predictions" / f"{name}.jsonl"))
  assert report["kind"] == "dual_encoder" and report["checkpoint"]["step"] == 7
  r = report["tasks"]["msrvtt_retrieval"]["metrics"]
  for d in ("t2v", "v2t"):
    for k in ("R@1", "R@5", "R@10", "MedR", "MeanR"):
      assert f"{d}/{k}" in r
    assert r[f"{d}/R@1"] <= r[f"{d}/R@5"] <= r[f"{d}/R@10"] <= 100
    assert 1 <= r[f"{d}/MedR"] <= 24 and 1 <= r[f"{d}/MeanR"] <= 24
  assert r["num_texts"] == r["num_videos"] == 24  # The test world's 1k-A-style set.
  full = report["tasks"]["msrvtt_full_retrieval"]["metrics"]
  # Every sentence of the 24 test clips (6-8 each in the test world) is a query.
  assert full["num_videos"] == 24 and 6 * 24 <= full["num_texts"] <= 8 * 24
  z = report["tasks"]["kinetics_zero_shot"]["metrics"]
  assert z["count"] == 22 and z["num_classes"] == 11 and 0 <= z["top1"] <= z["top5"] <= 100
  zs = _jsonl(tmp_path / "predictions" / "kinetics_zero_shot.jsonl")
  # Without ties (float similarities), top-1 is the share of argmax predictions that are right.
  assert z["top1"] == pytest.approx(100 * np.mean([p["label"] == p["prediction"] for p in zs]))
  md = (tmp_path / "metrics.md").read_text()
  assert "| t2v |" in md and "| v2t |" in md and "## kinetics_zero_shot" in md
  assert "## vatex_retrieval (`demo_vatex_retrieval`" in md
  assert "ties: expected" in md and "| t2v optimistic |" in md and "| v2t pessimistic |" in md


# ------------------------------------------------------------------------------------------------
# Retrieval and zero-shot ranked by hand.


def _hits(greater: int, equal: int, correct: int, k: int) -> dict[str, float]:
  """P(rank <= k) of a query whose best correct item has `greater` items above it and `equal`
  items (`correct` of them correct) tied with it: expected over random tie-breaking, and its
  optimistic / pessimistic bounds."""
  m = min(max(k - greater, 0), equal)  # Tie-group positions within the top k.
  wrong = equal - correct
  return {"": 1 - math.comb(wrong, m) / math.comb(equal, m),
          "/optimistic": float(greater < k), "/pessimistic": float(greater + wrong < k)}


def _rank(greater: int, equal: int, correct: int) -> dict[str, float]:
  return {"": greater + (equal + 1) / (correct + 1), "/optimistic": greater + 1.0,
          "/pessimistic": greater + equal - correct + 1.0}


def _hand_ranked(sim: np.ndarray, text_video: list[int]) -> dict[str, float]:
  """t2v/ and v2t/ R@1/5/10, MedR, MeanR (and bounds) of float[T, V] sim, query by query."""
  out = {}
  for direction in ("t2v", "v2t"):
    per_query = []
    if direction == "t2v":
      for t, v in enumerate(text_video):
        row = sim[t]
        per_query.append(((row > row[v]).sum(), (row == row[v]).sum(), 1))
    else:
      for v in range(sim.shape[1]):
        col, mine = sim[:, v], [t for t, g in enumerate(text_video) if g == v]
        best = max(col[t] for t in mine)
        per_query.append(((col > best).sum(), (col == best).sum(),
                          sum(col[t] == best for t in mine)))
    for suffix in ("", "/optimistic", "/pessimistic"):
      for k in (1, 5, 10):
        out[f"{direction}/R@{k}{suffix}"] = 100 * np.mean(
            [_hits(*q, k)[suffix] for q in per_query])
      ranks = [_rank(*q)[suffix] for q in per_query]
      out[f"{direction}/MedR{suffix}"] = float(np.median(ranks))
      out[f"{direction}/MeanR{suffix}"] = float(np.mean(ranks))
  return out


def _examples(task: str, split: str) -> list[dict]:
  ds = seqio.get_mixture_or_task(task).get_dataset(
      sequence_length=None, split=split, shuffle=False, num_epochs=1, trim_output_features=False)
  return list(pp.numpy_iterator(ds))


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def test_retrieval_and_zero_shot_tasks_rank_ties_by_hand(demo_world):
  """seqio.Evaluator on the registered retrieval and zero-shot tasks with score_fns whose
  embeddings tie on purpose (3 distinct video and text embeddings): the tasks' metric_fns give
  the hand-ranked numbers under every tie policy."""
  tasks_lib.register_demo_tasks(demo_world, num_frames=2, res=16, tie_policy="expected")

  def code(text: str, n: int = 3) -> int:
    return sum(text.encode()) % n

  def one_hot(i: int, n: int = 3) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[i]

  for task in ("demo_msrvtt_retrieval", "demo_msrvtt_full_retrieval", "demo_vatex_retrieval"):
    examples = _examples(task, "test")

    def score_fn(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for i, ex in pp.numpy_iterator(ds):
        texts = [_text(t) for t in ex["captions"]]
        rows = [one_hot(code(_text(ex["video_id"])))] + [one_hot(code(t)) for t in texts]
        rows += [np.full(3, np.nan, np.float32)] * (11 - len(rows))
        out.append((int(i), np.stack(rows)))
      return out

    future, _ = tasks_lib.evaluator(task, "test").evaluate(compute_metrics=True,
                                                          score_fn=score_fn)
    got = future.result()[task]
    videos = list(dict.fromkeys(_text(ex["video_id"]) for ex in examples))
    texts = [(_text(t), videos.index(_text(ex["video_id"])))
             for ex in examples for t in ex["captions"]]
    sim = np.stack([one_hot(code(t)) for t, _ in texts]) @ np.stack(
        [one_hot(code(v)) for v in videos]).T
    expected = _hand_ranked(sim, [v for _, v in texts])
    assert got["num_texts"] == len(texts) and got["num_videos"] == len(videos)
    assert {k: got[k] for k in expected} == pytest.approx(expected), task
    assert got["t2v/R@1/optimistic"] > got["t2v/R@1"] > got["t2v/R@1/pessimistic"]

  examples = _examples("demo_kinetics", "test")
  classes = tasks_lib.task_info("demo_kinetics").labels["test"]

  def class_scores(ds, model_feature_shapes=None):
    del model_feature_shapes
    return [(int(i), np.float32([code(_text(ex["clip_id"]) + c) for c in classes]))
            for i, ex in pp.numpy_iterator(ds)]

  future, _ = tasks_lib.evaluator("demo_kinetics", "test").evaluate(compute_metrics=True,
                                                                    score_fn=class_scores)
  got = future.result()["demo_kinetics"]
  for k in (1, 5):
    for suffix in ("", "/optimistic", "/pessimistic"):
      hits = []
      for ex in examples:
        s = np.float32([code(_text(ex["clip_id"]) + c) for c in classes])
        true = s[int(ex["label_id"])]
        hits.append(_hits((s > true).sum(), (s == true).sum(), 1, k)[suffix])
      assert got[f"top{k}{suffix}"] == pytest.approx(100 * np.mean(hits)), (k, suffix)
  assert got["count"] == len(examples) and got["num_classes"] == len(classes)


def test_dual_encoder_metrics_equal_hand_ranking_of_own_embeddings(de_checkpoint, demo_world,
                                                                   tmp_path):
  """viit_jax.evaluate's retrieval and zero-shot numbers equal ranks computed by hand from
  embeddings made here by the model itself (its parameters re-initialised from the seed the
  checkpoint was saved from, one un-sharded call per tower). Both compute in float32: in bfloat16
  the batch shapes' rounding reorders the near-tied similarities of an untrained model."""
  config = evaluate_demo.get_config(
      f"kind=dual_encoder,checkpoint={de_checkpoint},data.world_dir={demo_world},"
      "eval.batch_size=8,model.dtype=float32")
  report = evaluate.evaluate(config, str(tmp_path), log=lambda s: None)
  de_config = dual_encoder_demo.get_config(
      f"model.variant=test-de,model.scan=false,model.dtype=float32,data.res=16,"
      f"data.num_frames=2,data.text_len=8,data.world_dir={demo_world},init_from=''")
  model_cfg = _model_config(de_config, de_lib.DualEncoderConfig)
  model = de_lib.DualEncoder(model_cfg)
  params = nn.unbox(variants.init_fn(model_cfg)(jax.random.PRNGKey(7))["params"])
  vocab = tasks_lib.vocabulary(str(demo_world / "spm" / "demo.model"))

  def videos(frames: np.ndarray) -> np.ndarray:
    return np.asarray(model.apply({"params": params}, frames,
                                  method=de_lib.DualEncoder.embed_video))

  def texts(strings: list[str]) -> np.ndarray:
    tokens = pp.text_tokens(vocab, strings, 8)
    return np.asarray(model.apply({"params": params}, tokens, method=de_lib.DualEncoder.embed_text))

  for name, task in (("msrvtt_retrieval", "demo_msrvtt_retrieval"),
                     ("msrvtt_full_retrieval", "demo_msrvtt_full_retrieval"),
                     ("vatex_retrieval", "demo_vatex_retrieval")):
    examples = _examples(task, "test")
    pairs = [(_text(t), i) for i, ex in enumerate(examples) for t in ex["captions"]]
    sim = texts([t for t, _ in pairs]) @ videos(np.stack([ex["frames"] for ex in examples])).T
    got = report["tasks"][name]["metrics"]
    expected = _hand_ranked(sim, [i for _, i in pairs])
    assert {k: got[k] for k in expected} == pytest.approx(expected, abs=1e-4), name

  examples = _examples("demo_kinetics", "test")
  classes = tasks_lib.task_info("demo_kinetics").labels["test"]
  class_emb = classification.class_embeddings(texts, list(classes),
                                              config.eval.zero_shot_templates)
  scores = videos(np.stack([ex["frames"] for ex in examples])) @ class_emb.T
  got = report["tasks"]["kinetics_zero_shot"]["metrics"]
  for k in (1, 5):
    hits = [float((s > s[int(ex["label_id"])]).sum() < k) for ex, s in zip(examples, scores)]
    assert got[f"top{k}"] == pytest.approx(100 * np.mean(hits), abs=1e-4)

"""viit_jax.evaluate on tiny checkpoints: a VLM (captioning, NExT-OE WUPS, QA exact match) and a dual
encoder (1k-A retrieval, zero-shot classification); metrics.json / metrics.md / predictions.

Checkpoints are real orbax trainer checkpoints (the loop's layout: state + data + meta with the
training config) of freshly initialised `test` / `test-de` models, so the numbers are near chance;
the tests check the report's structure and that its numbers are the metric functions' on the
written predictions.
"""
import json
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
from launch import local as local_launch
from viit_jax import checkpoints
from viit_jax import config_lib
from viit_jax import evaluate
from viit_jax import runtime
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
  assert on_disk["tasks"].keys() == {"msrvtt_caption", "nextqa_oe", "msrvtt_qa"}
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

  md = (tmp_path / "metrics.md").read_text()
  for heading in ("## msrvtt_caption", "## nextqa_oe", "## msrvtt_qa"):
    assert heading in md
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
  assert two["tasks"].keys() == one["tasks"].keys() == {"msrvtt_caption", "nextqa_oe", "msrvtt_qa"}
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
  for name in one["tasks"]:
    assert report["tasks"][name]["metrics"] == pytest.approx(one["tasks"][name]["metrics"]), name
  assert report["kind"] == "dual_encoder" and report["checkpoint"]["step"] == 7
  r = report["tasks"]["msrvtt_retrieval"]["metrics"]
  for d in ("t2v", "v2t"):
    for k in ("R@1", "R@5", "R@10", "MedR", "MeanR"):
      assert f"{d}/{k}" in r
    assert r[f"{d}/R@1"] <= r[f"{d}/R@5"] <= r[f"{d}/R@10"] <= 100
    assert 1 <= r[f"{d}/MedR"] <= 24 and 1 <= r[f"{d}/MeanR"] <= 24
  assert r["num_texts"] == r["num_videos"] == 24  # The test world's 1k-A-style set.
  z = report["tasks"]["kinetics_zero_shot"]["metrics"]
  assert z["count"] == 22 and z["num_classes"] == 11 and 0 <= z["top1"] <= z["top5"] <= 100
  zs = _jsonl(tmp_path / "predictions" / "kinetics_zero_shot.jsonl")
  # Without ties (float similarities), top-1 is the share of argmax predictions that are right.
  assert z["top1"] == pytest.approx(100 * np.mean([p["label"] == p["prediction"] for p in zs]))
  md = (tmp_path / "metrics.md").read_text()
  assert "| t2v |" in md and "| v2t |" in md and "## kinetics_zero_shot" in md
  assert "ties: expected" in md and "| t2v optimistic |" in md and "| v2t pessimistic |" in md

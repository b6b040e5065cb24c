"""The evaluation tasks' seqio `postprocess_fn` and `metric_fns` (data.tasks registers them).

seqio's Evaluator decodes each prediction with the task's vocabulary and calls
`postprocess_fn(text, example=ex, is_target=False)`; for the targets it calls it with the
decoded target and `is_target=True`. A metric function gets the lists of postprocessed targets
and predictions, in dataset order, and returns {name: value}:

  caption tasks  target {"id": video_id, "references": [str]}, prediction: the stripped text;
                 `caption_metrics`: pycocoevalcap's scorers after the PTB tokenizer, x100, over
                 every reference (viit_jax.metrics.captioning).
  NExT-OE        target {"answers": [str], "type": str}, prediction: text without trailing
                 punctuation; `wups_metrics`: the official NExT-OE WUPS@0 / @0.9, overall, per
                 type and per group (viit_jax.metrics.wups); `qa_accuracy_metrics`: exact match
                 after normalisation (viit_jax.metrics.qa).

Score tasks (the model's "scores" are embeddings or similarities, not log-likelihoods):

  retrieval      target {"video_id", "num_texts"}; the score of an example is float[1 + K, D]:
                 its video's embedding, then the embeddings of its K texts (rows of NaN pad
                 examples with fewer texts). `retrieval_metrics` de-duplicates videos by
                 video_id (several examples may show one video) and ranks every text against
                 every video, blockwise on this process's devices (`sharded_retrieval_metrics`:
                 no texts x videos matrix in memory): R@1/5/10, MedR, MeanR in both directions
                 (ties per `tie_policy`, with the optimistic / pessimistic bounds beside them).
  zero-shot      target: the class index (label_id); score: float[C], the video's similarity to
                 each class embedding; `zero_shot_metrics`: top-1 / top-5 (same tie policies).

Any harness can evaluate with them: `seqio.Evaluator(task, data.tasks.EvalFeatureConverter(),
target_field_name="suffix")` and a predict_fn returning (index, token ids) pairs
(viit_jax.evaluate does this), or a score_fn returning (index, score) pairs.
"""
from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from viit_jax.metrics import captioning
from viit_jax.metrics import classification
from viit_jax.metrics import qa
from viit_jax.metrics import retrieval
from viit_jax.metrics import wups


def _text(x: Any) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _texts(xs: Any) -> list[str]:
  return [t for t in (_text(x) for x in np.asarray(xs).reshape(-1)) if t]


def strip_trailing_punctuation(text: str) -> str:
  """'move left.' -> 'move left' (WUPS tokens would otherwise carry the punctuation)."""
  return text.strip().rstrip(string.punctuation + " ").strip()


def caption_postprocess(output: str, example: Mapping[str, Any] | None = None,
                        is_target: bool = False) -> Any:
  """Target: {"id": the example's key (a video or an ActivityNet segment) else its video_id,
  "references": the example's references (MSR-VTT's 20), or the target text itself (one caption
  per clip, S-MiT)}; prediction: the text, stripped."""
  if is_target:
    if example is None:
      raise ValueError("caption targets need the example (its key or video_id)")
    refs = _texts(example["references"]) if "references" in example else [_text(output)]
    return {"id": _text(example["key"] if "key" in example else example["video_id"]),
            "references": refs}
  return _text(output).strip()


def caption_metrics(targets: Sequence[Mapping[str, Any]], predictions: Sequence[str], *,
                    metrics: Sequence[str] = captioning.METRICS) -> dict[str, float]:
  """Corpus caption scores (x100) of one prediction per clip against all its references."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  refs = {t["id"]: list(t["references"]) for t in targets}
  if len(refs) != len(targets):
    raise ValueError("caption targets repeat a video id: one prediction per clip is scored")
  preds = {t["id"]: p for t, p in zip(targets, predictions)}
  return captioning.caption_metrics(refs, preds, metrics=tuple(metrics))


def qa_postprocess(output: str, example: Mapping[str, Any] | None = None,
                   is_target: bool = False) -> Any:
  """Target: {"answers", "type"} from the example; prediction: the text without trailing
  punctuation."""
  if is_target:
    if example is None:
      raise ValueError("QA targets need the example (its answers and type)")
    return {"answers": _texts(example["answers"]), "type": _text(example.get("type", b""))}
  return strip_trailing_punctuation(_text(output))


def wups_metrics(targets: Sequence[Mapping[str, Any]], predictions: Sequence[str]
                 ) -> dict[str, float]:
  """NExT-OE WUPS@0 and WUPS@0.9 (x100), overall, per question type and per group."""
  return wups.nextoe_wups(list(predictions), [t["answers"] for t in targets],
                          [t["type"] for t in targets])


def qa_accuracy_metrics(targets: Sequence[Mapping[str, Any]], predictions: Sequence[str]
                        ) -> dict[str, float]:
  """Exact-match accuracy (x100) after viit_jax.metrics.qa's normalisation, per type too."""
  types = [t["type"] for t in targets]
  return qa.qa_accuracy(list(predictions), [t["answers"] for t in targets],
                        types if any(types) else None)


def retrieval_postprocess(output: Any, example: Mapping[str, Any] | None = None,
                          is_target: bool = False) -> Any:
  """Target: {"video_id", "num_texts"} of the example (its texts are ex["captions"])."""
  if not is_target:
    return output
  if example is None:
    raise ValueError("retrieval targets need the example (its video_id and captions)")
  return {"video_id": _text(example["video_id"]), "num_texts": len(_texts(example["captions"]))}


def retrieval_metrics(targets: Sequence[Mapping[str, Any]], scores: Any, *,
                      tie_policy: retrieval.TiePolicy = retrieval.DEFAULT_TIE_POLICY
                      ) -> dict[str, float]:
  """Text<->video retrieval from per-example embeddings.

  Args:
    targets: per example {"video_id", "num_texts"} (retrieval_postprocess).
    scores: float[N, 1 + K, D]: row 0 the example's video embedding, rows 1..num_texts its
      texts' embeddings (further rows are padding).
    tie_policy: "expected" (default), "optimistic" or "pessimistic".
  Returns t2v/... and v2t/... R@1/5/10, MedR, MeanR (x100 for R@K) with "/optimistic" and
  "/pessimistic" bounds, "num_texts" and "num_videos".
  """
  scores = np.asarray(scores, np.float32)
  if scores.ndim != 3 or scores.shape[0] != len(targets):
    raise ValueError(f"retrieval scores must be [{len(targets)}, 1 + K, D], got {scores.shape}")
  video_index: dict[str, int] = {}
  videos, texts, text_to_video = [], [], []
  for t, s in zip(targets, scores):
    vid = t["video_id"]
    if vid not in video_index:
      video_index[vid] = len(videos)
      videos.append(s[0])
    n = int(t["num_texts"])
    if not 0 < n < s.shape[0]:
      raise ValueError(f"{vid}: {n} texts but room for {s.shape[0] - 1} in its score")
    texts.extend(s[1:1 + n])
    text_to_video += [video_index[vid]] * n
  local = jax.sharding.Mesh(np.asarray(jax.local_devices()), ("retrieval",))
  metrics = retrieval.sharded_retrieval_metrics(
      np.stack(texts), np.stack(videos), np.asarray(text_to_video), mesh=local,
      tie_policy=tie_policy, with_bounds=True)
  return {**metrics, "num_texts": float(len(texts)), "num_videos": float(len(videos))}


def zero_shot_postprocess(output: Any, example: Mapping[str, Any] | None = None,
                          is_target: bool = False) -> Any:
  """Target: the example's class index (label_id)."""
  if not is_target:
    return output
  if example is None:
    raise ValueError("zero-shot targets need the example (its label_id)")
  return int(example["label_id"])


def zero_shot_metrics(targets: Sequence[int], scores: Any, *,
                      tie_policy: retrieval.TiePolicy = retrieval.DEFAULT_TIE_POLICY
                      ) -> dict[str, float]:
  """top1 / top5 (x100, with their bounds) from float[N, C] class similarities; "count" and
  "num_classes" beside them."""
  scores = np.asarray(scores, np.float32)
  result = classification.accuracy_from_scores(scores, np.asarray(targets, np.int64), (1, 5),
                                               tie_policy, with_bounds=True)
  return {**result, "count": float(len(targets)), "num_classes": float(scores.shape[1])}

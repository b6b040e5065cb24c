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

Any harness can evaluate with them: `seqio.Evaluator(task, data.tasks.EvalFeatureConverter(),
target_field_name="suffix")` and a predict_fn returning (index, token ids) pairs
(viit_jax.evaluate does this).
"""
from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from viit_jax.metrics import captioning
from viit_jax.metrics import qa
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
  """Target: {"id": video_id, "references": the example's references (MSR-VTT's 20), or the
  target text itself (one caption per clip, S-MiT)}; prediction: the text, stripped."""
  if is_target:
    if example is None:
      raise ValueError("caption targets need the example (its video_id)")
    refs = _texts(example["references"]) if "references" in example else [_text(output)]
    return {"id": _text(example["video_id"]), "references": refs}
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

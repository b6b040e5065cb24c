"""Zero-shot video classification (Kinetics-600 top-1 / top-5) with a dual encoder and prompt templates.

CLIP's recipe: each class name is written into every template, the texts are embedded and L2-normalised,
averaged per class and re-normalised; a video is assigned the classes whose embeddings have the highest
cosine similarity with its (normalised) embedding. Top-k accuracy follows `retrieval`'s tie policy
("expected", the default: expectation over random tie-breaking, "average" being its old alias;
"optimistic": the true class ranks first among classes scoring the same; "pessimistic": last).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from viit_jax.metrics import retrieval

# Prompt templates in the style of CLIP's Kinetics-700 list (its 'a video of ...', 'an example of ...' and
# 'a demonstration of ...' prompts); the paper does not list its templates.
DEFAULT_TEMPLATES = (
    "a video of {}.",
    "a video of a person {}.",
    "a video of a person using {}.",
    "a video of a person doing {}.",
    "a video of a person during {}.",
    "a video of a person performing {}.",
    "a video of a person practicing {}.",
    "a video of the {}.",
    "a clip of {}.",
    "a demonstration of {}.",
    "an example of {}.",
    "a person {}.",
)

# Texts -> float[len(texts), D] embeddings (the dual encoder's text tower).
TextEncoder = Callable[[list[str]], np.ndarray]


def _l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def class_embeddings(encode_text: TextEncoder, class_names: Sequence[str],
                     templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
  """float32[C, D]: per class, the normalised mean of its normalised template embeddings.

  All C x len(templates) prompts go to `encode_text` in one call (it may batch internally).
  """
  if not class_names or not templates:
    raise ValueError("Need at least one class name and one template.")
  bad = [t for t in templates if t.count("{}") != 1]
  if bad:
    raise ValueError(f"Templates need exactly one '{{}}' for the class name: {bad}.")
  prompts = [template.format(name) for name in class_names for template in templates]
  emb = np.asarray(encode_text(prompts), np.float32)
  if emb.ndim != 2 or emb.shape[0] != len(prompts):
    raise ValueError(f"encode_text returned shape {emb.shape} for {len(prompts)} prompts.")
  per_prompt = _l2_normalize(emb).reshape(len(class_names), len(templates), -1)
  return _l2_normalize(per_prompt.mean(axis=1))


def zero_shot_accuracy(video_emb: np.ndarray, class_emb: np.ndarray, labels: np.ndarray,
                       ks: Sequence[int] = (1, 5),
                       tie_policy: retrieval.TiePolicy = retrieval.DEFAULT_TIE_POLICY,
                       with_bounds: bool = False) -> dict[str, float]:
  """{"top<k>": accuracy x100} of cosine-similarity classification.

  Args:
    video_emb: float[N, D] video embeddings (normalised here).
    class_emb: float[C, D] class embeddings from `class_embeddings`.
    labels: int[N] true class index of each video.
    tie_policy: see `retrieval` ("expected", "optimistic", "pessimistic"; "average" = "expected").
    with_bounds: also "top<k>/optimistic" and "top<k>/pessimistic" (the true class first / last among
      the classes tied with it), from the same scores.
  """
  retrieval.canonical_tie_policy(tie_policy)
  video_emb, class_emb = np.asarray(video_emb, np.float32), np.asarray(class_emb, np.float32)
  labels = np.asarray(labels)
  if video_emb.ndim != 2 or class_emb.ndim != 2 or video_emb.shape[1] != class_emb.shape[1]:
    raise ValueError(f"Embedding shapes do not match: videos {video_emb.shape}, classes {class_emb.shape}.")
  if labels.shape != (video_emb.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be int[{video_emb.shape[0]}], got {labels.dtype}{list(labels.shape)}.")
  if labels.size == 0:
    raise ValueError("No videos to classify.")
  if labels.min() < 0 or labels.max() >= class_emb.shape[0]:
    raise ValueError(f"labels must lie in [0, {class_emb.shape[0]}).")
  return accuracy_from_scores(_l2_normalize(video_emb) @ _l2_normalize(class_emb).T, labels, ks,
                              tie_policy, with_bounds)


def accuracy_from_scores(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5),
                         tie_policy: retrieval.TiePolicy = retrieval.DEFAULT_TIE_POLICY,
                         with_bounds: bool = False) -> dict[str, float]:
  """{"top<k>": accuracy x100} from float[N, C] class scores and int[N] labels; ties and bounds
  as `zero_shot_accuracy`."""
  retrieval.canonical_tie_policy(tie_policy)
  scores, labels = np.asarray(scores), np.asarray(labels)
  if scores.ndim != 2 or labels.shape != (scores.shape[0],):
    raise ValueError(f"scores must be [N, C] with int[N] labels, got {scores.shape} and "
                     f"{labels.shape}.")
  if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
    raise ValueError(f"labels must lie in [0, {scores.shape[1]}).")
  true = scores[np.arange(labels.size), labels]
  counts = retrieval.RankCounts(greater=(scores > true[:, None]).sum(1),
                                equal=(scores == true[:, None]).sum(1),
                                correct_tied=np.ones(labels.size, np.int64))
  result = {}
  for k in ks:
    result[f"top{k}"] = 100.0 * float(retrieval.hits_at_k(counts, k, tie_policy).mean())
    if with_bounds:
      for policy in retrieval.BOUND_POLICIES:
        result[f"top{k}/{policy}"] = 100.0 * float(retrieval.hits_at_k(counts, k, policy).mean())
  return result

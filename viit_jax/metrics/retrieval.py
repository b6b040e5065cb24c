"""Text-video retrieval metrics: R@K, MedR, MeanR in both directions, with an explicit tie policy.

Conventions (docs/paper.md): a similarity matrix of texts x videos; text i describes video `text_to_video[i]`;
a video may have several texts (MSR-VTT 1k-A has one per video, `text_to_video = arange(N)`).

- text -> video: every text is a query with one correct video.
- video -> text: every video is a query; its correct texts are all its captions, and its rank is the rank of
  the best-ranked correct text (the usual multi-caption convention).
- Ranks are 1-based. R@K = 100 x fraction of queries with rank <= K (a 0-based rank < K).
  MedR = median rank, MeanR = mean rank, over queries.

Everything derives from three counts per query, taken against the best-scored correct item (score m):
`greater` = items scoring > m, `equal` = items scoring == m (the correct one included), and
`correct_tied` = correct items among those scoring == m.

Tie policy (the common CLIP4Clip code breaks ties by sort order, silently). A model that collapses onto
few embeddings produces large tie groups, so the policy can move the numbers by a lot:
- "expected" (default; "average" is an alias kept for old configs): the expectation over a uniformly random
  order within each tie group. The rank is the expected position of the first correct item,
  `greater + (equal + 1) / (correct_tied + 1)` (for one correct item, the mean of the tied positions), and
  R@K counts the probability that it lands within the top K,
  `1 - prod_{i < K - greater} (equal - correct_tied - i) / (equal - i)` (for one correct item,
  `clip(K - greater, 0, equal) / equal`). MedR is the median of the expected ranks. This is what an
  arbitrary (sort-order) tie-break gives on average, and it neither rewards nor punishes ties: a collapsed
  model (every score equal) gets chance level (R@1 = 100 / n_items for one correct item per query).
- "optimistic": the best rank of the tie group, `greater + 1` (the correct items first); an upper bound on
  R@K that a collapsed model maxes out (R@1 = 100).
- "pessimistic": the worst rank of the tie group among the orders that put the correct items last,
  `greater + equal - correct_tied + 1`; R@K counts a hit only when that rank <= K. A lower bound on R@K.
Every policy's R@K (MedR, MeanR) lies between the pessimistic and the optimistic one.
`rank_summary_with_bounds` (and `with_bounds=True` of the metric functions) reports the chosen policy under
the usual keys plus both bounds under "<key>/optimistic" and "<key>/pessimistic", all from the same counts.

Two implementations give identical counts (so identical metrics): `retrieval_metrics` (numpy, from a
materialised similarity matrix; the reference) and `sharded_retrieval_metrics` (jax, from embeddings): the
videos are sharded over every device of a mesh, the texts too, and each step all-gathers one block of texts
and scores it against the local videos, so no device ever holds more than
`block_size * n_devices` texts x `n_videos / n_devices` videos of similarities (`block_size * n_videos`
floats). Two passes over the text blocks: the first finds every text's correct score and its t->v counts,
the second counts, per video, the texts that score above / equal to the video's best correct text.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

TiePolicy = Literal["expected", "optimistic", "pessimistic", "average"]
TIE_POLICIES = ("expected", "optimistic", "pessimistic")  # Canonical names.
TIE_POLICY_ALIASES = {"average": "expected"}  # Old name of "expected", still accepted.
DEFAULT_TIE_POLICY = "expected"
BOUND_POLICIES = ("optimistic", "pessimistic")  # Suffixes of the bound keys of `rank_summary_with_bounds`.
DEFAULT_KS = (1, 5, 10)


@dataclasses.dataclass(frozen=True)
class RankCounts:
  """Per-query counts against the best-scored correct item (score m).

  Attributes:
    greater: int64[Q] items scoring strictly above m.
    equal: int64[Q] items scoring exactly m, correct ones included (>= 1).
    correct_tied: int64[Q] correct items scoring exactly m (>= 1).
  """
  greater: np.ndarray
  equal: np.ndarray
  correct_tied: np.ndarray

  def __post_init__(self):
    for name in ("greater", "equal", "correct_tied"):
      object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
    if not self.greater.shape == self.equal.shape == self.correct_tied.shape:
      raise ValueError("RankCounts fields must have one shape.")


def canonical_tie_policy(tie_policy: str) -> str:
  """The canonical name of a tie policy ("average" -> "expected"); raises ValueError on unknown ones.

  Reports should print this name next to the numbers.
  """
  name = TIE_POLICY_ALIASES.get(tie_policy, tie_policy)
  if name not in TIE_POLICIES:
    raise ValueError(f"Unknown tie policy {tie_policy!r}; expected one of {TIE_POLICIES} "
                     f"(or an alias in {sorted(TIE_POLICY_ALIASES)}).")
  return name


def ranks(counts: RankCounts, tie_policy: TiePolicy = DEFAULT_TIE_POLICY) -> np.ndarray:
  """float64[Q] 1-based ranks (expected ranks under "expected")."""
  tie_policy = canonical_tie_policy(tie_policy)
  if tie_policy == "optimistic":
    return counts.greater + 1.0
  if tie_policy == "pessimistic":
    return counts.greater + counts.equal - counts.correct_tied + 1.0
  return counts.greater + (counts.equal + 1.0) / (counts.correct_tied + 1.0)


def hits_at_k(counts: RankCounts, k: int, tie_policy: TiePolicy = DEFAULT_TIE_POLICY) -> np.ndarray:
  """float64[Q] in [0, 1]: whether (probability that) the query ranks within the top k."""
  tie_policy = canonical_tie_policy(tie_policy)
  if tie_policy == "optimistic":
    return (counts.greater < k).astype(np.float64)
  if tie_policy == "pessimistic":
    return (counts.greater + counts.equal - counts.correct_tied < k).astype(np.float64)
  slots = np.clip(k - counts.greater, 0, counts.equal)  # Tie-group positions that fall within the top k.
  wrong = counts.equal - counts.correct_tied
  miss = np.ones(counts.greater.shape, np.float64)  # P(the first `slots` positions all hold wrong items).
  for i in range(int(slots.max(initial=0))):
    factor = np.clip(wrong - i, 0, None) / np.maximum(counts.equal - i, 1)
    miss = np.where(i < slots, miss * factor, miss)
  return 1.0 - miss


def _check_counts(counts: RankCounts) -> None:
  if counts.greater.size == 0:
    raise ValueError("No queries.")
  if (counts.correct_tied < 1).any() or (counts.equal < counts.correct_tied).any():
    raise ValueError("Every query needs a correct item (correct_tied >= 1, equal >= correct_tied).")


def rank_summary(counts: RankCounts, tie_policy: TiePolicy = DEFAULT_TIE_POLICY,
                 ks: Sequence[int] = DEFAULT_KS, prefix: str = "") -> dict[str, float]:
  """{prefix R@K (x100) for K in ks, prefix MedR, prefix MeanR}."""
  _check_counts(counts)
  result = {f"{prefix}R@{k}": 100.0 * float(hits_at_k(counts, k, tie_policy).mean()) for k in ks}
  r = ranks(counts, tie_policy)
  result[f"{prefix}MedR"] = float(np.median(r))
  result[f"{prefix}MeanR"] = float(r.mean())
  return result


def rank_summary_with_bounds(counts: RankCounts, tie_policy: TiePolicy = DEFAULT_TIE_POLICY,
                             ks: Sequence[int] = DEFAULT_KS, prefix: str = "") -> dict[str, float]:
  """`rank_summary` under `tie_policy`, plus both bounds beside each key, from the same counts.

  Returns:
    {prefix R@K, prefix MedR, prefix MeanR} of `tie_policy` (the usual keys), then per key
    "<key>/optimistic" and "<key>/pessimistic" (e.g. "t2v/R@1/optimistic"): the same metric with the
    correct items first / last in their tie groups (R@K: an upper / lower bound on every policy's).
  """
  chosen = rank_summary(counts, tie_policy, ks, prefix)
  bounds = {policy: rank_summary(counts, policy, ks, prefix) for policy in BOUND_POLICIES}
  result = {}
  for key, value in chosen.items():
    result[key] = value
    for policy in BOUND_POLICIES:
      result[f"{key}/{policy}"] = bounds[policy][key]
  return result


def _summaries(t2v: RankCounts, v2t: RankCounts, tie_policy: str, ks: Sequence[int],
               with_bounds: bool) -> dict[str, float]:
  summary = rank_summary_with_bounds if with_bounds else rank_summary
  return {**summary(t2v, tie_policy, ks, "t2v/"), **summary(v2t, tie_policy, ks, "v2t/")}


def _check_mapping(text_to_video: np.ndarray, n_texts: int, n_videos: int) -> np.ndarray:
  text_to_video = np.asarray(text_to_video)
  if text_to_video.shape != (n_texts,) or not np.issubdtype(text_to_video.dtype, np.integer):
    raise ValueError(f"text_to_video must be int[{n_texts}], got {text_to_video.dtype}"
                     f"{list(text_to_video.shape)}.")
  if n_texts and (text_to_video.min() < 0 or text_to_video.max() >= n_videos):
    raise ValueError(f"text_to_video values must lie in [0, {n_videos}).")
  captionless = np.setdiff1d(np.arange(n_videos), text_to_video)
  if captionless.size:
    raise ValueError(f"{captionless.size} videos have no text (e.g. {captionless[:5].tolist()}); "
                     "video->text retrieval needs at least one per video.")
  return text_to_video.astype(np.int64)


def retrieval_counts(sim: np.ndarray, text_to_video: np.ndarray) -> tuple[RankCounts, RankCounts]:
  """Reference counts from a materialised similarity matrix.

  Args:
    sim: float[T, V] similarity of text i and video j.
    text_to_video: int[T], the video each text describes; every video needs at least one text.

  Returns:
    (text->video counts over T queries, video->text counts over V queries).
  """
  sim = np.asarray(sim)
  if sim.ndim != 2:
    raise ValueError(f"sim must be [texts, videos], got shape {sim.shape}.")
  if np.isnan(sim).any():
    raise ValueError("sim contains NaN; ranks are undefined.")
  n_texts, n_videos = sim.shape
  gt = _check_mapping(text_to_video, n_texts, n_videos)
  correct = sim[np.arange(n_texts), gt]  # [T]
  t2v = RankCounts(greater=(sim > correct[:, None]).sum(1), equal=(sim == correct[:, None]).sum(1),
                   correct_tied=np.ones(n_texts, np.int64))
  best = np.full(n_videos, -np.inf, sim.dtype)  # Best correct score per video.
  np.maximum.at(best, gt, correct)
  v2t = RankCounts(greater=(sim > best[None, :]).sum(0), equal=(sim == best[None, :]).sum(0),
                   correct_tied=np.bincount(gt, weights=correct == best[gt], minlength=n_videos))
  return t2v, v2t


def retrieval_metrics(sim: np.ndarray, text_to_video: np.ndarray,
                      tie_policy: TiePolicy = DEFAULT_TIE_POLICY, ks: Sequence[int] = DEFAULT_KS,
                      with_bounds: bool = False) -> dict[str, float]:
  """Numpy reference: "t2v/R@K", "t2v/MedR", "t2v/MeanR" and the same for "v2t/", from float[T, V] sim.

  With `with_bounds`, also "<key>/optimistic" and "<key>/pessimistic" for each (`rank_summary_with_bounds`).
  """
  canonical_tie_policy(tie_policy)
  t2v, v2t = retrieval_counts(sim, text_to_video)
  return _summaries(t2v, v2t, tie_policy, ks, with_bounds)


# ---------------------------------------------------------------------------------------------------------
# Sharded jax implementation.


def _flat_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("retrieval",))


def _counts_kernel(text, video, gt, *, axes, n_devices, block, n_videos):
  """Per-device body of the sharded count computation (inside shard_map).

  Args:
    text: float[Tl, D] this device's texts (Tl = steps * block), padding rows anywhere gt < 0.
    video: float[Vl, D] this device's videos (global ids d * Vl ...), padding where id >= n_videos.
    gt: int32[Tl] video of each local text, -1 for padding.
  Returns:
    int32[Tl] t2v greater, int32[Tl] t2v equal, int32[Vl] v2t greater, v2t equal, v2t correct_tied.
  """
  n_local_texts, n_local_videos = text.shape[0], video.shape[0]
  steps = n_local_texts // block
  device = lax.axis_index(axes)
  video_ids = device * n_local_videos + jnp.arange(n_local_videos)  # [Vl] global ids
  video_valid = video_ids < n_videos
  precision = lax.Precision.HIGHEST if text.dtype == jnp.float32 else None

  def gathered(x, step):  # This step's block of every device, in device order: [n * block, ...].
    return lax.all_gather(lax.dynamic_slice_in_dim(x, step * block, block), axes, axis=0, tiled=True)

  def similarities(step):  # float32[n * block, Vl]
    return jnp.dot(gathered(text, step), video.T, precision=precision,
                   preferred_element_type=jnp.float32)

  # Pass 1: every text's correct score, and its text->video counts.
  def pass1(step, carry):
    correct_l, greater_l, equal_l = carry
    sim = similarities(step)
    gt_g = gathered(gt, step)
    local = gt_g - device * n_local_videos
    owns = (gt_g >= 0) & (local >= 0) & (local < n_local_videos)
    picked = jnp.take_along_axis(sim, jnp.clip(local, 0, n_local_videos - 1)[:, None], axis=1)[:, 0]
    correct = lax.pmax(jnp.where(owns, picked, -jnp.inf), axes)  # [n * block], from the owning device
    above = ((sim > correct[:, None]) & video_valid[None, :]).sum(1, dtype=jnp.int32)
    tied = ((sim == correct[:, None]) & video_valid[None, :]).sum(1, dtype=jnp.int32)
    above = lax.psum_scatter(above, axes, scatter_dimension=0, tiled=True)  # [block], this device's texts
    tied = lax.psum_scatter(tied, axes, scatter_dimension=0, tiled=True)
    mine = lax.dynamic_slice_in_dim(correct, device * block, block)
    return (lax.dynamic_update_slice_in_dim(correct_l, mine, step * block, 0),
            lax.dynamic_update_slice_in_dim(greater_l, above, step * block, 0),
            lax.dynamic_update_slice_in_dim(equal_l, tied, step * block, 0))

  def varying(x):  # Loop carries differ per device.
    return lax.pcast(x, axes, to="varying")

  zeros_t = varying(jnp.zeros((n_local_texts,), jnp.int32))
  correct_l, t2v_greater, t2v_equal = lax.fori_loop(
      0, steps, pass1, (varying(jnp.full((n_local_texts,), -jnp.inf, jnp.float32)), zeros_t, zeros_t))

  # Per video: the best correct score and how many of its texts reach it.
  n_videos_padded = n_local_videos * n_devices
  text_valid = gt >= 0
  segment = jnp.where(text_valid, gt, 0)
  best = lax.pmax(jax.ops.segment_max(jnp.where(text_valid, correct_l, -jnp.inf), segment,
                                      num_segments=n_videos_padded), axes)  # [Vp]
  at_best = (text_valid & (correct_l == best[segment])).astype(jnp.int32)
  correct_tied = lax.psum_scatter(jax.ops.segment_sum(at_best, segment, num_segments=n_videos_padded),
                                  axes, scatter_dimension=0, tiled=True)  # [Vl]
  best_l = lax.dynamic_slice_in_dim(best, device * n_local_videos, n_local_videos)

  # Pass 2: per local video, texts scoring above / equal to its best correct text.
  def pass2(step, carry):
    greater, equal = carry
    sim = similarities(step)
    gt_g = gathered(gt, step)
    # A correct pair keeps its pass-1 score, so a recomputation can never untie it from itself.
    sim = jnp.where(gt_g[:, None] == video_ids[None, :], gathered(correct_l, step)[:, None], sim)
    valid = (gt_g >= 0)[:, None]
    greater += ((sim > best_l[None, :]) & valid).sum(0, dtype=jnp.int32)
    equal += ((sim == best_l[None, :]) & valid).sum(0, dtype=jnp.int32)
    return greater, equal

  zeros_v = varying(jnp.zeros((n_local_videos,), jnp.int32))
  v2t_greater, v2t_equal = lax.fori_loop(0, steps, pass2, (zeros_v, zeros_v))
  return t2v_greater, t2v_equal, v2t_greater, v2t_equal, correct_tied


@functools.partial(jax.jit, static_argnames=("mesh", "block", "n_videos"))
def _device_counts(text, video, gt, *, mesh, block, n_videos):
  spec = P(tuple(mesh.axis_names))
  kernel = functools.partial(_counts_kernel, axes=tuple(mesh.axis_names), n_devices=mesh.devices.size,
                             block=block, n_videos=n_videos)
  return jax.shard_map(kernel, mesh=mesh, in_specs=(spec, spec, spec), out_specs=(spec,) * 5)(
      text, video, gt)


def _to_host(x) -> np.ndarray:
  if jax.process_count() > 1 and not x.is_fully_addressable:
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def sharded_retrieval_counts(text_emb, video_emb, text_to_video: np.ndarray, mesh=None,
                             block_size: int = 256) -> tuple[RankCounts, RankCounts]:
  """Same counts as `retrieval_counts(text_emb @ video_emb.T, text_to_video)`, computed on device.

  Args:
    text_emb: float[T, D] text embeddings (numpy or jax; float32 is multiplied at full precision).
    video_emb: float[V, D] video embeddings, in the space of `text_emb` (normalise them first for cosine).
    text_to_video: int[T] video of each text; every video needs at least one text.
    mesh: devices to shard over (all axes of the mesh, flattened); default: every device.
    block_size: texts per device per step; a step holds float32[block_size * n_devices, V / n_devices]
      similarities per device, i.e. 4 * block_size * V bytes.

  Returns:
    (text->video counts, video->text counts), as numpy on every process.
  """
  mesh = mesh if mesh is not None else _flat_mesh()
  n_devices = mesh.devices.size
  n_texts, dim = text_emb.shape
  n_videos = video_emb.shape[0]
  if video_emb.shape[1] != dim:
    raise ValueError(f"Embedding sizes differ: texts {text_emb.shape}, videos {video_emb.shape}.")
  gt = _check_mapping(np.asarray(text_to_video), n_texts, n_videos)
  block = max(1, min(block_size, math.ceil(n_texts / n_devices)))
  texts_padded = math.ceil(n_texts / (n_devices * block)) * n_devices * block
  videos_padded = math.ceil(n_videos / n_devices) * n_devices
  sharding = NamedSharding(mesh, P(tuple(mesh.axis_names)))

  def padded(x, rows, fill):
    if isinstance(x, np.ndarray):  # Pad on the host, then place the shards straight onto their devices.
      x = np.concatenate([x, np.full((rows - x.shape[0], *x.shape[1:]), fill, x.dtype)])
      return jax.device_put(x, sharding)
    pad = [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return jax.jit(lambda y: jnp.pad(y, pad, constant_values=fill), out_shardings=sharding)(x)

  outputs = _device_counts(padded(text_emb, texts_padded, 0), padded(video_emb, videos_padded, 0),
                           padded(gt.astype(np.int32), texts_padded, -1), mesh=mesh, block=block,
                           n_videos=n_videos)
  t2v_greater, t2v_equal, v2t_greater, v2t_equal, correct_tied = map(_to_host, outputs)
  t2v = RankCounts(t2v_greater[:n_texts], t2v_equal[:n_texts], np.ones(n_texts, np.int64))
  v2t = RankCounts(v2t_greater[:n_videos], v2t_equal[:n_videos], correct_tied[:n_videos])
  return t2v, v2t


def sharded_retrieval_metrics(text_emb, video_emb, text_to_video: np.ndarray, mesh=None,
                              tie_policy: TiePolicy = DEFAULT_TIE_POLICY, ks: Sequence[int] = DEFAULT_KS,
                              block_size: int = 256, with_bounds: bool = False) -> dict[str, float]:
  """`retrieval_metrics(text_emb @ video_emb.T, ...)` computed blockwise on device (same keys).

  The bounds of `with_bounds` come from the same counts: the similarities are computed once for all policies.
  """
  canonical_tie_policy(tie_policy)
  t2v, v2t = sharded_retrieval_counts(text_emb, video_emb, text_to_video, mesh, block_size)
  return _summaries(t2v, v2t, tie_policy, ks, with_bounds)

"""Dual-encoder embeddings on a mesh, and text-to-video retrieval over a seqio task.

Shared by the dual-encoder trainer's eval and by `viit_jax.evaluate`.
"""
from __future__ import annotations

import dataclasses
import jax
import numpy as np
import seqio
from jax.sharding import NamedSharding, PartitionSpec as P

from data import preprocessors as pp
from viit_jax import sharding as sharding_lib
from viit_jax.metrics import retrieval
from viit_jax.models import dual_encoder as de_lib


class Embedder:
  """The two towers jitted once for a mesh: batches sharded along the mesh's batch axes.

  `videos(params, frames)` / `texts(params, tokens)` take host arrays of any length N, run them
  in batches of `batch_size` rows (the last one padded) and return L2-normalised f32[N, E] numpy.
  """

  def __init__(self, model: de_lib.DualEncoder, mesh: jax.sharding.Mesh, batch_size: int):
    self.mesh = mesh
    divisor = sharding_lib.batch_devices(mesh)
    if batch_size % divisor:
      raise ValueError(f"embedding batch {batch_size} is not a multiple of the mesh's batch "
                       f"axes ({divisor} devices)")
    self.batch_size = batch_size
    self._batch = NamedSharding(mesh, sharding_lib.batch_spec())
    replicated = NamedSharding(mesh, P())

    def video(params, frames):
      return model.apply({"params": params}, frames, method=de_lib.DualEncoder.embed_video)

    def text(params, tokens):
      return model.apply({"params": params}, tokens, method=de_lib.DualEncoder.embed_text)

    self._video = jax.jit(video, out_shardings=replicated)
    self._text = jax.jit(text, out_shardings=replicated)

  def _run(self, fn, params, x: np.ndarray) -> np.ndarray:
    out = []
    n = x.shape[0]
    with sharding_lib.use_mesh(self.mesh):
      for i in range(0, n, self.batch_size):
        chunk = x[i:i + self.batch_size]
        rows = chunk.shape[0]
        if rows < self.batch_size:
          chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - rows, 0)])
        arr = jax.make_array_from_process_local_data(self._batch, chunk)
        out.append(np.asarray(jax.device_get(fn(params, arr)))[:rows])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

  def videos(self, params, frames: np.ndarray) -> np.ndarray:
    """frames uint8[N, T, H, W, 3] -> f32[N, E]."""
    return self._run(self._video, params, frames)

  def texts(self, params, tokens: np.ndarray) -> np.ndarray:
    """tokens int32[N, S] -> f32[N, E]."""
    return self._run(self._text, params, tokens)


@dataclasses.dataclass(frozen=True)
class RetrievalSet:
  """Pairs of a retrieval task: unique videos and their texts.

  Attributes:
    video_ids: [V] ids, first-seen order.
    frames: uint8[V, T, H, W, 3].
    texts: [N] texts.
    text_to_video: int64[N] index into video_ids.
  """
  video_ids: list[str]
  frames: np.ndarray
  texts: list[str]
  text_to_video: np.ndarray


def load_retrieval_set(task: str, split: str, max_pairs: int) -> RetrievalSet:
  """Reads the (video, text) pairs of a retrieval task (demo_msrvtt_retrieval / msrvtt_retrieval):
  the first `max_pairs` (0 = all); videos are de-duplicated by video_id."""
  ds = seqio.get_mixture_or_task(task).get_dataset(
      sequence_length=None, split=split, shuffle=False, num_epochs=1,
      trim_output_features=False)
  if max_pairs > 0:
    ds = ds.take(max_pairs)
  ids: dict[str, int] = {}
  frames, texts, t2v = [], [], []
  for ex in pp.numpy_iterator(ds):
    vid = ex["video_id"].decode()
    if vid not in ids:
      ids[vid] = len(ids)
      frames.append(ex["frames"])
    texts.append(ex["text"].decode())
    t2v.append(ids[vid])
  if not texts:
    raise ValueError(f"retrieval task {task}/{split} has no pairs")
  return RetrievalSet(list(ids), np.stack(frames), texts, np.asarray(t2v, np.int64))


def retrieval_eval(embedder: Embedder, params, data: RetrievalSet, tokens: np.ndarray, *,
                   tie_policy: str = retrieval.DEFAULT_TIE_POLICY, block_size: int = 256,
                   with_bounds: bool = False) -> dict[str, float]:
  """t2v/v2t R@1/5/10, MedR, MeanR of `data` (tokens: its texts' ids int32[N, S]).

  Ties per `tie_policy` (default "expected": the expectation over random tie-breaking); `with_bounds`
  adds "<key>/optimistic" and "<key>/pessimistic" beside each key (`retrieval.rank_summary_with_bounds`).
  """
  video = embedder.videos(params, data.frames)
  text = embedder.texts(params, tokens)
  return retrieval.sharded_retrieval_metrics(text, video, data.text_to_video, mesh=embedder.mesh,
                                             tie_policy=tie_policy, block_size=block_size,
                                             with_bounds=with_bounds)



"""The VLM trainer's input: this process's rows of each global batch, and the eval batches.

`make_data_fn(config, vocab)(start)` iterates model batches {frames uint8[b, T, R, R, 3],
tokens / mask_ar / mask_loss / mask_input int32[b, L]} (b = batch / process count) of steps
start, start + 1, ... for `data.process_split` indexed, slice or shard (see make_data_fn);
`eval_batches` the first `train.eval_batches` held-out batches. Used by viit_jax.train and the
input benchmark; `process_split` (this process's share of a global batch) by the dual encoder too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import jax
import ml_collections
import numpy as np
import seqio
import tensorflow as tf

from data import indexed
from data import preprocessors as pp
from data import registry
from viit_jax.models import vlm as vlm_lib

Config = ml_collections.ConfigDict
Vocab = seqio.SentencePieceVocabulary
HostBatch = dict[str, np.ndarray]  # This process's rows of one global batch.




def model_batches(config: Config, vocab: Vocab, name: str, split: str, *, shuffle: bool,
                   repeat: bool, batch_size: int, shard: tuple[int, int] | None
                   ) -> tf.data.Dataset:
  """Model batches {frames uint8[B, T, H, W, 3], tokens/mask_* int32[B, L]} of a split."""
  provider = registry.provider(name)
  shard_info = None if shard is None else seqio.ShardInfo(index=shard[0], num_shards=shard[1])
  kwargs = dict(sequence_length=None, split=split, shuffle=shuffle, seed=int(config.seed),
                shard_info=shard_info, num_epochs=None if repeat else 1,
                trim_output_features=False)
  ds = provider.get_dataset(**kwargs)
  return pp.batch_for_model(ds, batch_size=batch_size, seq_len=config.data.text_len, vocab=vocab)


PROCESS_SPLITS = ("indexed", "slice", "shard")


def process_split(config: Config, process_index: int | None = None,
                  process_count: int | None = None) -> tuple[int, int, int, str]:
  """(process index p, count n, local batch B / n, data.process_split), checked; p and n default
  to JAX's (tests pass them to play one process of several)."""
  b = int(config.train.batch_size)
  n = jax.process_count() if process_count is None else int(process_count)
  p = jax.process_index() if process_index is None else int(process_index)
  if b % n:
    raise ValueError(f"train.batch_size {b} is not divisible by the process count {n}")
  mode = config.data.process_split
  if mode not in PROCESS_SPLITS:
    raise ValueError(f"data.process_split must be one of {PROCESS_SPLITS}, got {mode!r}")
  return p, n, b // n, mode


def make_data_fn(config: Config, vocab: Vocab) -> Callable[[int], Iterator[HostBatch]]:
  """first step -> iterator of this process's rows of global batches first, first + 1, ...

  `data.process_split=indexed`: each process decodes only its rows of every global batch, by
  index (data.indexed): the order is a function of (seed, step), independent of the process
  count, and resuming at step N reads nothing before it.
  `slice`: every process reads the one global stream and keeps its rows (batch order independent
  of the process count; each process decodes every example; resume replays the stream).
  `shard`: each process reads its 1/P shard of the data with a local batch (the order depends on
  the process count; resume replays the shard).
  """
  b = int(config.train.batch_size)
  p, n, local, mode = process_split(config)

  def data_fn(start: int) -> Iterator[HostBatch]:
    if mode == "indexed":
      stream, tasks = indexed.from_provider(
          registry.provider(config.data.task), config.data.train_split, seed=int(config.seed),
          global_batch=b, process_index=p, process_count=n,
          workers=int(config.data.decode_workers), cache=bool(config.data.cache_decoded),
          time_limit_s=float(config.data.decode_time_limit_s))
      ds = pp.batch_for_model(indexed.dataset(stream, tasks, start), batch_size=local,
                              seq_len=config.data.text_len, vocab=vocab).prefetch(2)
      for batch in pp.numpy_iterator(ds):
        yield {k: batch[k] for k in vlm_lib.BATCH_KEYS}
      return
    if mode == "slice":
      ds = model_batches(config, vocab, config.data.task, config.data.train_split, shuffle=True,
                          repeat=True, batch_size=b, shard=None)
    else:
      ds = model_batches(config, vocab, config.data.task, config.data.train_split, shuffle=True,
                          repeat=True, batch_size=local, shard=(p, n))
    ds = ds.skip(start).prefetch(2)
    for batch in pp.numpy_iterator(ds):
      if mode == "slice":
        yield {k: batch[k][p * local:(p + 1) * local] for k in vlm_lib.BATCH_KEYS}
      else:
        yield {k: batch[k] for k in vlm_lib.BATCH_KEYS}

  return data_fn


def eval_batches(config: Config, vocab: Vocab) -> list[HostBatch]:
  """The first `train.eval_batches` global batches of the eval split, this process's rows."""
  if not config.data.eval_task or config.train.eval_batches <= 0:
    return []
  b = int(config.train.batch_size)
  n, p = jax.process_count(), jax.process_index()
  local = b // n
  ds = model_batches(config, vocab, config.data.eval_task, config.data.eval_split, shuffle=False,
                      repeat=True, batch_size=b, shard=None).take(config.train.eval_batches)
  return [{k: batch[k][p * local:(p + 1) * local] for k in vlm_lib.BATCH_KEYS}
          for batch in pp.numpy_iterator(ds)]

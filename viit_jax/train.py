"""Trains the video-language model: phase 0 (image-text), 1 (visual adaptation), 2 (VIIT).

  python -m viit_jax.train --config=configs/<x>.py[:key=value,...] --workdir=DIR [--resume]

One trainer for every VLM phase; the config says which (data task, frames, frozen parameters,
init_from). Reads top to bottom: config -> distributed start-up and mesh -> data tasks -> model ->
`loop.Task` (init, loss, data by step, eval) -> `loop.run`.

- Mixed precision: float32 master weights and optimizer state; activations and matmuls in
  `model.dtype` (bfloat16 by default); logits and the loss in float32.
- Data order is a function of (seed, step): batch s of a run is the same whether the run was
  interrupted or not, and (with `data.process_split=slice`) whatever the process count.
- Eval (every `train.eval_every` steps and at the end): held-out loss over `train.eval_batches`
  batches of `data.eval_task` and greedy-decoded samples (prefill + cached extend).
- A workdir that holds another config is refused unless `--resume` is given; a NaN/Inf loss stops
  the run (exit code 3) naming the step, keeping the last good checkpoint.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import seqio
import tensorflow as tf
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections

from data import indexed
from data import preprocessors as pp
from data import registry
from viit_jax import decoding
from viit_jax import loop
from viit_jax import runtime
from viit_jax import sharding as sharding_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

Config = ml_collections.ConfigDict
Vocab = seqio.SentencePieceVocabulary
HostBatch = dict[str, np.ndarray]  # This process's rows of one global batch.


# ------------------------------------------------------------------------------------------------
# Data.


def _model_batches(config: Config, vocab: Vocab, name: str, split: str, *, shuffle: bool,
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
  n, p = jax.process_count(), jax.process_index()
  if b % n:
    raise ValueError(f"train.batch_size {b} is not divisible by the process count {n}")
  local = b // n
  mode = config.data.process_split
  if mode not in ("indexed", "slice", "shard"):
    raise ValueError(f"data.process_split must be 'indexed', 'slice' or 'shard', got {mode!r}")

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
      ds = _model_batches(config, vocab, config.data.task, config.data.train_split, shuffle=True,
                          repeat=True, batch_size=b, shard=None)
    else:
      ds = _model_batches(config, vocab, config.data.task, config.data.train_split, shuffle=True,
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
  ds = _model_batches(config, vocab, config.data.eval_task, config.data.eval_split, shuffle=False,
                      repeat=True, batch_size=b, shard=None).take(config.train.eval_batches)
  return [{k: batch[k][p * local:(p + 1) * local] for k in vlm_lib.BATCH_KEYS}
          for batch in pp.numpy_iterator(ds)]


# ------------------------------------------------------------------------------------------------
# Model, loss, decoding (pure functions; jitted by the loop or by `make_eval_fn`).


def greedy_decode(params: Any, batch: Mapping[str, jax.Array], *, model: vlm_lib.VLM,
                  max_len: int, eos_id: int) -> jax.Array:
  """Greedy continuation of each row's prompt: int32[B, max_len], 0 after EOS.

  The prompt is the prefix part of `batch` (mask_ar 0, valid): [BOS + prefix + "\\n"]. Decodes with
  viit_jax.decoding (prefill + cached extend in a while_loop), the code auto-labeling runs.
  """
  prompt_mask = batch["mask_input"] * (1 - batch["mask_ar"])
  inputs = {"frames": batch["frames"], "tokens": batch["tokens"] * prompt_mask,
            "mask_input": prompt_mask}
  cfg = decoding.DecodeConfig(sampler="greedy", max_decode_len=max_len, eos_id=eos_id)
  example_ids = jnp.arange(prompt_mask.shape[0], dtype=jnp.int32)
  out = decoding.decode(params, inputs, example_ids, jnp.int32(0),
                        model=decoding.VLMAdapter(model), cfg=cfg)
  return out.tokens[:, 0]


def make_eval_fn(config: Config, model: vlm_lib.VLM, vocab: Vocab, mesh: jax.sharding.Mesh,
                 batches: list[HostBatch]) -> Callable[[Any, int], loop.EvalResult]:
  """(params, step) -> EvalResult: held-out loss over `batches`, greedy samples of the first."""
  replicated = NamedSharding(mesh, P())
  loss_step = jax.jit(functools.partial(vlm_lib.batch_loss, rng=None, model=model),
                      out_shardings=replicated)
  eos = int(vocab.tokenizer.eos_id())
  decode_step = jax.jit(functools.partial(greedy_decode, model=model,
                                          max_len=int(config.train.max_decode_len), eos_id=eos),
                        out_shardings=replicated)

  def text(ids: Iterable[int]) -> str:
    ids = [int(i) for i in ids if int(i) > 0]
    if eos in ids:
      ids = ids[:ids.index(eos)]
    return vocab.decode(ids)

  compiled: dict[str, Any] = {}

  def compile_once(params: Any, batch: Mapping[str, jax.Array]) -> None:
    """AOT-compiles the eval programs on first use, then aligns the processes (see
    loop.sync_processes) so their first collectives start together."""
    if compiled:
      return
    with sharding_lib.use_mesh(mesh):
      compiled["loss"] = loss_step.lower(params, batch).compile()
      if config.train.decode_samples > 0:
        compiled["decode"] = decode_step.lower(params, batch).compile()
    loop.sync_processes("viit_train/eval_compiled")

  def eval_fn(params: Any, step: int) -> loop.EvalResult:
    del step
    if not batches:
      return loop.EvalResult({})
    total, weight, acc = 0.0, 0.0, 0.0
    compile_once(params, sharding_lib.host_local_to_global(batches[0], mesh))
    with sharding_lib.use_mesh(mesh):
      for b in batches:
        g = sharding_lib.host_local_to_global(b, mesh)
        ls, w, m = jax.device_get(compiled["loss"](params, g))
        total, weight, acc = total + float(ls), weight + float(w), acc + float(
            m["token_accuracy"])
      texts = {}
      n = int(config.train.decode_samples)
      if n > 0:
        host = batches[0]  # This process's rows; process 0 holds global rows [0, local).
        out = np.asarray(jax.device_get(compiled["decode"](
            params, sharding_lib.host_local_to_global(host, mesh))))
        for i in range(min(n, host["tokens"].shape[0])):
          valid = host["mask_input"][i] == 1
          prompt = host["tokens"][i][valid & (host["mask_ar"][i] == 0)][1:]  # Drop BOS.
          target = host["tokens"][i][valid & (host["mask_ar"][i] == 1)]
          texts[f"sample_{i}"] = (f"prompt: {text(prompt)!r} | target: {text(target)!r} | "
                                  f"greedy: {text(out[i])!r}")
    return loop.EvalResult({"loss": total / weight, "token_accuracy": acc / weight}, texts)

  return eval_fn


# ------------------------------------------------------------------------------------------------
# Entry point.


def build_task(config: Config, mesh: jax.sharding.Mesh) -> loop.Task:
  """The loop.Task of a VLM phase (registers data tasks, builds the model)."""
  d = config.data
  vocab = registry.register_for_training(d)
  cfg = runtime.model_config(config.model, vlm_lib.VLMConfig, num_frames=d.num_frames, res=d.res,
                             text_len=d.text_len, vocab_size=vocab.vocab_size)
  model = variants.make_model(cfg)
  init = variants.init_fn(cfg)
  b, t, r, length = (int(config.train.batch_size), int(config.data.num_frames),
                     int(config.data.res), int(config.data.text_len))
  spec = vlm_lib.batch_spec(b, t, r, length)
  batches = eval_batches(config, vocab)
  return loop.Task(
      init_fn=lambda rng: init(rng)["params"],
      loss_fn=functools.partial(vlm_lib.batch_loss, model=model),
      data_fn=make_data_fn(config, vocab),
      batch_spec=spec,
      eval_fn=make_eval_fn(config, model, vocab, mesh, batches) if batches else None)


def main(args: runtime.Args) -> int:
  return loop.main(args, build_task)


if __name__ == "__main__":
  runtime.run(main, resume=True)

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
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import seqio
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging as absl_logging
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
from ml_collections import config_flags

from data import preprocessors as pp
from data import tasks as tasks_lib
from data import viit_tasks
from viit_jax import decoding
from viit_jax import loop
from viit_jax import sharding as sharding_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI flags; defined only when run as a program, so that importing this module (tests,
  other entry points) does not claim absl flag names."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/<x>.py:args).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, config.json).")
  flags.DEFINE_bool("resume", False, "Continue a workdir even though it holds another config.")
  flags.mark_flags_as_required(["config", "workdir"])


Config = ml_collections.ConfigDict
Vocab = seqio.SentencePieceVocabulary
HostBatch = dict[str, np.ndarray]  # This process's rows of one global batch.
MODEL_KEYS = ("frames", "tokens", "mask_ar", "mask_loss", "mask_input")


# ------------------------------------------------------------------------------------------------
# Data.


def register_tasks(config: Config) -> Vocab:
  """Registers the config's seqio tasks (demo world or real data sets); returns the vocabulary."""
  d = config.data
  if d.source == "demo":
    world = os.path.abspath(d.world_dir)
    if not os.path.isfile(os.path.join(world, "manifest.json")):
      raise FileNotFoundError(
          f"data.world_dir={d.world_dir!r} holds no demo world (no manifest.json); create it with "
          f"python -m data.demo_world --out={d.world_dir} --preset=demo")
    vocab_path = d.vocab_path or os.path.join(world, "spm", "demo.model")
    tasks_lib.register_demo_tasks(world, num_frames=d.num_frames, fps=d.fps, res=d.res,
                                  vocab_path=vocab_path, decode_workers=d.decode_workers,
                                  shuffle_buffer_size=d.shuffle_buffer,
                                  cache_decoded=d.cache_decoded)
  elif d.source == "real":
    dirs = {k: v for k, v in d.dirs.items() if v}
    if not dirs:
      raise ValueError("data.source=real needs at least one data.dirs.<dataset> directory")
    if not d.vocab_path:
      raise ValueError("data.source=real needs data.vocab_path (e.g. the PaliGemma tokenizer)")
    vocab_path = d.vocab_path
    tasks_lib.register_real_tasks(dirs, num_frames=d.num_frames, fps=d.fps, res=d.res,
                                  vocab_path=vocab_path, tfds_data_dir=d.tfds_data_dir or None,
                                  decode_workers=d.decode_workers,
                                  shuffle_buffer_size=d.shuffle_buffer,
                                  cache_decoded=d.cache_decoded)
  else:
    raise ValueError(f"data.source must be 'demo' or 'real', got {d.source!r}")
  if d.viit_dir:
    _register_viit(config, vocab_path)
  return tasks_lib.vocabulary(vocab_path)


def _register_viit(config: Config, vocab_path: str) -> None:
  """Registers the VIIT instruction tasks and mixture over viit_jax.synthesize's output."""
  d = config.data
  viit_tasks.register_viit_tasks(
      d.viit_dir, vocab_path=vocab_path, num_frames=d.num_frames, fps=d.fps, res=d.res,
      world_dir=os.path.abspath(d.world_dir) if d.source == "demo" else "",
      rates=dict(d.viit_rates), decode_workers=d.decode_workers,
      shuffle_buffer_size=d.shuffle_buffer, cache_decoded=d.cache_decoded)


def _get_provider(name: str) -> seqio.DatasetProviderBase:
  if name in seqio.MixtureRegistry.names() or name in seqio.TaskRegistry.names():
    return seqio.get_mixture_or_task(name)
  raise KeyError(f"seqio task or mixture {name!r} is not registered (registered: "
                 f"{sorted(seqio.TaskRegistry.names())[:40]} ...; mixtures: "
                 f"{sorted(seqio.MixtureRegistry.names())}). Phase 2's VIIT mixture needs "
                 "data.viit_dir (the output of python -m viit_jax.synthesize).")


def _model_batches(config: Config, vocab: Vocab, name: str, split: str, *, shuffle: bool,
                   repeat: bool, batch_size: int, shard: tuple[int, int] | None
                   ) -> tf.data.Dataset:
  """Model batches {frames uint8[B, T, H, W, 3], tokens/mask_* int32[B, L]} of a split."""
  provider = _get_provider(name)
  shard_info = None if shard is None else seqio.ShardInfo(index=shard[0], num_shards=shard[1])
  kwargs = dict(sequence_length=None, split=split, shuffle=shuffle, seed=int(config.seed),
                shard_info=shard_info, num_epochs=None if repeat else 1,
                trim_output_features=False)
  ds = provider.get_dataset(**kwargs)
  return pp.batch_for_model(ds, batch_size=batch_size, seq_len=config.data.text_len, vocab=vocab)


def make_data_fn(config: Config, vocab: Vocab) -> Callable[[int], Iterator[HostBatch]]:
  """first step -> iterator of this process's rows of global batches first, first + 1, ...

  `data.process_split=slice`: every process reads the one global stream and keeps its rows
  (batch order independent of the process count; each process decodes every example).
  `shard`: each process reads its 1/P shard of the data with a local batch (scales; the order
  depends on the process count).
  """
  b = int(config.train.batch_size)
  n, p = jax.process_count(), jax.process_index()
  if b % n:
    raise ValueError(f"train.batch_size {b} is not divisible by the process count {n}")
  local = b // n
  mode = config.data.process_split
  if mode not in ("slice", "shard"):
    raise ValueError(f"data.process_split must be 'slice' or 'shard', got {mode!r}")

  def data_fn(start: int) -> Iterator[HostBatch]:
    if mode == "slice":
      ds = _model_batches(config, vocab, config.data.task, config.data.train_split, shuffle=True,
                          repeat=True, batch_size=b, shard=None)
    else:
      ds = _model_batches(config, vocab, config.data.task, config.data.train_split, shuffle=True,
                          repeat=True, batch_size=local, shard=(p, n))
    ds = ds.skip(start).prefetch(2)
    for batch in pp.numpy_iterator(ds):
      if mode == "slice":
        yield {k: batch[k][p * local:(p + 1) * local] for k in MODEL_KEYS}
      else:
        yield {k: batch[k] for k in MODEL_KEYS}

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
  return [{k: batch[k][p * local:(p + 1) * local] for k in MODEL_KEYS}
          for batch in pp.numpy_iterator(ds)]


# ------------------------------------------------------------------------------------------------
# Model, loss, decoding (pure functions; jitted by the loop or by `make_eval_fn`).


def model_config(config: Config, vocab_size: int) -> vlm_lib.VLMConfig:
  """The VLM config of `model.variant`, fitted to the data (frames, resolution, text length)."""
  m = config.model
  overrides = {"img.image_size": config.data.res, "img.num_frames": config.data.num_frames,
               "llm.seq_len": config.data.text_len, "img.dtype": m.dtype, "llm.dtype": m.dtype,
               "img.remat_policy": m.remat_policy, "llm.remat_policy": m.remat_policy,
               "img.scan": m.scan, "llm.scan": m.scan}
  if m.vocab_size > 0:
    overrides["llm.vocab_size"] = m.vocab_size
  cfg = variants.get_config(m.variant, overrides)
  if vocab_size > cfg.llm.vocab_size:
    raise ValueError(f"tokenizer has {vocab_size} ids but model {m.variant} has vocab "
                     f"{cfg.llm.vocab_size}; set model.vocab_size")
  return cfg


def vlm_loss(params: Any, batch: Mapping[str, jax.Array], rng: jax.Array | None, *,
             model: vlm_lib.VLM) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """(sum over examples of per-example mean target NLL, batch size B, metric sums).

  batch: frames uint8[B, T, H, W, 3]; tokens, mask_ar, mask_loss, mask_input int32[B, L].
  Summed per-example means divided by the summed B give the mean over examples, the same for one
  batch or its micro-batches (loop's accumulation contract).
  """
  del rng  # No dropout in these models.
  logits = model.apply({"params": params}, batch["frames"], batch["tokens"], batch["mask_ar"],
                       batch["mask_input"])
  mean, aux = vlm_lib.loss(logits, batch["tokens"], batch["mask_loss"])
  b = batch["tokens"].shape[0]
  pred = jnp.argmax(logits[:, :-1], axis=-1)
  w = batch["mask_loss"][:, 1:].astype(jnp.float32)
  acc = jnp.sum((pred == batch["tokens"][:, 1:]) * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1)
  return mean * b, jnp.float32(b), {"token_accuracy": jnp.sum(acc),
                                    "target_tokens": aux["num_tokens"]}


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
  loss_step = jax.jit(functools.partial(vlm_loss, rng=None, model=model),
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
  vocab = register_tasks(config)
  cfg = model_config(config, vocab.vocab_size)
  model = variants.make_model(cfg)
  init = variants.init_fn(cfg)
  b, t, r, length = (int(config.train.batch_size), int(config.data.num_frames),
                     int(config.data.res), int(config.data.text_len))
  spec = {"frames": jax.ShapeDtypeStruct((b, t, r, r, 3), jnp.uint8),
          **{k: jax.ShapeDtypeStruct((b, length), jnp.int32) for k in MODEL_KEYS[1:]}}
  batches = eval_batches(config, vocab)
  return loop.Task(
      init_fn=lambda rng: init(rng)["params"],
      loss_fn=functools.partial(vlm_loss, model=model),
      data_fn=make_data_fn(config, vocab),
      batch_spec=spec,
      eval_fn=make_eval_fn(config, model, vocab, mesh, batches) if batches else None)


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  sharding_lib.maybe_initialize_distributed()  # Before anything touches jax devices.
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO.
  config = FLAGS.config
  if config is None or not FLAGS.workdir:
    raise app.UsageError("--config and --workdir are required")
  _configure_runtime()
  mesh = sharding_lib.make_mesh(dict(config.mesh))
  log = print if jax.process_index() == 0 else (lambda *a, **k: None)
  log(f"experiment {config.experiment}: {jax.process_count()} process(es), "
      f"{jax.device_count()} devices, mesh {dict(mesh.shape)}")
  task = build_task(config, mesh)
  try:
    result = loop.run(task, config, FLAGS.workdir, mesh=mesh, force=FLAGS.resume,
                      log=lambda s: log(s, flush=True))
  except loop.NonFiniteLossError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return 3
  except loop.WorkdirMismatchError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return 2
  log(f"final metrics: {result.metrics}")
  return 0


def _configure_runtime() -> None:
  """A persistent compile cache (if VIIT_COMPILE_CACHE is set) and tf.data off any GPU."""
  cache = os.environ.get("VIIT_COMPILE_CACHE")
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  tf.config.set_visible_devices([], "GPU")
  # seqio warns that uncached FunctionDataSources shuffle poorly across restarts; here the order is
  # a seeded function of the step and restarts skip to it, so the warning does not apply.
  logging.getLogger("absl").addFilter(
      lambda record: "uncached FunctionDataset" not in record.getMessage())


if __name__ == "__main__":
  define_flags()
  app.run(lambda argv: sys.exit(main(argv)))

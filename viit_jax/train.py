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
  batches of `data.eval_task`, greedy-decoded samples (prefill + cached extend), and with
  `train.eval_metric_examples` the task's own metrics (seqio.Evaluator with its metric_fns:
  CIDEr for captions, WUPS for NExT-OE) on that many held-out examples.
- A workdir that holds another config is refused unless `--resume` is given; a NaN/Inf loss stops
  the run (exit code 3) naming the step, keeping the last good checkpoint.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
import seqio
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections

from data import preprocessors as pp
from data import registry
from data import tasks as tasks_lib
from data import vlm_batches
from viit_jax import aot
from viit_jax import decoding
from viit_jax import loop
from viit_jax import programs
from viit_jax import runtime
from viit_jax import sharding as sharding_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

Config = ml_collections.ConfigDict
Vocab = seqio.SentencePieceVocabulary
HostBatch = vlm_batches.HostBatch


# ------------------------------------------------------------------------------------------------
# In-training eval: held-out loss, greedy samples (decoding.greedy_continuation) and the eval
# task's seqio metrics.


def make_eval_fn(config: Config, model: vlm_lib.VLM, vocab: Vocab, mesh: jax.sharding.Mesh,
                 batches: list[HostBatch]) -> Callable[[Any, int], loop.EvalResult]:
  """(params, step) -> EvalResult: held-out loss over `batches`, greedy samples of the first,
  and with train.eval_metric_examples the eval task's own metrics (CIDEr, WUPS)."""
  replicated = NamedSharding(mesh, P())
  loss_step = jax.jit(functools.partial(vlm_lib.batch_loss, rng=None, model=model),
                      out_shardings=replicated)
  eos = int(vocab.tokenizer.eos_id())
  decode_step = decoding.jit_greedy_continuation(model, int(config.train.max_decode_len), eos,
                                                 mesh)

  def text(ids: Iterable[int]) -> str:
    ids = [int(i) for i in ids if int(i) > 0]
    if eos in ids:
      ids = ids[:ids.index(eos)]
    return vocab.decode(ids)

  compiled: dict[str, Any] = {}
  metric_examples = int(config.train.eval_metric_examples)

  def compile_once(params: Any, batch: Mapping[str, jax.Array]) -> None:
    """AOT-compiles the eval programs on first use, then aligns the processes (see
    loop.sync_processes) so their first collectives start together."""
    if compiled:
      return
    with sharding_lib.use_mesh(mesh):
      compiled["loss"] = loss_step.lower(params, batch).compile()
      if config.train.decode_samples > 0 or metric_examples > 0:
        compiled["decode"] = decode_step.lower(params, batch).compile()
    loop.sync_processes("viit_train/eval_compiled")

  evaluators: list[seqio.Evaluator] = []

  def task_metrics(params: Any) -> dict[str, float]:
    """The eval task's seqio metric_fns on its first `train.eval_metric_examples` examples,
    decoded greedily by all processes together (each feeds its rows of every global batch and
    gets every prediction back), scored by every process alike."""
    if not evaluators:  # Built once: seqio.Evaluator decodes and caches the examples.
      evaluators.append(tasks_lib.evaluator(config.data.eval_task, config.data.eval_split,
                                            metric_examples))
    b = int(config.train.batch_size)
    local, p = b // jax.process_count(), jax.process_index()

    def predict_fn(ds: Any, model_feature_shapes: Any = None) -> list[tuple[int, np.ndarray]]:
      del model_feature_shapes
      ds = ds.map(lambda i, ex: {**ex, "_index": i})
      out = []
      for batch in pp.numpy_iterator(pp.batch_for_model(
          ds, batch_size=b, seq_len=int(config.data.text_len), vocab=vocab, keep=("_index",),
          include_suffix=False, drop_remainder=False)):
        n = len(batch["_index"])
        rows = {k: np.concatenate([batch[k], np.repeat(batch[k][-1:], b - n, 0)])
                for k in vlm_lib.BATCH_KEYS}  # The last batch padded to the compiled shape.
        host = {k: v[p * local:(p + 1) * local] for k, v in rows.items()}
        tokens = np.asarray(jax.device_get(compiled["decode"](
            params, sharding_lib.host_local_to_global(host, mesh))))
        # Equal lengths (EOS, then 0): seqio stacks the outputs; its decode stops at EOS.
        out += [(int(batch["_index"][i]), tokens[i]) for i in range(n)]
      return out

    if not evaluators[0].eval_tasks:  # The task has no metric_fns (e.g. a VIIT task).
      return {}
    future, _ = evaluators[0].evaluate(compute_metrics=True, predict_fn=predict_fn)
    return {k: float(v) for k, v in future.result()[config.data.eval_task].items()}

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
      metrics = {"loss": total / weight, "token_accuracy": acc / weight}
      if metric_examples > 0:
        metrics.update(task_metrics(params))
    return loop.EvalResult(metrics, texts)

  return eval_fn


# ------------------------------------------------------------------------------------------------
# Entry point.


def build_task(config: Config, mesh: jax.sharding.Mesh) -> loop.Task:
  """The loop.Task of a VLM phase (registers data tasks, builds the model)."""
  vocab = registry.register_for_training(config.data)
  cfg = programs.vlm_model_config(config, vocab.vocab_size)
  batches = vlm_batches.eval_batches(config, vocab)
  eval_fn = (make_eval_fn(config, variants.make_model(cfg), vocab, mesh, batches) if batches
             else None)
  return programs.vlm_task(config, cfg, data_fn=vlm_batches.make_data_fn(config, vocab),
                           eval_fn=eval_fn)


def main(args: runtime.Args) -> int:
  return loop.main(args, build_task)


if __name__ == "__main__":
  runtime.run(main, resume=True, compile_only=aot.trainer_compile_only)

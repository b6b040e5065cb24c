"""What the trainers compile, without their data: the model config, init, loss and batch shapes of
a VLM phase (viit_jax.train) or of a dual-encoder run (viit_jax.train_dual_encoder), as a
`loop.Task`.

The trainers add their data and eval functions; viit_jax.plan compiles the tasks for TPU slices
and the input benchmark feeds them, without importing the trainers.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from viit_jax import loop
from viit_jax import runtime
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

Config = ml_collections.ConfigDict


def no_data(start: int) -> Iterator[Any]:
  """The data_fn of a task that is only compiled."""
  raise RuntimeError(f"this task has no data (asked for step {start})")


def _sizes(config: Config) -> tuple[int, int, int, int]:
  d = config.data
  return int(config.train.batch_size), int(d.num_frames), int(d.res), int(d.text_len)


def vlm_model_config(config: Config, vocab_size: int = 0) -> vlm_lib.VLMConfig:
  """The VLM of a phase's config (its variant fitted to data.num_frames, res, text_len)."""
  _, t, r, length = _sizes(config)
  return runtime.model_config(config.model, vlm_lib.VLMConfig, num_frames=t, res=r,
                              text_len=length, vocab_size=vocab_size)


def vlm_task(config: Config, cfg: vlm_lib.VLMConfig, *,
             data_fn: Callable[[int], Iterator[Any]] = no_data,
             eval_fn: Callable[[Any, int], loop.EvalResult] | None = None) -> loop.Task:
  """A VLM phase's loop.Task: init, next-token loss, batches of vlm_lib.batch_spec."""
  init = variants.init_fn(cfg)
  return loop.Task(init_fn=lambda rng: init(rng)["params"],
                   loss_fn=functools.partial(vlm_lib.batch_loss, model=variants.make_model(cfg)),
                   data_fn=data_fn, batch_spec=vlm_lib.batch_spec(*_sizes(config)),
                   eval_fn=eval_fn, model_cfg=cfg)


def dual_encoder_model_config(config: Config, vocab_size: int = 0) -> de_lib.DualEncoderConfig:
  """The dual encoder of a config, checked for the contrastive loss's constraints."""
  if int(config.train.micro_batches) != 1:
    raise ValueError("train.micro_batches must be 1 for the contrastive loss: accumulation would "
                     "draw negatives from each micro-batch only, not from the global batch")
  de = config.dual_encoder
  if de.loss not in de_lib.LOSSES:
    raise ValueError(f"dual_encoder.loss must be one of {de_lib.LOSSES}, got {de.loss!r}")
  _, t, r, length = _sizes(config)
  return runtime.model_config(
      config.model, de_lib.DualEncoderConfig, num_frames=t, res=r, text_len=length,
      vocab_size=vocab_size,
      extra={"t_init": float(de.log_temperature_init), "b_init": float(de.bias_init)})


def dual_encoder_task(config: Config, cfg: de_lib.DualEncoderConfig, *,
                      data_fn: Callable[[int], Iterator[Any]] = no_data,
                      eval_fn: Callable[[Any, int], loop.EvalResult] | None = None
                      ) -> loop.Task:
  """A dual-encoder run's loop.Task: batches {frames uint8[B, T, R, R, 3], tokens int32[B, S]}."""
  init = variants.init_fn(cfg)
  b, t, r, length = _sizes(config)
  spec = {"frames": jax.ShapeDtypeStruct((b, t, r, r, 3), jnp.uint8),
          "tokens": jax.ShapeDtypeStruct((b, length), jnp.int32)}
  return loop.Task(init_fn=lambda rng: init(rng)["params"],
                   loss_fn=functools.partial(de_lib.batch_loss, model=de_lib.DualEncoder(cfg),
                                             loss=config.dual_encoder.loss),
                   data_fn=data_fn, batch_spec=spec, eval_fn=eval_fn, model_cfg=cfg)

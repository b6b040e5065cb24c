"""Optimizer recipes from config, and freezing by parameter-path regex.

Recipes (config section `optim`, declared in configs/base.py):
- `adafactor` (PaLI-3 / the paper): no momentum (beta1 = 0), second-moment decay rate 0.8
  (beta2_t = 1 - t^-0.8), factored second moments, update clipping at RMS 1.0; schedule `rsqrt`:
  linear warm-up to the peak LR, then inverse-square-root decay. Peak LR 1e-4 in the paper.
- `adamw` (beta1, beta2, decoupled weight decay) and `sgd` (momentum) with the `cosine` schedule, for
  the dual encoder.
Optional global-norm gradient clipping (`grad_clip_norm` > 0) runs before any of them.

Freezing: `optim.freeze` is one regex, full-matched against '/'-joined parameter paths
(e.g. `llm/.*` freezes the LM, `img/.*` the vision tower). `split_params` cuts the params into a
trainable and a frozen tree (each holds only its own leaves). The train step differentiates only with
respect to the trainable tree, and the optimizer is initialised on the trainable tree alone, so frozen
parameters get no gradient computation and no optimizer state at all.
"""
from __future__ import annotations

import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

Params = Any  # Nested dict of arrays.


def path_name(path: tuple[str, ...]) -> str:
  """('llm', 'layers', 'mlp', 'linear') -> 'llm/layers/mlp/linear'."""
  return "/".join(str(p) for p in path)


def make_schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """The learning-rate schedule: float32[] LR as a function of the update count (0-based).

  Warm-up is linear, reaching the peak at update `warmup_steps - 1` (so the first update already
  moves: lr = peak / warmup_steps). Then:
  - `rsqrt`: peak * sqrt(warmup / (count + 1)) (timescale = max(warmup_steps, 1));
  - `cosine`: cosine from peak to `peak * cosine_end_fraction` at `total_steps`;
  - `constant`: peak.
  """
  peak = float(optim.lr)
  warmup = int(optim.warmup_steps)
  name = optim.schedule
  if name not in ("rsqrt", "cosine", "constant"):
    raise ValueError(f"Unknown optim.schedule {name!r}; expected rsqrt, cosine or constant")
  if warmup < 0:
    raise ValueError(f"optim.warmup_steps must be >= 0, got {warmup}")
  end = peak * float(optim.cosine_end_fraction)
  decay_steps = max(int(total_steps) - warmup, 1)
  timescale = float(max(warmup, 1))

  def schedule(count):
    step = jnp.asarray(count, jnp.float32) + 1.0  # 1-based update index.
    warm = jnp.minimum(1.0, step / max(warmup, 1)) if warmup > 0 else jnp.float32(1.0)
    if name == "rsqrt":
      after = jnp.sqrt(timescale / jnp.maximum(step, timescale))
    elif name == "cosine":
      frac = jnp.clip((step - warmup) / decay_steps, 0.0, 1.0)
      after = (end + (peak - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))) / peak if peak else 1.0
    else:
      after = jnp.float32(1.0)
    return peak * warm * after

  return schedule


def make_optimizer(optim: ml_collections.ConfigDict,
                   total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer named by `optim.name` with its schedule; returns (transformation, schedule)."""
  schedule = make_schedule(optim, total_steps)
  if optim.name == "adafactor":
    tx = optax.adafactor(
        learning_rate=schedule,
        min_dim_size_to_factor=int(optim.adafactor_min_dim_to_factor),
        decay_rate=float(optim.adafactor_decay_rate),
        multiply_by_parameter_scale=bool(optim.adafactor_param_scale),
        clipping_threshold=float(optim.adafactor_clipping) or None,
        momentum=None,  # beta1 = 0: no first moment, no momentum state.
        weight_decay_rate=float(optim.weight_decay) or None,
    )
  elif optim.name == "adamw":
    tx = optax.adamw(learning_rate=schedule, b1=float(optim.b1), b2=float(optim.b2),
                     eps=float(optim.eps), weight_decay=float(optim.weight_decay))
  elif optim.name == "sgd":
    tx = optax.chain(
        optax.add_decayed_weights(float(optim.weight_decay)) if optim.weight_decay else
        optax.identity(),
        optax.sgd(learning_rate=schedule, momentum=float(optim.momentum) or None))
  else:
    raise ValueError(f"Unknown optim.name {optim.name!r}; expected adafactor, adamw or sgd")
  if optim.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(float(optim.grad_clip_norm)), tx)
  return tx, schedule


def trainable_names(params: Params, freeze: str) -> tuple[list[str], list[str]]:
  """(trainable, frozen) '/'-joined parameter paths for freeze regex `freeze` ('' = none frozen).

  Raises ValueError if a non-empty regex matches no parameter (a typo would otherwise silently
  train everything) or matches every parameter (nothing left to train).
  """
  names = sorted(path_name(k) for k in traverse_util.flatten_dict(params))
  if not freeze:
    return names, []
  pattern = re.compile(freeze)
  frozen = [n for n in names if pattern.fullmatch(n)]
  trainable = [n for n in names if not pattern.fullmatch(n)]
  if not frozen:
    raise ValueError(f"optim.freeze={freeze!r} matches no parameter; first names: {names[:8]}")
  if not trainable:
    raise ValueError(f"optim.freeze={freeze!r} freezes every parameter; nothing to train")
  return trainable, frozen


def split_params(params: Params, freeze: str) -> tuple[Params, Params]:
  """(trainable, frozen): two nested dicts that each hold only their own leaves."""
  flat = traverse_util.flatten_dict(params)
  pattern = re.compile(freeze) if freeze else None
  trainable, frozen = {}, {}
  for k, v in flat.items():
    if pattern is not None and pattern.fullmatch(path_name(k)):
      frozen[k] = v
    else:
      trainable[k] = v
  return traverse_util.unflatten_dict(trainable), traverse_util.unflatten_dict(frozen)


def merge_params(trainable: Params, frozen: Params) -> Params:
  """Inverse of `split_params`."""
  flat = dict(traverse_util.flatten_dict(trainable))
  for k, v in traverse_util.flatten_dict(frozen).items():
    if k in flat:
      raise ValueError(f"Parameter {path_name(k)} is both trainable and frozen")
    flat[k] = v
  return traverse_util.unflatten_dict(flat)


def tree_size(tree: Any) -> int:
  """Number of array elements in a pytree of arrays or ShapeDtypeStructs."""
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))

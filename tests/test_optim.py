"""Optimizer recipes and freezing: schedules, Adafactor state, no grads / no state for frozen params."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import base
from viit_jax import optim


def _optim_cfg(**overrides):
  config = base.get_config()
  for k, v in overrides.items():
    config.optim[k] = v
  return config.optim


def _params():
  k = jax.random.split(jax.random.PRNGKey(0), 4)
  return {
      "img": {"embedding": {"kernel": jax.random.normal(k[0], (4, 256)) * 0.1,
                            "bias": jnp.zeros((256,))}},
      "llm": {"layers": {"w": jax.random.normal(k[1], (256, 200)) * 0.1},
              "final_norm": {"scale": jnp.zeros((200,))}},
  }


def _loss(params, x):
  h = jnp.tanh(x @ params["img"]["embedding"]["kernel"] + params["img"]["embedding"]["bias"])
  y = (h @ params["llm"]["layers"]["w"]) * (1 + params["llm"]["final_norm"]["scale"])
  return jnp.mean(y ** 2)


def test_rsqrt_schedule_warmup_then_inverse_sqrt():
  sched = optim.make_schedule(_optim_cfg(lr=1e-4, warmup_steps=1000, schedule="rsqrt"), 40_000)
  lr = lambda s: float(sched(s))  # noqa: E731
  assert lr(0) == pytest.approx(1e-4 / 1000)
  assert lr(499) == pytest.approx(0.5e-4)
  assert lr(999) == pytest.approx(1e-4)  # Peak at the end of warm-up.
  assert lr(3999) == pytest.approx(1e-4 * math.sqrt(1000 / 4000))
  assert lr(39_999) == pytest.approx(1e-4 * math.sqrt(1000 / 40_000))
  assert all(lr(s) > lr(s + 1000) for s in range(1000, 30_000, 5000))


def test_cosine_schedule():
  sched = optim.make_schedule(_optim_cfg(lr=1e-3, warmup_steps=10, schedule="cosine",
                                         cosine_end_fraction=0.0), 110)
  assert float(sched(9)) == pytest.approx(1e-3)
  assert float(sched(59)) == pytest.approx(0.5e-3, rel=1e-5)
  assert float(sched(109)) == pytest.approx(0.0, abs=1e-9)


def test_adafactor_recipe_has_no_momentum_and_factored_second_moments():
  tx, _ = optim.make_optimizer(_optim_cfg(name="adafactor"), 100)
  state = tx.init(_params())
  leaves = jax.tree.leaves(state)
  # No leaf with the full shape of a factored (>=128 x >=128) param: no momentum, no full v.
  assert not any(x.shape == (256, 200) for x in leaves)
  shapes = {x.shape for x in leaves}
  assert (256,) in shapes and (200,) in shapes  # Row and column statistics of llm/layers/w.
  # Second-moment decay 0.8: beta2 at step t is 1 - t^-0.8 (optax's decay_rate).
  assert _optim_cfg().adafactor_decay_rate == 0.8 and _optim_cfg().lr == 1e-4


@pytest.mark.parametrize("name,schedule,lr", [("adafactor", "rsqrt", 1e-2), ("adamw", "cosine", 1e-2),
                                              ("sgd", "cosine", 0.3)])
def test_recipes_reduce_loss(name, schedule, lr):
  cfg = _optim_cfg(name=name, schedule=schedule, lr=lr, warmup_steps=2)
  tx, _ = optim.make_optimizer(cfg, 30)
  params = _params()
  x = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
  state = tx.init(params)
  first = float(_loss(params, x))
  for _ in range(30):
    g = jax.grad(_loss)(params, x)
    u, state = tx.update(g, state, params)
    params = optax.apply_updates(params, u)
  assert float(_loss(params, x)) < 0.7 * first


def test_split_merge_roundtrip_and_errors():
  params = _params()
  trainable, frozen = optim.split_params(params, "llm/.*")
  assert set(trainable) == {"img"} and set(frozen) == {"llm"}
  merged = optim.merge_params(trainable, frozen)
  assert jax.tree.structure(merged) == jax.tree.structure(params)
  t_names, f_names = optim.trainable_names(params, "llm/.*")
  assert f_names == ["llm/final_norm/scale", "llm/layers/w"]
  assert t_names == ["img/embedding/bias", "img/embedding/kernel"]
  with pytest.raises(ValueError, match="matches no parameter"):
    optim.trainable_names(params, "lm/.*")
  with pytest.raises(ValueError, match="freezes every parameter"):
    optim.trainable_names(params, ".*")


def test_frozen_params_get_no_gradient_computation_and_no_state():
  params = _params()
  x = jnp.ones((8, 4))
  tx, _ = optim.make_optimizer(_optim_cfg(name="adamw", schedule="cosine"), 10)

  def grads_of_trainable(freeze):
    def fn(params):
      trainable, frozen = optim.split_params(params, freeze)
      return jax.grad(lambda t: _loss(optim.merge_params(t, frozen), x))(trainable)
    return fn

  # The weight gradient of llm/layers/w is a [256, 200] dot that must vanish from the program.
  def n_dots(freeze):
    jaxpr = jax.make_jaxpr(grads_of_trainable(freeze))(params)
    return str(jaxpr).count("dot_general")

  assert n_dots("llm/.*") < n_dots("")
  grads = grads_of_trainable("llm/.*")(params)
  assert set(optim.trainable_names(grads, "")[0]) == {"img/embedding/bias", "img/embedding/kernel"}

  trainable, _ = optim.split_params(params, "llm/.*")
  state = tx.init(trainable)
  # AdamW: mu and nu per trainable leaf only (+ scalar counts): no byte of state for llm/.
  n_trainable = optim.tree_size(trainable)
  assert optim.tree_size(state) == 2 * n_trainable + sum(
      1 for x in jax.tree.leaves(state) if x.shape == ())
  full_state = tx.init(params)
  assert optim.tree_size(state) < optim.tree_size(full_state) - optim.tree_size(params["llm"])
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
  assert not any("llm" in p for p in paths)
  np.testing.assert_array_equal(np.asarray(grads["img"]["embedding"]["bias"]).shape, (256,))

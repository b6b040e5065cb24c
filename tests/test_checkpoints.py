"""Checkpoints: layout, keep-K, resharded restore, restore_or_init order, assignment maps, .npz import."""
import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from viit_jax import checkpoints


def _mesh(shape, names):
  devices = np.array(jax.devices()[:int(np.prod(shape))]).reshape(shape)
  return jax.sharding.Mesh(devices, names)


def _state(mesh, spec_w, seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 3)
  params = {"img": {"w": jax.random.normal(k[0], (8, 16)), "b": jax.random.normal(k[1], (16,))},
            "llm": {"emb": jax.random.normal(k[2], (32, 8))}}
  shard = lambda x, s: jax.device_put(x, NamedSharding(mesh, s))  # noqa: E731
  params = {"img": {"w": shard(params["img"]["w"], spec_w), "b": shard(params["img"]["b"], P())},
            "llm": {"emb": shard(params["llm"]["emb"], P(spec_w[0]))}}
  opt = jax.jit(optax.adamw(1e-3).init)(params)
  return {"step": jax.device_put(jnp.int32(0), NamedSharding(mesh, P())), "params": params,
          "opt": opt}


def _abstract(state):
  return checkpoints.abstract_like(state)


def _host(tree):
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def test_layout_keep_and_resharded_restore(tmp_path):
  mesh8 = _mesh((8,), ("fsdp",))
  state = _state(mesh8, P("fsdp", None))
  ck = checkpoints.Checkpointer(tmp_path, save_every=2, keep=2)
  meta = {"experiment": "t", "variant": "toy", "config": {"a": 1}}
  for step in range(1, 7):
    state = {**state, "step": jnp.int32(step)}
    ck.maybe_save(step, state, data={"step": step}, meta=meta)
  ck.wait()
  assert ck.all_steps() == [4, 6]  # Every 2 steps, keep 2.
  step_dir = tmp_path / "checkpoints" / "6"
  assert {"state", "meta", "data"} <= set(os.listdir(step_dir))
  assert ck.read_meta(6) == meta

  # Restore on a different mesh (2 x 4, other axis names): arrays land in the new shardings.
  mesh24 = _mesh((2, 4), ("data", "tensor"))
  target_state = _state(mesh24, P("data", "tensor"), seed=1)
  abstract = _abstract(target_state)
  restored, data = ck.restore(6, abstract)
  ck.close()
  assert data == {"step": 6}
  assert int(restored["step"]) == 6
  w = restored["params"]["img"]["w"]
  assert w.sharding == NamedSharding(mesh24, P("data", "tensor"))
  jax.tree.map(np.testing.assert_array_equal, _host(restored["params"]), _host(state["params"]))
  jax.tree.map(np.testing.assert_array_equal, _host(restored["opt"]), _host(state["opt"]))


def test_restore_or_init_order_and_assignment_map(tmp_path):
  mesh = _mesh((4,), ("fsdp",))
  src = _state(mesh, P("fsdp", None), seed=0)
  src_ck = checkpoints.Checkpointer(tmp_path / "src", save_every=1, keep=1)
  src_ck.save(3, src, data={"step": 3}, meta={"experiment": "src"})
  src_ck.close()

  fresh = _state(mesh, P(None, "fsdp"), seed=1)

  # 1. No own checkpoint, no init_from: the fresh init.
  own = checkpoints.Checkpointer(tmp_path / "a", save_every=1, keep=1)
  make_state = lambda p: {**fresh, "params": p}  # noqa: E731
  state, data, how = checkpoints.restore_or_init(own, _abstract(fresh), lambda: fresh["params"],
                                                 make_state)
  assert how == "fresh initialisation" and data == {}

  # 2. init_from another workdir, with a rule keeping img/b fresh: only params come over.
  state, data, how = checkpoints.restore_or_init(
      own, _abstract(fresh), lambda: fresh["params"], make_state,
      init_from=str(tmp_path / "src"), assignment_map=[("img/b", None)])
  assert "loaded 2 params" in how and "kept 1 fresh" in how
  np.testing.assert_array_equal(_host(state["params"]["img"]["w"]), _host(src["params"]["img"]["w"]))
  np.testing.assert_array_equal(_host(state["params"]["img"]["b"]),
                                _host(fresh["params"]["img"]["b"]))
  assert state["params"]["img"]["w"].sharding == fresh["params"]["img"]["w"].sharding
  assert int(state["step"]) == 0  # Step and optimizer state are the fresh ones.

  # 2b. init_from covering every param never builds fresh params.
  state_b, _, _ = checkpoints.restore_or_init(
      own, _abstract(fresh), lambda: pytest.fail("must not init"), make_state,
      init_from=str(tmp_path / "src"))
  np.testing.assert_array_equal(_host(state_b["params"]["img"]["b"]),
                                _host(src["params"]["img"]["b"]))

  # 3. Own checkpoint beats init_from.
  own.save(5, {**state, "step": jnp.int32(5)}, data={"step": 5}, meta={})
  own.wait()
  state2, data2, how2 = checkpoints.restore_or_init(
      own, _abstract(fresh), lambda: pytest.fail("must not init"),
      lambda p: pytest.fail("must not make a state"), init_from=str(tmp_path / "src"))
  own.close()
  assert int(state2["step"]) == 5 and data2 == {"step": 5} and "resumed" in how2


def test_renaming_rules_and_errors(tmp_path):
  mesh = _mesh((2,), ("fsdp",))
  src = _state(mesh, P(None, None), seed=0)
  ck = checkpoints.Checkpointer(tmp_path / "src", save_every=1, keep=1)
  ck.save(1, src, data={}, meta={})
  ck.close()
  # A target tree with other names: 'vision/...' comes from 'img/...', 'lm/emb' from 'llm/emb'.
  target = {"vision": {"w": jnp.zeros((8, 16)), "b": jnp.zeros((16,))},
            "lm": {"emb": jnp.zeros((32, 8), jnp.bfloat16)}}
  amap = [(r"vision/(.*)", r"img/\1"), (r"lm/(.*)", r"llm/\1")]
  new, report = checkpoints.load_params_into(target, str(tmp_path / "src"), assignment_map=amap)
  assert report.loaded == ("lm/emb", "vision/b", "vision/w")
  assert new["lm"]["emb"].dtype == jnp.bfloat16  # Restored as the target dtype.
  np.testing.assert_allclose(np.asarray(new["lm"]["emb"], np.float32),
                             np.asarray(src["params"]["llm"]["emb"]), rtol=1e-2, atol=1e-2)
  with pytest.raises(ValueError, match="not in the source.*vision/w"):
    checkpoints.load_params_into(target, str(tmp_path / "src"), assignment_map=amap[1:])
  bad = {"img": {"w": jnp.zeros((16, 8))}}
  with pytest.raises(ValueError, match=r"shape mismatches.*img/w \(16, 8\) <- img/w \(8, 16\)"):
    checkpoints.load_params_into(bad, str(tmp_path / "src"))
  with pytest.raises(FileNotFoundError, match="neither a workdir nor"):
    checkpoints.load_params_into(bad, str(tmp_path / "nope"))


def test_npz_import_with_bf16_voids_and_params_prefix(tmp_path):
  w = np.arange(12, dtype=np.float32).reshape(3, 4)
  bf = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16)
  path = tmp_path / "pg.npz"
  np.savez(path, **{"params/img/w": w, "params/llm/s": bf.view(np.dtype("V2")),
                    "params/extra": np.zeros(2)})
  mesh = _mesh((2,), ("fsdp",))
  target = {"img": {"w": jax.device_put(jnp.zeros((3, 4)), NamedSharding(mesh, P(None, "fsdp")))},
            "llm": {"s": jnp.zeros((6,), jnp.float32)}}
  new, report = checkpoints.load_params_into(target, str(path))
  np.testing.assert_array_equal(np.asarray(new["img"]["w"]), w)
  np.testing.assert_array_equal(np.asarray(new["llm"]["s"]), bf.astype(np.float32))
  assert new["img"]["w"].sharding == NamedSharding(mesh, P(None, "fsdp"))
  assert report.unused_source == ("extra",)
  json.dumps(report.summary())

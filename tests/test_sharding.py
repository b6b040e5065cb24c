"""Meshes (one slice, and Multislice over TPU topology descriptions), logical rules, sharded init on
8 CPU devices, host-local batches, 2-process start-up."""
import dataclasses
import json
import math
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from launch import local, tpu_topology
from viit_jax import sharding
from viit_jax.models import variants

REPO = pathlib.Path(__file__).resolve().parents[1]


def _batch(cfg, b, seed=0):
  """A host batch in the data pipeline's contract."""
  rng = np.random.default_rng(seed)
  r, t, length = cfg.img.image_size, cfg.img.num_frames, cfg.llm.seq_len
  mask_ar = (np.arange(length)[None] >= 6).astype(np.int32).repeat(b, 0)
  return {"frames": rng.integers(0, 256, (b, t, r, r, 3), dtype=np.uint8),
          "tokens": rng.integers(3, cfg.llm.vocab_size, (b, length)).astype(np.int32),
          "mask_ar": mask_ar, "mask_input": np.ones((b, length), np.int32)}


def test_make_mesh_sizes_and_axis_types():
  mesh = sharding.make_mesh({"data": -1, "fsdp": 2, "tensor": 1})
  assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
  assert mesh.axis_types == (AxisType.Auto,) * 3
  assert dict(sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 2}).shape)["fsdp"] == 4
  with pytest.raises(ValueError, match="needs 3 devices"):
    sharding.make_mesh({"data": 3, "fsdp": 1, "tensor": 1})
  with pytest.raises(ValueError, match="exactly the axes"):
    sharding.make_mesh({"data": -1, "model": 1})
  with pytest.raises(ValueError, match="at most one"):
    sharding.make_mesh({"data": -1, "fsdp": -1, "tensor": 1})


def test_make_mesh_takes_the_config_mesh_with_its_dcn_axis():
  """`dict(config.mesh)` carries `dcn_axis`; on one slice the mesh is exactly jax.make_mesh's."""
  from configs import base
  cfg = dict(base.get_config("mesh.data=2,mesh.fsdp=-1").mesh)
  assert cfg["dcn_axis"] == "data"
  mesh = sharding.make_mesh(cfg)
  reference = jax.make_mesh((2, 4, 1), sharding.MESH_AXES, axis_types=(AxisType.Auto,) * 3)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
  assert mesh.axis_types == (AxisType.Auto,) * 3
  assert (mesh.devices == reference.devices).all()
  assert (sharding.make_mesh({k: v for k, v in cfg.items() if k != "dcn_axis"}).devices
          == mesh.devices).all()
  with pytest.raises(ValueError, match="'model' is not a mesh axis"):
    sharding.make_mesh({**cfg, "dcn_axis": "model"})


@dataclasses.dataclass(frozen=True)
class _FakeTpu:
  """What jax's mesh utilities read from a TPU device (hashable, as jax.sharding.Mesh needs)."""
  id: int
  process_index: int
  slice_index: int
  coords: tuple[int, int, int]
  core_on_chip: int = 0
  platform: str = "tpu"
  device_kind: str = "TPU v5 lite"


def _v5e_devices(source, slice_name, num_slices):
  """The devices of `num_slices` x `slice_name`: libtpu's description of the real topology, or
  fake devices with the same ids, coordinates, hosts and slice indices."""
  tpu = tpu_topology.parse_slice(slice_name)
  if source == "libtpu":
    pytest.importorskip("libtpu")  # The [tpu] extra: `pip install 'jax[tpu]==<jax version>'`.
    from jax.experimental import topologies
    return list(topologies.get_topology_desc(topology_name=tpu.topology_name, platform="tpu",
                                             num_slices=num_slices).devices)
  x_size, y_size = (int(d) for d in tpu.topology.split("x"))
  return [_FakeTpu(id=s * tpu.chips + y * x_size + x,
                   process_index=s * tpu.hosts + (y * x_size + x) // tpu.chips_per_host,
                   slice_index=s, coords=(x, y, 0))
          for s in range(num_slices) for y in range(y_size) for x in range(x_size)]


@pytest.mark.parametrize("source", ["libtpu", "fake"])
def test_multislice_mesh_puts_the_dcn_axis_across_slices(source):
  """2 x v5litepod-256 (512 chips, 2 slices): `data` spans the slices over DCN, every other axis
  stays inside a slice, and each slice is laid out as jax.make_mesh lays out one slice."""
  devices = _v5e_devices(source, "v5litepod-256", 2)
  assert len(devices) == 512 and sharding.num_slices(devices) == 2

  def slices_along(mesh, axis):  # For each index of `axis`: the slices its devices lie on.
    grid = np.moveaxis(mesh.devices, sharding.MESH_AXES.index(axis), 0)
    return [{d.slice_index for d in grid[i].ravel()} for i in range(grid.shape[0])]

  mesh = sharding.make_mesh({"data": 2, "fsdp": -1, "tensor": 1, "dcn_axis": "data"}, devices)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 256, "tensor": 1}
  assert mesh.axis_types == (AxisType.Auto,) * 3
  assert slices_along(mesh, "data") == [{0}, {1}]  # Neighbours along data: different slices.
  assert slices_along(mesh, "fsdp") == [{0, 1}] * 256  # Each fsdp index: one device per slice.
  for s in range(2):
    own = [d for d in devices if d.slice_index == s]
    one_slice = jax.make_mesh((1, 256, 1), sharding.MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                              devices=own)
    assert (mesh.devices[s:s + 1] == one_slice.devices).all()

  # data=4 on 2 slices: 2 per slice, slice-major; tensor and fsdp never leave a slice.
  mesh4 = sharding.make_mesh({"data": 4, "fsdp": -1, "tensor": 4}, devices)
  assert dict(mesh4.shape) == {"data": 4, "fsdp": 32, "tensor": 4}
  assert slices_along(mesh4, "data") == [{0}, {0}, {1}, {1}]
  assert all(len(ss) == 2 for ss in slices_along(mesh4, "tensor") + slices_along(mesh4, "fsdp"))
  # The config may name another axis: fsdp across slices (512 = 2 x 256).
  mesh_f = sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 1, "dcn_axis": "fsdp"}, devices)
  assert slices_along(mesh_f, "fsdp") == [{0}] * 256 + [{1}] * 256
  # Pure FSDP with data across DCN cannot split 1 data row over 2 slices: the fix is in the error.
  with pytest.raises(ValueError, match="multiple of 2; set e.g. mesh.data=2 with mesh.fsdp=-1"):
    sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 1, "dcn_axis": "data"}, devices)
  # What the job builds from the base config on 2 slices: mesh.data=2 on the command line.
  from configs import base
  cfg_mesh = dict(base.get_config("mesh.data=2").mesh)
  assert sharding.make_mesh(cfg_mesh, devices).shape == mesh.shape


def test_logical_rules():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  spec = lambda names, shape: sharding.logical_to_spec(names, shape, mesh)
  # Activations: batch over data x fsdp, so embed stays unsharded.
  assert spec(("batch", "length", "embed"), (8, 5, 32)) == P(("data", "fsdp"), None, None)
  assert spec(("batch", "length", "vocab"), (8, 5, 64)) == P(("data", "fsdp"), None, "tensor")
  # Parameters: FSDP on embed, tensor on mlp / heads / vocab, nothing on layers and kv.
  assert spec(("layers", "embed", "mlp"), (3, 32, 64)) == P(None, "fsdp", "tensor")
  assert spec(("heads", "kv", "embed"), (4, 16, 32)) == P("tensor", None, "fsdp")
  # Not divisible (the single kv head of MQA): replicated. Rank mismatch: replicated.
  assert spec(("heads", "embed", "kv"), (1, 32, 16)) == P(None, "fsdp", None)
  assert spec(("embed", "mlp"), (32,)) == P()
  assert sharding.batch_spec() == P(("data", "fsdp"))
  shardings = sharding.logical_to_shardings(
      {"a": nn.LogicallyPartitioned(jax.ShapeDtypeStruct((32, 64), jnp.float32), ("embed", "mlp")),
       "count": jax.ShapeDtypeStruct((), jnp.int32)}, mesh)
  assert shardings["a"].spec == P("fsdp", "tensor") and shardings["count"].spec == P()


EXPECTED_SPECS = {
    "test": {
        ("llm", "embedder", "input_embedding"): P("tensor", "fsdp"),
        ("llm", "layers", "mlp", "gating_einsum"): P(None, None, "fsdp", "tensor"),
        ("llm", "layers", "mlp", "linear"): P(None, "tensor", "fsdp"),
        ("llm", "layers", "attn", "q_einsum", "w"): P(None, "tensor", "fsdp", None),
        ("llm", "layers", "attn", "kv_einsum", "w"): P(None, None, None, "fsdp", None),
        ("llm", "layers", "pre_attention_norm", "scale"): P(None, "fsdp"),
        ("img", "embedding", "kernel"): P(None, None, None, "fsdp"),
        ("img", "pos_embedding"): P(None, None, "fsdp"),
        ("img", "Transformer", "encoderblock", "MultiHeadDotProductAttention_0", "query",
         "kernel"): P(None, "fsdp", "tensor", None),
        ("img", "Transformer", "encoderblock", "MlpBlock_0", "Dense_1", "kernel"):
            P(None, "tensor", "fsdp"),
        ("img", "head", "kernel"): P(None, "fsdp"),
    },
    "test-de": {
        ("txt", "Embed_0", "embedding"): P("tensor", "fsdp"),
        ("txt", "Encoder_0", "encoderblock", "MlpBlock_0", "Dense_0", "kernel"):
            P(None, "fsdp", "tensor"),
        ("img", "temporal_pos_embedding"): P(None, None, "fsdp"),
        ("img", "MAPHead_0", "probe"): P(None, None, "fsdp"),
        ("img", "MAPHead_0", "MultiHeadDotProductAttention_0", "out", "kernel"):
            P("tensor", None, "fsdp"),
        ("t",): P(None),
    },
}


def _get(tree, path):
  for k in path:
    tree = tree[k]
  return tree


@pytest.mark.parametrize("name", ["test", "test-de"])
def test_init_sharded_matches_single_device(name):
  """Init straight into a (data=2, fsdp=2, tensor=2) mesh; params and outputs == one device."""
  cfg = variants.get_config(name)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  init = variants.init_fn(cfg)
  tree, shardings = sharding.init_sharded(init, mesh, sharding.RULES, jax.random.PRNGKey(0))
  params = tree["params"]
  for path, spec in EXPECTED_SPECS[name].items():
    arr = _get(params, path)
    assert _get(shardings["params"], path).spec == spec, path
    assert arr.sharding.spec == spec, path
    want_shard = tuple(d // (1 if s is None else math.prod(mesh.shape[a] for a in (
        (s,) if isinstance(s, str) else s))) for d, s in zip(arr.shape, tuple(spec) + (None,) * 9))
    assert arr.addressable_shards[0].data.shape == want_shard, path

  if name == "test":  # the initial values do not depend on the mesh
    one_device = jax.jit(lambda k: nn.unbox(init(k)))(jax.random.PRNGKey(0))["params"]
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(one_device)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  else:
    one_device = jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x)), params)

  model = variants.make_model(cfg)
  if name == "test":
    host = _batch(cfg, 8)
  else:
    np.testing.assert_allclose(np.asarray(params["t"]), [np.log(10.0)], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(params["b"]), [-10.0])
    rng = np.random.default_rng(1)
    host = {"frames": rng.integers(0, 256, (8, 2, 16, 16, 3), dtype=np.uint8),
            "tokens": rng.integers(0, 256, (8, 8)).astype(np.int32)}
  apply = jax.jit(lambda p, b: model.apply({"params": p}, **b))
  with sharding.use_mesh(mesh):
    batch = sharding.host_local_to_global(host, mesh)
    assert batch["tokens"].sharding.spec == P(("data", "fsdp"))
    sharded_out = apply(params, batch)
  single_out = apply(one_device, {k: jnp.asarray(v) for k, v in host.items()})
  for a, b in zip(jax.tree_util.tree_leaves(sharded_out), jax.tree_util.tree_leaves(single_out)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=2e-5)


def test_host_local_to_global_single_process():
  mesh = sharding.make_mesh({"data": 4, "fsdp": 2, "tensor": 1})
  host = {"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3), "n": np.int32(7)}
  out = sharding.host_local_to_global(host, mesh)
  assert out["x"].sharding == NamedSharding(mesh, P(("data", "fsdp")))
  assert out["n"].sharding.spec == P()
  assert len(out["x"].addressable_shards) == 8
  assert out["x"].addressable_shards[0].data.shape == (2, 3)
  np.testing.assert_array_equal(np.asarray(out["x"]), host["x"])


def test_maybe_initialize_distributed_reads_env(monkeypatch):
  for name in (sharding.ENV_COORDINATOR_ADDRESS, sharding.ENV_NUM_PROCESSES,
               sharding.ENV_PROCESS_ID):
    monkeypatch.delenv(name, raising=False)
  assert sharding.maybe_initialize_distributed() is False
  monkeypatch.setenv(sharding.ENV_NUM_PROCESSES, "2")
  with pytest.raises(ValueError, match="VIIT_COORDINATOR_ADDRESS"):
    sharding.maybe_initialize_distributed()


class _Proj(nn.Module):
  """A tiny model with logical names: x [B, 8] -> [B, 16]."""

  @nn.compact
  def __call__(self, x):
    w = self.param("w", nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                                     ("embed", "mlp")), (8, 16))
    return nn.with_logical_constraint(x @ w, ("batch", "mlp"))


_WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from viit_jax import sharding
    assert sharding.maybe_initialize_distributed()
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    sys.path.insert(0, os.environ["TEST_DIR"])
    from test_sharding import _Proj, _global_x

    assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
    mesh = sharding.make_mesh({"data": -1, "fsdp": 2, "tensor": 1})
    x = _global_x()
    tree, _ = sharding.init_sharded(_Proj().init, mesh, sharding.RULES, jax.random.PRNGKey(0),
                                    x[:1])
    assert tree["params"]["w"].sharding.spec == P("fsdp", "tensor")
    batch_sharding = NamedSharding(mesh, sharding.batch_spec())
    starts = sorted({idx[0].start or 0 for idx in
                     batch_sharding.addressable_devices_indices_map((8,)).values()})
    rows = np.concatenate([np.arange(s, s + 2) for s in starts])
    with sharding.use_mesh(mesh):
      batch = sharding.host_local_to_global({"x": x[rows]}, mesh)
      assert batch["x"].shape == (8, 8)
      sums = jax.jit(lambda p, b: _Proj().apply(p, b["x"]).sum(axis=1),
                     out_shardings=NamedSharding(mesh, P()))(tree, batch)
    if jax.process_index() == 0:
      with open(os.environ["OUT_FILE"], "w") as f:
        json.dump({"sums": np.asarray(sums).tolist(), "rows": rows.tolist()}, f)
    jax.distributed.shutdown()
""")


def _global_x():
  return np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
  """2 processes x 2 CPU devices (gloo, VIIT_* env): same per-example outputs as one process."""
  out_file = tmp_path / "out.json"
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(os.environ)
    env.update({"XLA_FLAGS": local.xla_flags(os.environ["XLA_FLAGS"], 2), "JAX_PLATFORMS": "cpu",
                "PYTHONPATH": f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}",
                sharding.ENV_COORDINATOR_ADDRESS: f"127.0.0.1:{port}",
                sharding.ENV_NUM_PROCESSES: "2", sharding.ENV_PROCESS_ID: str(pid),
                "OUT_FILE": str(out_file), "TEST_DIR": str(REPO / "tests")})
    procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  assert all(p.returncode == 0 for p in procs), "\n".join(x[-3000:] for x in logs)
  got = json.loads(out_file.read_text())
  assert sorted(got["rows"]) == [0, 1, 2, 3]  # process 0 holds the first half of the batch

  tree = jax.jit(lambda k: nn.unbox(_Proj().init(k, _global_x()[:1])))(jax.random.PRNGKey(0))
  want = _global_x() @ np.asarray(tree["params"]["w"])
  np.testing.assert_allclose(got["sums"], want.sum(axis=1), rtol=1e-5)


def test_distributed_env_errors_name_the_variables(monkeypatch):
  """A partial VIIT_* set, or `auto` mixed with explicit values, is refused before any start-up."""
  for name in (sharding.ENV_COORDINATOR_ADDRESS, sharding.ENV_NUM_PROCESSES, sharding.ENV_PROCESS_ID):
    monkeypatch.delenv(name, raising=False)
  assert sharding.maybe_initialize_distributed() is False
  monkeypatch.setenv(sharding.ENV_COORDINATOR_ADDRESS, "127.0.0.1:1234")
  with pytest.raises(ValueError, match=sharding.ENV_PROCESS_ID):
    sharding.maybe_initialize_distributed()
  monkeypatch.setenv(sharding.ENV_COORDINATOR_ADDRESS, "auto")
  monkeypatch.setenv(sharding.ENV_NUM_PROCESSES, "2")
  with pytest.raises(ValueError, match=sharding.ENV_NUM_PROCESSES):
    sharding.maybe_initialize_distributed()

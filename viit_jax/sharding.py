"""Device meshes, logical axis rules, shardings of state and batches, and multi-process start-up.

This is the only module that knows mesh axis names. Models name their parameter and activation axes
logically (`batch`, `frames`, `length`, `embed`, `mlp`, `heads`, `kv`, `vocab`, `layers`); `RULES` maps
them onto the mesh axes `data`, `fsdp`, `tensor`. The default is pure FSDP: parameters are sharded
along `embed` over `fsdp` (and along `mlp`/`heads`/`vocab` over `tensor` when that axis is > 1), the
batch over `data` x `fsdp`.

A logical axis whose size is not divisible by its mesh axes is replicated instead (e.g. the single kv
head of multi-query attention over `tensor`=2); a box whose rank differs from its names (e.g. factored
optimizer moments) is replicated. Leaves without logical names (scalars, step, optax counts) are
replicated with `P()`.

Multislice (several TPU slices joined by the data-center network, DCN): `make_mesh` puts the
config's `mesh.dcn_axis` (default `data`) across the slices and keeps every other axis inside a
slice (ICI), so the slow network carries only that axis's collectives (with `data`: the gradient
all-reduce).

Typical use::

  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  params, shardings = sharding.init_sharded(init_fn, mesh, sharding.RULES, rng)
  with sharding.use_mesh(mesh, sharding.RULES):   # activates the model's logical constraints
    out = jitted_step(params, sharding.host_local_to_global(batch, mesh))

Multi-process (JAX multi-controller): `maybe_initialize_distributed()` calls
`jax.distributed.initialize` when these environment variables are set (launch/local.py sets them):
  VIIT_COORDINATOR_ADDRESS   host:port of process 0's coordinator, e.g. 127.0.0.1:12345
  VIIT_NUM_PROCESSES         total number of processes
  VIIT_PROCESS_ID            this process's id in [0, VIIT_NUM_PROCESSES)
On CPU, cross-process collectives use gloo. Call it before anything touches jax devices.

Peer failure. `jax.distributed` runs a coordination service in process 0; every process's client
sends it heartbeats from a background thread and polls it for errors. When a process dies, every
survivor exits non-zero within a bounded time, without any launcher's help:
  * a collective in flight with the dead peer fails at once (gloo: "Connection reset by peer"), the
    entry point raises, and at exit `jax.distributed.shutdown` waits in the shutdown barrier;
  * the service declares a process dead once it has sent no heartbeat for
    `heartbeat_timeout_seconds` (VIIT_HEARTBEAT_TIMEOUT_S, default 30 s; jax's own default, 100 s,
    held survivors ~80-90 s) and passes the error to every client, whose background thread then
    ends its process whatever the main thread is doing (a gloo collective, a barrier, a checkpoint,
    the shutdown barrier):
    LOG(FATAL) "Terminating process because the JAX distributed service detected fatal errors",
    SIGABRT, i.e. return code -6 (shell status 134);
  * a dead process 0 takes the service with it: the survivors' next RPC to it fails and they end
    the same way, at once, and at the latest after their own heartbeat timeout.
Measured (tests/test_multihost.py, 2 CPU processes on 127.0.0.1, one SIGKILLed after its first
checkpoint): process 1 killed -> process 0 exits -6 after 20-25 s; process 0 killed -> process 1
exits -6 after < 1 s. A SIGSTOPped (hung, sockets open) peer: the survivor, blocked in a gloo
collective, exits -6 after 17-27 s.
A peer that hangs while its heartbeat thread still runs is not seen by heartbeats: coordination-
service barriers (`loop.sync_processes`) give up after loop.BARRIER_TIMEOUT_S (30 min) and CPU gloo
collectives after XLA's `--xla_cpu_collective_timeout_seconds` (XLA_FLAGS; default 30 min).
VIIT_INIT_TIMEOUT_S (default 300 s) bounds how long `initialize` waits for all processes to
connect; VIIT_SHUTDOWN_TIMEOUT_S (default 300 s) how long a finished process waits at exit for the
others to finish.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")

LogicalRules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# The one rules table. Order matters: an axis takes the first rule whose mesh axes are still free in
# that array, so activations [batch, length, embed] shard batch over (data, fsdp) and leave embed
# unsharded, while parameters [.., embed, ..] shard embed over fsdp.
RULES: LogicalRules = (
    ("batch", ("data", "fsdp")),
    ("frames", None),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("layers", None),
)

# The `mesh` config key naming the axis that spans slices (Multislice); see make_mesh.
DCN_AXIS_KEY = "dcn_axis"
# Device kinds whose slices jax.make_mesh lays out with allow_split_physical_axes=True.
_SPLIT_PHYSICAL_AXES_KINDS = ("TPU v5 lite", "TPU v5e")

ENV_COORDINATOR_ADDRESS = "VIIT_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "VIIT_NUM_PROCESSES"
ENV_PROCESS_ID = "VIIT_PROCESS_ID"
# jax.distributed failure-detection knobs (seconds), each overridable by its environment variable;
# see the module docstring ("Peer failure").
ENV_HEARTBEAT_TIMEOUT_S = "VIIT_HEARTBEAT_TIMEOUT_S"
ENV_INIT_TIMEOUT_S = "VIIT_INIT_TIMEOUT_S"
ENV_SHUTDOWN_TIMEOUT_S = "VIIT_SHUTDOWN_TIMEOUT_S"
HEARTBEAT_TIMEOUT_S = 30  # jax's default is 100: a dead peer would hold the others ~100 s.
INIT_TIMEOUT_S = 300
SHUTDOWN_TIMEOUT_S = 300


def num_slices(devices: Sequence[Any]) -> int:
  """How many TPU slices `devices` span: distinct `slice_index` values (1 without, e.g. CPU)."""
  return len({getattr(d, "slice_index", 0) for d in devices}) or 1


def make_mesh(cfg_mesh: Mapping[str, int | str], devices: Sequence[Any] | None = None) -> Mesh:
  """A (data, fsdp, tensor) mesh with Auto axis types, laid out over one or several slices.

  Args:
    cfg_mesh: the config's `mesh` section as a dict: every axis name of MESH_AXES mapped to its
      size, e.g. {"data": -1, "fsdp": 1, "tensor": 1} (one size may be -1 and absorbs the remaining
      devices), and optionally "dcn_axis" (the base config's `mesh.dcn_axis`, "data" when absent):
      the axis that spans slices when the devices lie on several.
    devices: the mesh's devices (default: all of `jax.devices()`); their count must equal the
      product of the sizes.

  One slice (every CPU/GPU run, and one TPU slice): `jax.make_mesh`, which orders the devices along
  the slice's ICI torus. Several slices (Multislice: devices carry `slice_index`) joined over the
  data-center network (DCN): the `dcn_axis` size is split as num_slices x per-slice and
  `mesh_utils.create_hybrid_device_mesh(ici_shape, dcn_shape)` lays each slice out as
  `jax.make_mesh` would and stacks the slices along `dcn_axis`, slice-major: for any index of
  `dcn_axis` all devices of `mesh.devices[..., index, ...]` sit in one slice, so only `dcn_axis`
  collectives cross DCN. The sizes are always the global ones (the whole job), as on one slice.
  """
  cfg = dict(cfg_mesh)
  dcn_axis = str(cfg.pop(DCN_AXIS_KEY, "data"))
  if set(cfg) != set(MESH_AXES):
    raise ValueError(f"mesh config needs exactly the axes {list(MESH_AXES)} (and optionally "
                     f"{DCN_AXIS_KEY!r}); got {sorted(cfg)}")
  if dcn_axis not in MESH_AXES:
    raise ValueError(f"mesh.{DCN_AXIS_KEY}={dcn_axis!r} is not a mesh axis: one of "
                     f"{list(MESH_AXES)}")
  devices = list(jax.devices() if devices is None else devices)
  sizes = [int(cfg[name]) for name in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got {cfg}")
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"mesh sizes must be positive or -1, got {cfg}")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"mesh {cfg} does not divide {len(devices)} devices")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                     f"there are {len(devices)}")
  axis_types = (AxisType.Auto,) * len(MESH_AXES)
  slices = num_slices(devices)
  if slices == 1:
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=axis_types, devices=devices)

  axis = MESH_AXES.index(dcn_axis)
  if sizes[axis] % slices:
    others = " or ".join(f"mesh.{a}=-1" for a in MESH_AXES if a != dcn_axis)
    raise ValueError(
        f"mesh {dict(zip(MESH_AXES, sizes))} over {slices} slices: mesh.{DCN_AXIS_KEY}="
        f"{dcn_axis!r} spans the slices over DCN, so its size ({sizes[axis]}) must be a multiple "
        f"of {slices}; set e.g. mesh.{dcn_axis}={slices} with {others}")
  dcn_shape = [1] * len(MESH_AXES)
  dcn_shape[axis] = slices
  ici_shape = list(sizes)
  ici_shape[axis] //= slices
  # As jax.make_mesh does on one slice: v5e's 2D torus may need a physical axis split in two.
  split = devices[0].device_kind in _SPLIT_PHYSICAL_AXES_KINDS
  grid = mesh_utils.create_hybrid_device_mesh(ici_shape, dcn_shape, devices,
                                              allow_split_physical_axes=split)
  return Mesh(grid, MESH_AXES, axis_types=axis_types)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: LogicalRules = RULES) -> Iterator[None]:
  """Makes `mesh` current and installs `rules`, so models' logical constraints take effect."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


def _mesh_axes_size(mesh: Mesh, axes: str | tuple[str, ...]) -> int:
  return math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))


def logical_to_spec(names: tuple[str | None, ...], shape: tuple[int, ...], mesh: Mesh,
                    rules: LogicalRules = RULES) -> P:
  """PartitionSpec for an array of `shape` whose axes have logical `names`.

  Mesh axes that do not divide their dimension are dropped (that dimension is replicated).
  """
  if len(names) != len(shape):
    return P()
  mesh_axes = nn.logical_to_mesh_axes(names, rules)
  spec = []
  for dim, axes in zip(shape, mesh_axes):
    if axes is None or dim % _mesh_axes_size(mesh, axes):
      spec.append(None)
    else:
      spec.append(axes)
  return P(*spec)


def _is_box(x: Any) -> bool:
  return isinstance(x, nn.Partitioned)


def logical_to_shardings(abstract_tree: Any, mesh: Mesh, rules: LogicalRules = RULES) -> Any:
  """NamedShardings for a (possibly boxed) tree, with the structure of the *unboxed* tree.

  Leaves boxed by `nn.with_logical_partitioning` get their logical names mapped through `rules`;
  boxes made with `nn.with_partitioning` carry mesh axes directly; other leaves are replicated.
  """
  def one(leaf: Any) -> NamedSharding:
    if isinstance(leaf, nn.LogicallyPartitioned):
      return NamedSharding(mesh, logical_to_spec(tuple(leaf.names), tuple(leaf.value.shape), mesh,
                                                 rules))
    if isinstance(leaf, nn.Partitioned):
      return NamedSharding(mesh, P(*leaf.names) if len(leaf.names) == leaf.value.ndim else P())
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map(one, abstract_tree, is_leaf=_is_box)


def init_sharded(init_fn: Any, mesh: Mesh, rules: LogicalRules, *args: Any) -> tuple[Any, Any]:
  """Initialises straight into shardings: eval_shape, then jit with out_shardings.

  init_fn(*args) returns a tree whose parameters are boxed with logical names (Linen `init` output).
  Returns (unboxed tree placed on the mesh, its NamedShardings).
  """
  abstract = jax.eval_shape(init_fn, *args)
  shardings = logical_to_shardings(abstract, mesh, rules)
  with use_mesh(mesh, rules):
    tree = jax.jit(lambda *a: nn.unbox(init_fn(*a)), out_shardings=shardings)(*args)
  return tree, shardings


def batch_spec(rules: LogicalRules = RULES) -> P:
  """PartitionSpec of the leading (batch) axis."""
  return P(nn.logical_to_mesh_axes(("batch",), rules)[0])


def batch_devices(mesh: Mesh, rules: LogicalRules = RULES) -> int:
  """How many ways the batch axis is split on `mesh` (a global batch must divide by it)."""
  axes = batch_spec(rules)[0]
  return 1 if axes is None else _mesh_axes_size(mesh, axes)


def batch_shardings(batch: Any, mesh: Mesh, rules: LogicalRules = RULES) -> Any:
  """NamedShardings for a batch tree: leading axis over the batch mesh axes, scalars replicated."""
  spec = batch_spec(rules)
  return jax.tree_util.tree_map(
      lambda x: NamedSharding(mesh, spec if np.ndim(x) >= 1 else P()), batch)


def host_local_to_global(batch: Any, mesh: Mesh, rules: LogicalRules = RULES) -> Any:
  """Per-process numpy batch -> global jax arrays sharded along the batch axis.

  Each process passes its own rows (global batch / process count); with one process the local
  batch is the global batch.
  """
  shardings = batch_shardings(batch, mesh, rules)
  return jax.tree_util.tree_map(
      lambda x, s: jax.make_array_from_process_local_data(s, np.asarray(x)), batch, shardings)


def _seconds_from_env(name: str, default: int) -> int:
  """A positive whole number of seconds from environment variable `name`, else `default`."""
  raw = os.environ.get(name)
  if not raw:
    return default
  try:
    value = int(raw)
  except ValueError:
    value = 0
  if value <= 0:
    raise ValueError(f"{name}={raw!r}: expected a positive whole number of seconds")
  return value


def distributed_timeouts() -> dict[str, int]:
  """The failure-detection keyword arguments of jax.distributed.initialize (seconds), from the
  VIIT_*_TIMEOUT_S environment variables or their defaults; see the module docstring."""
  return {
      "heartbeat_timeout_seconds": _seconds_from_env(ENV_HEARTBEAT_TIMEOUT_S, HEARTBEAT_TIMEOUT_S),
      "initialization_timeout": _seconds_from_env(ENV_INIT_TIMEOUT_S, INIT_TIMEOUT_S),
      "shutdown_timeout_seconds": _seconds_from_env(ENV_SHUTDOWN_TIMEOUT_S, SHUTDOWN_TIMEOUT_S),
  }


def maybe_initialize_distributed() -> bool:
  """Calls jax.distributed.initialize from the VIIT_* environment variables; True if it did.

  Does nothing (False) when none is set or when already initialised; a partial set is an error.
  `VIIT_COORDINATOR_ADDRESS=auto` alone lets jax detect the cluster itself (Cloud TPU VMs, Vertex AI,
  GKE with the TPU webhook): `jax.distributed.initialize()` without arguments.
  Either way the failure-detection timeouts come from `distributed_timeouts()`
  (VIIT_HEARTBEAT_TIMEOUT_S, VIIT_INIT_TIMEOUT_S, VIIT_SHUTDOWN_TIMEOUT_S), so a dead peer stops the
  job in bounded time (module docstring, "Peer failure").
  """
  names = (ENV_COORDINATOR_ADDRESS, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
  values = {n: os.environ.get(n) for n in names}
  present = [n for n, v in values.items() if v]
  if not present:
    return False
  if jax.distributed.is_initialized():
    return False
  if values[ENV_COORDINATOR_ADDRESS] == "auto":
    if len(present) != 1:
      raise ValueError(f"{ENV_COORDINATOR_ADDRESS}=auto lets jax detect the cluster; unset "
                       f"{[n for n in present if n != ENV_COORDINATOR_ADDRESS]}")
    jax.distributed.initialize(**distributed_timeouts())
    return True
  if len(present) != len(names):
    missing = [n for n in names if n not in present]
    raise ValueError(f"multi-process start needs all of {list(names)}; missing {missing}")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=values[ENV_COORDINATOR_ADDRESS],
                             num_processes=int(values[ENV_NUM_PROCESSES]),
                             process_id=int(values[ENV_PROCESS_ID]), **distributed_timeouts())
  return True

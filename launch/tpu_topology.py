"""Cloud TPU slices by name, and how a config's mesh lands on them.

A slice name is what `gcloud compute tpus` and Vertex/GKE docs call the accelerator type:

  v4-<TensorCores>         v4-8 .. v4-8192   2 TensorCores per chip, 4 chips per host (ct4p-hightpu-4t)
  v5p-<TensorCores>        v5p-8 .. v5p-12288  2 TensorCores per chip, 4 chips per host (ct5p-hightpu-4t)
  v5litepod-<chips> (v5e)  v5litepod-1 .. -256  1 TensorCore per chip; 1, 4 or 8 chips on one host
                           (ct5lp-hightpu-1t/4t/8t), 4 chips per host from 16 chips on (ct5lp-hightpu-4t)
  v6e-<chips>              v6e-1 .. v6e-256  like v5e (ct6e-standard-1t/4t/8t, 4t when multi-host)

JAX sees one device per chip on all four (v4 and v5p run their two TensorCores as one "megacore"
device), so a slice has `chips` JAX devices and `hosts` JAX processes.

Mesh: the config's `mesh` (ordered axis -> size, one -1 allowed, e.g. {data: 1, fsdp: -1, tensor: 1})
covers every device of the job, as `viit_jax.sharding.make_mesh` builds it. On one slice it all lies
on the slice's ICI. With several slices (Multislice) the slices are joined over the data-center network
(DCN) along one axis, the config's `mesh.dcn_axis` (`data` by default), which must then be a
multiple of the number of slices: the global mesh is ICI x DCN per axis, the shapes
`jax.experimental.mesh_utils.create_hybrid_device_mesh(ici_shape, dcn_shape)` takes (and
`viit_jax.sharding.make_mesh` passes it on a Multislice job).

  python -m launch.tpu_topology --slice=v5p-128 --num_slices=2 --mesh=data=2,fsdp=-1,tensor=1
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Mapping, Sequence

# Default slice shapes (chips -> topology) as documented for the TPU API / GKE.
_TOPOLOGY_3D = {
    4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
    512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16", 6144: "16x16x24",
}
_TOPOLOGY_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
                256: "16x16"}


@dataclasses.dataclass(frozen=True)
class _Generation:
  """What one TPU generation's slice names mean."""
  name: str  # v4 | v5e | v5p | v6e
  prefix: str  # Slice-name prefix before the number.
  cores_per_chip: int  # The number in the name counts TensorCores (v4, v5p) or chips (v5e, v6e).
  max_chips: int  # Largest single slice.
  gke_accelerator: str  # Node label cloud.google.com/gke-tpu-accelerator.
  machine_type_pattern: str  # Formatted with chips per host.
  twod: bool  # 2D torus (v5e, v6e) vs 3D (v4, v5p).


_GENERATIONS = (
    _Generation("v4", "v4", 2, 4096, "tpu-v4-podslice", "ct4p-hightpu-{}t", False),
    _Generation("v5p", "v5p", 2, 6144, "tpu-v5p-slice", "ct5p-hightpu-{}t", False),
    _Generation("v5e", "v5litepod", 1, 256, "tpu-v5-lite-podslice", "ct5lp-hightpu-{}t", True),
    _Generation("v6e", "v6e", 1, 256, "tpu-v6e-slice", "ct6e-standard-{}t", True),
)
_NAME_RE = re.compile(r"^(v4|v5p|v5litepod|v6e)-(\d+)$")


@dataclasses.dataclass(frozen=True)
class TpuSlice:
  """One TPU slice: its size, its hosts, and what GKE calls it."""
  name: str  # e.g. "v5litepod-16"
  generation: str  # v4 | v5e | v5p | v6e
  chips: int  # = JAX devices of the slice
  cores: int  # TensorCores
  hosts: int  # VMs = JAX processes of the slice
  chips_per_host: int  # = `google.com/tpu` per pod on GKE
  topology: str  # e.g. "4x4" (v5e/v6e) or "4x4x4" (v4/v5p)
  gke_accelerator: str  # value of node label cloud.google.com/gke-tpu-accelerator
  machine_type: str  # GKE / Compute Engine machine type of each host

  @property
  def devices(self) -> int:
    """JAX devices in the slice (one per chip)."""
    return self.chips

  @property
  def multi_host(self) -> bool:
    return self.hosts > 1

  @property
  def topology_name(self) -> str:
    """libtpu's name of the slice, e.g. "v5e:16x16": the `topology_name` of
    `jax.experimental.topologies.get_topology_desc(..., platform="tpu")`, which describes the slice's
    devices on a machine without TPUs (for compiling ahead and for laying out meshes)."""
    return f"{self.generation}:{self.topology}"


def _dims_ok(dims: tuple[int, ...]) -> bool:
  """v4/v5p shapes: every dimension <= 4, or every dimension a multiple of 4."""
  return all(d <= 4 for d in dims) or all(d % 4 == 0 for d in dims)


def _cube_like_topology(chips: int) -> str | None:
  """The most cube-like AxBxC (A<=B<=C, valid per `_dims_ok`) with A*B*C == chips, or None."""
  best = None
  for a in range(1, round(chips ** (1 / 3)) + 2):
    if chips % a:
      continue
    for b in range(a, math.isqrt(chips // a) + 1):
      if (chips // a) % b:
        continue
      c = chips // a // b
      if c < b or not _dims_ok((a, b, c)):
        continue
      key = (c / a, c)
      if best is None or key < best[0]:
        best = (key, f"{a}x{b}x{c}")
  return None if best is None else best[1]


def parse_slice(name: str) -> TpuSlice:
  """The slice called `name` (v4-8, v5litepod-16, v5p-128, v6e-256, ...); ValueError if not valid."""
  m = _NAME_RE.match(name.strip())
  if not m:
    raise ValueError(f"Unknown TPU slice name {name!r}: expected v4-<cores>, v5p-<cores>, "
                     "v5litepod-<chips> (v5e) or v6e-<chips>, e.g. v5litepod-16, v5p-128")
  gen = next(g for g in _GENERATIONS if g.prefix == m.group(1))
  number = int(m.group(2))
  if number % gen.cores_per_chip:
    raise ValueError(f"{name}: {gen.name} names count TensorCores ({gen.cores_per_chip} per chip); "
                     f"{number} is not a whole number of chips")
  chips = number // gen.cores_per_chip
  if chips < 1 or chips > gen.max_chips:
    raise ValueError(f"{name}: {chips} chips; a {gen.name} slice has 1..{gen.max_chips} chips")
  if gen.twod:
    if chips not in _TOPOLOGY_2D:
      raise ValueError(f"{name}: {gen.name} slices have {sorted(_TOPOLOGY_2D)} chips, not {chips}")
    topology = _TOPOLOGY_2D[chips]
    chips_per_host = chips if chips <= 8 else 4
  else:
    if chips % 4:
      raise ValueError(f"{name}: {gen.name} slices come in whole hosts of 4 chips; {chips} chips "
                       f"is not (smallest: {gen.prefix}-{4 * gen.cores_per_chip})")
    topology = _TOPOLOGY_3D.get(chips) or _cube_like_topology(chips)
    if topology is None:
      raise ValueError(f"{name}: no {gen.name} topology AxBxC has {chips} chips")
    chips_per_host = 4
  return TpuSlice(
      name=f"{gen.prefix}-{number}", generation=gen.name, chips=chips,
      cores=chips * gen.cores_per_chip, hosts=chips // chips_per_host,
      chips_per_host=chips_per_host, topology=topology, gke_accelerator=gen.gke_accelerator,
      machine_type=gen.machine_type_pattern.format(chips_per_host))


DCN_AXIS_KEY = "dcn_axis"  # The `mesh` config key naming the axis across slices (configs/base.py).


def split_mesh_config(mesh: Mapping[str, int | str]) -> tuple[dict[str, int], str | None]:
  """A config's `mesh` section -> (axis sizes, its `dcn_axis` or None when it names none)."""
  sizes = {k: v for k, v in mesh.items() if k != DCN_AXIS_KEY}
  bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int)}
  if bad:
    raise ValueError(f"Mesh axis sizes must be integers, got {bad}")
  dcn_axis = mesh.get(DCN_AXIS_KEY)
  return sizes, None if dcn_axis is None else str(dcn_axis)


def _dcn_axis(mesh: Mapping[str, int | str], dcn_axis: str | None) -> tuple[dict[str, int], str]:
  """Sizes and the DCN axis: `dcn_axis` if given (it must agree with the mesh's), else the mesh's
  `dcn_axis` key, else "data"."""
  sizes, configured = split_mesh_config(mesh)
  if dcn_axis is not None and configured is not None and dcn_axis != configured:
    raise ValueError(f"DCN axis {dcn_axis!r} disagrees with the config's mesh.{DCN_AXIS_KEY}="
                     f"{configured!r}, which the job uses: set mesh.{DCN_AXIS_KEY} in the config "
                     "argument instead")
  return sizes, dcn_axis or configured or "data"


def resolve_axes(mesh: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """`mesh` with its one -1 (if any) filled so the sizes multiply to `num_devices`.

  Raises ValueError naming the axes when the sizes cannot fit `num_devices`.
  """
  sizes = dict(mesh)
  if not sizes:
    raise ValueError("Empty mesh: give at least one axis, e.g. {'data': 1, 'fsdp': -1}")
  free = [a for a, s in sizes.items() if s == -1]
  if len(free) > 1:
    raise ValueError(f"Mesh {sizes}: at most one axis may be -1, got {free}")
  bad = [a for a, s in sizes.items() if s != -1 and s < 1]
  if bad:
    raise ValueError(f"Mesh {sizes}: axis sizes must be positive or -1, not {bad}")
  fixed = math.prod(s for s in sizes.values() if s != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(f"Mesh {sizes}: the fixed axes ({fixed} devices) do not divide "
                       f"{num_devices} devices")
    sizes[free[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(f"Mesh {sizes} has {fixed} devices, the slice has {num_devices}")
  return sizes


@dataclasses.dataclass(frozen=True)
class MeshPlan:
  """How the config's mesh maps onto ICI (inside a slice) and DCN (across slices)."""
  axes: tuple[str, ...]
  ici: dict[str, int]  # Per slice; product = devices per slice.
  dcn: dict[str, int]  # Across slices; product = number of slices.
  mesh: dict[str, int]  # Global = ici * dcn per axis.
  dcn_axis: str = "data"  # The axis across slices (only it has a DCN size > 1).

  @property
  def ici_shape(self) -> tuple[int, ...]:
    return tuple(self.ici[a] for a in self.axes)

  @property
  def dcn_shape(self) -> tuple[int, ...]:
    return tuple(self.dcn[a] for a in self.axes)

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(self.mesh[a] for a in self.axes)


def plan_mesh(mesh: Mapping[str, int | str], devices_per_slice: int, num_slices: int = 1,
              dcn_axis: str | None = None) -> MeshPlan:
  """Splits the config's global `mesh` (-1 allowed) into ICI (per slice) and DCN (across slices).

  The config mesh covers all devices of the job, as `viit_jax.sharding.make_mesh` builds it; it may
  carry the config's `dcn_axis` key. With several slices, the DCN axis (`dcn_axis`, else the mesh's
  `dcn_axis`, else "data") must be a multiple of `num_slices`: that many of its entries go across
  slices (DCN), the rest of it and every other axis stay inside a slice (ICI).
  """
  if num_slices < 1:
    raise ValueError(f"num_slices must be >= 1, got {num_slices}")
  sizes, dcn_axis = _dcn_axis(mesh, dcn_axis)
  glob = resolve_axes(sizes, devices_per_slice * num_slices)
  if num_slices > 1:
    if dcn_axis not in glob:
      raise ValueError(f"DCN axis {dcn_axis!r} is not a mesh axis ({list(glob)})")
    if glob[dcn_axis] % num_slices:
      others = [a for a in glob if a != dcn_axis]
      raise ValueError(
          f"Mesh {glob} over {num_slices} slices: the {dcn_axis!r} axis ({glob[dcn_axis]}) must be "
          f"a multiple of the number of slices, which it spans over DCN. Set e.g. "
          f"mesh.{dcn_axis}={num_slices} with {' or '.join(f'mesh.{a}=-1' for a in others)} "
          "in the config argument")
  dcn = {a: (num_slices if a == dcn_axis else 1) for a in glob}
  return MeshPlan(axes=tuple(glob), ici={a: glob[a] // dcn[a] for a in glob}, dcn=dcn, mesh=glob,
                  dcn_axis=dcn_axis)


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
  """Everything about where a job runs, printable before it is launched."""
  tpu: TpuSlice
  num_slices: int
  mesh: MeshPlan
  batch_size: int | None

  @property
  def num_processes(self) -> int:
    """JAX processes of the whole job (one per host of every slice)."""
    return self.tpu.hosts * self.num_slices

  @property
  def num_devices(self) -> int:
    return self.tpu.chips * self.num_slices

  def warnings(self) -> list[str]:
    """Things that will not work or will be slow, in words."""
    out = []
    if self.batch_size is not None and self.batch_size % self.num_processes:
      out.append(f"global batch {self.batch_size} is not divisible by {self.num_processes} "
                 "processes (each host loads batch / processes examples)")
    if self.num_slices > 1 and self.tpu.generation in ("v5e", "v6e") and not self.tpu.multi_host:
      out.append("Multislice of single-host v5e/v6e slices: consider one larger slice")
    return out

  def __str__(self) -> str:
    t = self.tpu
    ax = ", ".join(self.mesh.axes)
    lines = [
        f"slice          {t.name} ({t.generation}): {t.chips} chips, {t.cores} TensorCores, "
        f"topology {t.topology}",
        f"hosts          {t.hosts} per slice x {t.chips_per_host} chips per host "
        f"({t.machine_type}, GKE label {t.gke_accelerator})",
        f"slices         {self.num_slices} (over DCN)" if self.num_slices > 1 else
        "slices         1",
        f"processes      {self.num_processes} JAX processes, {self.num_devices} devices",
        f"mesh axes      ({ax})",
        f"  ICI          {self.mesh.ici_shape}  per slice",
        f"  DCN          {self.mesh.dcn_shape}  across slices"
        + (f" (mesh.dcn_axis={self.mesh.dcn_axis})" if self.num_slices > 1 else ""),
        f"  global       {self.mesh.shape}  = {self.mesh.mesh}",
    ]
    if self.batch_size is not None:
      per = self.batch_size / self.num_processes
      lines.append(f"batch          {self.batch_size} global, {per:g} per host")
    lines += [f"WARNING        {w}" for w in self.warnings()]
    return "\n".join(lines)


def plan(slice_name: str, mesh: Mapping[str, int | str], num_slices: int = 1,
         dcn_axis: str | None = None, batch_size: int | None = None) -> LaunchPlan:
  """The launch plan of `num_slices` slices called `slice_name` running a config with `mesh` (the
  config's `mesh` section). The axis across slices is `dcn_axis` or the mesh's `dcn_axis` key (they
  must agree), else "data"."""
  tpu = parse_slice(slice_name)
  return LaunchPlan(tpu=tpu, num_slices=num_slices,
                    mesh=plan_mesh(mesh, tpu.devices, num_slices, dcn_axis), batch_size=batch_size)


def parse_mesh_arg(arg: str) -> dict[str, int | str]:
  """`'data=1,fsdp=-1,tensor=1'` -> {'data': 1, 'fsdp': -1, 'tensor': 1} (order kept); a
  `dcn_axis=<axis>` entry is kept as a string, as in a config's `mesh`."""
  out: dict[str, int | str] = {}
  for part in filter(None, (p.strip() for p in arg.split(","))):
    key, sep, value = part.partition("=")
    if not sep:
      key, sep, value = part.partition(":")
    if not sep or not key.strip():
      raise ValueError(f"Mesh argument {part!r} is not axis=size")
    key = key.strip()
    out[key] = value.strip() if key == DCN_AXIS_KEY else int(value)
  return out


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog="python -m launch.tpu_topology", description=__doc__)
  parser.add_argument("--slice", required=True, help="e.g. v5litepod-16, v5p-128, v4-8, v6e-256")
  parser.add_argument("--num_slices", type=int, default=1)
  parser.add_argument("--mesh", default="data=1,fsdp=-1,tensor=1",
                      help="the job's mesh, axis=size,... (one -1 allowed)")
  parser.add_argument("--dcn_axis", default=None,
                      help="mesh axis across slices (default: the mesh's dcn_axis, else data)")
  parser.add_argument("--batch_size", type=int, default=None)
  args = parser.parse_args(argv)
  try:
    p = plan(args.slice, parse_mesh_arg(args.mesh), args.num_slices, args.dcn_axis,
             args.batch_size)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(p)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

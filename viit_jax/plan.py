"""The pod plan: a config's program compiled by the real TPU compiler, on a CPU-only machine.

  python -m viit_jax.plan --config=configs/<x>.py[:key=value,...] --topology=v5e-128 \
      [--num_slices=N] [--full_flops]
  python -m viit_jax.plan --cost [--mfu=0.4] [--decode_mfu=0.1] [--compiled --topology=...]

The first form needs `libtpu` (the `[tpu]` extra). `jax.experimental.topologies.get_topology_desc`
describes the slice's devices without any TPU attached; the config's mesh is built on them
(`sharding.make_mesh`, Multislice over `mesh.dcn_axis` with --num_slices > 1) and the program its
entry point runs (viit_jax.aot) is lowered with abstract arguments and compiled by libtpu's XLA:

  - a VLM phase (viit_jax.train) or the dual encoder (viit_jax.train_dual_encoder): the train step
    `loop.run` compiles, over the whole slice;
  - auto-labeling (viit_jax.autolabel): the decode step (prefill + the extend while-loop with K
    samples) on one host's chips, as each host decodes its own work units.

The model is built from the config alone (no data, no checkpoint, no tokenizer): the vocabulary is
the variant's unless `model.vocab_size` is set (for the PaliGemma variants that is the tokenizer's
257,152). The report (aot.compile_report) ends with

  total per chip: X GiB of Y GiB HBM

Y being the generation's HBM (HBM_GIB). Exit code 1 when the program does not fit (the total is
above HBM, or the compiler refused it), 2 when the config cannot run on the topology (e.g. a batch
the mesh cannot split).

`--cost`: chips x hours of the paper's whole method (stage 1, stage 2, auto-labeling, the dual
encoder) on each TPU generation from analytic FLOPs and a stated MFU of the published bf16 peak;
every assumption is printed beside its number. `--cost --compiled` takes the training phases'
FLOPs from the compiler on --topology, every layer counted (aot.layer_extrapolated_flops).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

from launch import tpu_topology
from viit_jax import aot
from viit_jax import flops
from viit_jax import sharding as sharding_lib

# HBM per chip (GiB) and dense bf16 peak (TFLOP/s per chip). v5e (16, 197), v5p (95, 459) and v6e
# (32, 918): the "key specifications" tables of docs.cloud.google.com/tpu/docs/v5e, /v5p-training
# and /v6e (they say "GB"; libtpu's compiler reports 15.75G available of a v5e chip's 16 GiB).
# v4 (32, 275): the v4 system-architecture page, not re-checked here.
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
PEAK_BF16_TFLOPS = {"v4": 275, "v5e": 197, "v5p": 459, "v6e": 918}
# The libtpu generation names in topology names ("v5e:8x16") of each generation.
_GENERATION_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v5e": "v5e", "v4": "v4", "v5p": "v5p",
                       "v6e": "v6e"}


# ------------------------------------------------------------------------------------------------
# Topologies.
_HOST_SHAPES = {1: "1x1", 4: "2x2", 8: "2x4"}  # v5e / v6e chips per host -> libtpu shape.


@dataclasses.dataclass(frozen=True)
class Topology:
  """One slice as libtpu names it, and its generation's figures."""
  name: str  # What the user passed, e.g. "v5e-128".
  topology_name: str  # libtpu's, e.g. "v5e:8x16".
  generation: str  # v4 | v5e | v5p | v6e
  chips: int  # Per slice.
  chips_per_host: int

  @property
  def hbm_gib(self) -> float:
    return HBM_GIB[self.generation]


def parse_topology(name: str) -> Topology:
  """`v5e-128` / `v5litepod-128` / `v6e-256` / `v5p-256` (TensorCores, as Cloud TPU names v4/v5p)
  / a libtpu topology name `v5e:8x16` -> Topology."""
  name = name.strip()
  if ":" in name:
    gen, shape = name.split(":", 1)
    generation = _GENERATION_ALIASES.get(gen)
    if generation is None or not re.fullmatch(r"\d+(x\d+)+", shape):
      raise ValueError(f"unknown topology {name!r}: expected e.g. v5e:8x16 or v5p:4x4x8")
    chips = math.prod(int(d) for d in shape.split("x"))
    single_host = generation in ("v5e", "v6e") and chips <= 8
    return Topology(name, f"{generation}:{shape}", generation, chips, chips if single_host else 4)
  m = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", name)
  if not m:
    raise ValueError(f"unknown topology {name!r}: expected e.g. v5e-128, v6e-256, v5p-256, v4-128 "
                     "or a libtpu name such as v5e:8x16")
  prefix = "v5litepod" if m.group(1) == "v5e" else m.group(1)
  tpu = tpu_topology.parse_slice(f"{prefix}-{m.group(2)}")
  return Topology(name, tpu.topology_name, tpu.generation, tpu.chips, tpu.chips_per_host)


def topology_devices(topology: Topology, num_slices: int = 1) -> list[Any]:
  """The slice's devices as libtpu describes them (no TPU needed; libtpu must be installed)."""
  # Compiling needs no chip: skip libtpu's one-process-per-host lock, which another process
  # using libtpu (a test, a second plan) holds.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  return list(topologies.get_topology_desc(topology_name=topology.topology_name, platform="tpu",
                                           num_slices=num_slices).devices)


# ------------------------------------------------------------------------------------------------
# Configs and plans.


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`configs/x.py[:key=value,...]` -> the locked config (as the entry points' --config)."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(
      f"viit_plan_config_{os.path.basename(path)[:-3]}", path)
  if module_spec is None or module_spec.loader is None:
    raise ValueError(f"cannot load config file {path!r}")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def plan(config: ml_collections.ConfigDict, topology: Topology, num_slices: int = 1, *,
         full_flops: bool = False, train_step_only: bool = False) -> list[aot.Report]:
  """Compiles `config`'s programs (aot.programs_of; only the first with `train_step_only`) for
  `num_slices` x `topology` and measures them per chip.

  Trainers: the train step (and a VLM phase's eval decode step) over the whole slice(s).
  Auto-labeling: the decode step on one host's chips (each process decodes its own work units on
  a mesh of its own devices).
  """
  if aot.is_decode_config(config):
    # libtpu does not compile a program for a subset of a v5e slice's devices ("device assignment
    # should include all slice devices"), so the host's chips are compiled as their own topology.
    host = parse_topology(f"{topology.generation}:{_HOST_SHAPES[topology.chips_per_host]}"
                          if topology.generation in ("v5e", "v6e") else
                          f"{topology.generation}:2x2x1")
    devices = topology_devices(host, 1)
    hosts = topology.chips // topology.chips_per_host * num_slices
    where = (f"one host's {len(devices)} chips, compiled as {host.topology_name} (auto-labeling: "
             f"each of the {hosts} hosts decodes its own units)")
  else:
    devices = topology_devices(topology, num_slices)
    where = f"{len(devices)} chips"
  mesh = sharding_lib.make_mesh(dict(config.mesh), devices)
  # The abstract state comes from eval_shape with an eager PRNG key made on the host's CPU,
  # outside any topology mesh context (eager ops cannot run on topology devices).
  programs = aot.programs_of(config, mesh)
  reports = [aot.compile_report(p, topology.hbm_gib, full_flops=full_flops)
             for p in programs[:1 if train_step_only else None]]
  for report in reports:
    report.lines.insert(1, (
        f"topology {topology.name} = {topology.topology_name} x {num_slices} slice(s): {where} "
        f"({topology.generation}, {topology.hbm_gib:g} GiB HBM, "
        f"{PEAK_BF16_TFLOPS[topology.generation]} bf16 TFLOP/s per chip); mesh "
        f"{dict(mesh.shape)}"))
  return reports


# ------------------------------------------------------------------------------------------------
# Cost of the paper's method.


@dataclasses.dataclass(frozen=True)
class Phase:
  """One phase of the method for the cost table."""
  name: str
  config: str  # Config file (its model, frames, text length, remat, freeze).
  steps: int
  batch: int
  slice: str  # Where the paper's plan runs it (docs/plan.md): step time and hours on it.
  note: str


PAPER_PHASES = (
    Phase("stage 1 (visual adaptation)", "configs/paligemma_phase1.py", 40_000, 64, "v5e-128",
          "40K steps x batch 64, LM frozen (paper, Stage 1)"),
    Phase("stage 2 (VIIT)", "configs/paligemma_phase2.py", 10_000, 256, "v5e-128",
          "10K steps x batch 256 (paper, Stage 2)"),
    Phase("dual encoder (ViT-st-L)",
          "configs/dual_encoder_videocc.py:model.variant=siglip-l16-video", 137_000, 1024,
          "v5e-128",
          "137K steps (20 epochs of ~7M clips) x batch 1024, ViT-st-L/16 + SigLIP L text"),
)
LABEL_CLIPS = 17_000_000
LABEL_CONFIG = "configs/autolabel_webvid.py"  # Its decode.num_samples is the paper's K = 4.
LABEL_SLICE = "v5e-256"
LABEL_STEP_CLIPS = 1024  # Clips per "step" of the labeling row.


def _phase_flops(phase: Phase, compiled_on: Topology | None) -> tuple[float, str]:
  """Training FLOPs per step of a phase: compiled on `compiled_on` with every layer counted
  (aot.layer_extrapolated_flops), else analytic."""
  config = load_config(f"{phase.config}{',' if ':' in phase.config else ':'}"
                       f"train.batch_size={phase.batch}")
  fallback = ""
  if compiled_on is not None:
    try:
      p = plan(config, compiled_on, full_flops=True, train_step_only=True)[0]
    except ValueError as e:  # E.g. a batch the topology's mesh cannot split.
      fallback = f"; not compiled on {compiled_on.name}: {e}"
    else:
      if p.compiled_flops is not None:
        return p.compiled_flops, f"compiled on {compiled_on.name}, every layer counted"
      fallback = f"; the compiler on {compiled_on.name} gave no FLOPs (does the step fit?)"
  one_device = sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
  program = aot.train_program(config, one_device)  # Analytic figures only: nothing compiled.
  return program.analytic.hardware, f"analytic, remat {config.model.remat_policy}{fallback}"


def labeling_flops_per_clip(config_path: str = LABEL_CONFIG) -> tuple[float, str]:
  """Forward FLOPs to caption one clip K times with an auto-labeling config's model and decode
  settings (flops.analytic_decode_flops: prefill once, K x L extend steps)."""
  config = load_config(config_path)
  cfg = aot.decode_model_config(config)
  a = flops.analytic_decode_flops(cfg, 1, aot.decode_settings(config), aot.PROMPT_TOKENS)
  return a.hardware, a.formula


def cost_table(mfu: float, decode_mfu: float, compiled_on: Topology | None = None) -> list[str]:
  """The cost table's lines: per phase its FLOPs per step, the step time and hours assumed on its
  slice, and chip-hours on each TPU generation."""
  gens = ("v4", "v5e", "v5p", "v6e")
  lines = [f"assumptions: MFU {mfu:.0%} of the bf16 peak for training, {decode_mfu:.0%} for "
           "auto-labeling (decode is memory-bound); peak bf16 TFLOP/s per chip: "
           + ", ".join(f"{g} {PEAK_BF16_TFLOPS[g]}" for g in gens)
           + "; step time = FLOPs per step / (chips x peak x MFU)",
           f"{'phase':<30} {'FLOPs/step':>10} {'steps':>8}  {'slice':<8} {'step time':>9} "
           f"{'hours':>6}  " + " ".join(f"{g + ' chip-h':>11}" for g in gens) + "  basis"]
  rows = []
  for phase in PAPER_PHASES:
    flops, basis = _phase_flops(phase, compiled_on)
    rows.append((phase.name, flops, phase.steps, phase.slice, mfu, f"{phase.note}; {basis}"))
  per_clip, basis = labeling_flops_per_clip()
  rows.append((f"auto-labeling ({LABEL_CLIPS / 1e6:g}M clips)", per_clip * LABEL_STEP_CLIPS,
               math.ceil(LABEL_CLIPS / LABEL_STEP_CLIPS), LABEL_SLICE, decode_mfu,
               f"{LABEL_CLIPS:,} clips, a step = {LABEL_STEP_CLIPS} clips; {basis} "
               f"({LABEL_CONFIG}'s model and decode settings; a {aot.PROMPT_TOKENS}-token prompt "
               "assumed; analytic: XLA counts the extend loop once)"))
  for name, flops, steps, where, m, basis in rows:
    chip_h = {g: flops * steps / (PEAK_BF16_TFLOPS[g] * 1e12 * m) / 3600 for g in gens}
    t = parse_topology(where)
    step_s = flops / (t.chips * PEAK_BF16_TFLOPS[t.generation] * 1e12 * m)
    lines.append(f"{name:<30} {flops:>10.3e} {steps:>8,}  {where:<8} {step_s:>8.2f}s "
                 f"{step_s * steps / 3600:>6.1f}  "
                 + " ".join(f"{chip_h[g]:>11,.0f}" for g in gens) + f"  {basis}")
  return lines


# ------------------------------------------------------------------------------------------------
# Entry point.


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m viit_jax.plan", description=__doc__.split(
      "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", help="configs/<x>.py[:key=value,...]")
  parser.add_argument("--topology", default="v5e-128",
                      help="slice: v5e-128, v6e-256, v5p-256 (TensorCores), v4-128 or v5e:8x16")
  parser.add_argument("--num_slices", type=int, default=1)
  parser.add_argument("--cost", action="store_true", help="print the paper's cost table")
  parser.add_argument("--compiled", action="store_true",
                      help="--cost: training FLOPs from the compiler on --topology, every layer "
                      "counted (see --full_flops)")
  parser.add_argument("--full_flops", action="store_true",
                      help="also compile with 1-2 unrolled layers per stack and extrapolate the "
                      "compiled FLOPs to every layer (XLA counts a scanned stack's body once)")
  parser.add_argument("--mfu", type=float, default=0.4, help="--cost: training MFU")
  parser.add_argument("--decode_mfu", type=float, default=0.1, help="--cost: auto-labeling MFU")
  args = parser.parse_args(argv)
  if not os.environ.get("JAX_PLATFORMS"):  # Compile-only: eager ops (PRNG keys) on the host CPU.
    jax.config.update("jax_platforms", "cpu")
  if args.cost:
    on = parse_topology(args.topology) if args.compiled else None
    print("\n".join(cost_table(args.mfu, args.decode_mfu, on)), flush=True)
    return 0
  if not args.config:
    parser.error("--config is required (or --cost)")
  config = load_config(args.config)
  topology = parse_topology(args.topology)
  try:
    reports = plan(config, topology, args.num_slices, full_flops=args.full_flops)
  except ValueError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return 2
  print("\n\n".join("\n".join(r.lines) for r in reports), flush=True)
  code = 0
  for r in reports:
    if not r.fits:
      print(f"ERROR: {r.lines[0].split(': ', 1)[1].split(',')[0]} does not fit: "
            f"{r.total_gib:.2f} GiB per chip > {topology.hbm_gib:g} GiB HBM of "
            f"{topology.generation}", file=sys.stderr, flush=True)
      code = 1
  return code


if __name__ == "__main__":
  sys.exit(main())

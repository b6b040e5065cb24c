"""The pod plan: a config's train step compiled by the real TPU compiler, on a CPU-only machine.

  python -m viit_jax.plan --config=configs/<x>.py[:key=value,...] --topology=v5e-128 \
      [--num_slices=N]
  python -m viit_jax.plan --cost [--mfu=0.4] [--decode_mfu=0.1]

The first form needs `libtpu` (the `[tpu]` extra). `jax.experimental.topologies.get_topology_desc`
describes the slice's devices without any TPU attached; the config's mesh is built on them
(`sharding.make_mesh`, Multislice over `mesh.dcn_axis` with --num_slices > 1) and the program the
entry point runs is lowered with abstract arguments and compiled by libtpu's XLA:

  - a VLM phase (viit_jax.train): `loop.state_spec` + `loop.compile_step`, exactly what `loop.run`
    compiles (donated state, Adafactor/AdamW state, micro-batches, remat, frozen towers);
  - the dual encoder (viit_jax.train_dual_encoder): the same loop with the contrastive loss.

The model is built from the config alone (no data world, no tokenizer): the vocabulary is the
variant's unless `model.vocab_size` is set (the trainers use the tokenizer's size, which for the
PaliGemma variants is the variant's 257,152). The auto-labeling decode step and evaluation are not
compiled yet (issue 21).

Printed per chip, from `compiled.memory_analysis()`: arguments, split into parameters, optimizer
state and batch by the abstract state's shard sizes; outputs; temporaries; donated (aliased) bytes;
generated code; the last line is

  total per chip: X GiB of Y GiB HBM

with total = arguments + outputs - aliased + temporaries + generated code, and Y the generation's
HBM (HBM_GIB). FLOPs per step: compiled (`cost_analysis()["flops"]`, per chip, times the chips) and
analytic (`analytic_step_flops`), with their ratio; XLA counts a while-loop body once, so with
scanned layers (`model.scan=True`) the compiled figure covers one layer per stack. Collectives: the
bytes of the all-gather / all-reduce / reduce-scatter / all-to-all / collective-permute results in
the compiled HLO (static: an op inside a loop, e.g. the scanned layers, counts once). Exit code 1
when the total exceeds HBM, 2 when the config cannot run on the topology (e.g. a batch the mesh
cannot split).

`--cost`: chips x hours of the paper's whole method (stage 1, stage 2, auto-labeling, the dual
encoder) on each TPU generation from analytic FLOPs and a stated MFU of the published bf16 peak;
every assumption is printed beside its number. `--cost --compiled` takes the training phases' FLOPs
from the compiler instead, with the layers unrolled (needs libtpu; minutes per config; not yet run
on the paper configs).
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

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from launch import tpu_topology
from viit_jax import loop
from viit_jax import optim
from viit_jax import programs
from viit_jax import sharding as sharding_lib
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

GIB = 2**30

# HBM per chip (GiB) and dense bf16 peak (TFLOP/s per chip). v5e (16, 197), v5p (95, 459) and v6e
# (32, 918): the "key specifications" tables of docs.cloud.google.com/tpu/docs/v5e, /v5p-training
# and /v6e (they say "GB"; libtpu's compiler reports 15.75G available of a v5e chip's 16 GiB).
# v4 (32, 275): the v4 system-architecture page, not re-checked here.
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
PEAK_BF16_TFLOPS = {"v4": 275, "v5e": 197, "v5p": 459, "v6e": 918}
# The libtpu generation names in topology names ("v5e:8x16") of each generation.
_GENERATION_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v5e": "v5e", "v4": "v4", "v5p": "v5p",
                       "v6e": "v6e"}
_COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}


class DoesNotFit(RuntimeError):
  """The compiled program needs more memory per chip than the chip's HBM."""


# ------------------------------------------------------------------------------------------------
# Topologies.


@dataclasses.dataclass(frozen=True)
class Topology:
  """One slice as libtpu names it, and its generation's figures."""
  name: str  # What the user passed, e.g. "v5e-128".
  topology_name: str  # libtpu's, e.g. "v5e:8x16".
  generation: str  # v4 | v5e | v5p | v6e
  chips: int  # Per slice.

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
    return Topology(name, f"{generation}:{shape}", generation,
                    math.prod(int(d) for d in shape.split("x")))
  m = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", name)
  if not m:
    raise ValueError(f"unknown topology {name!r}: expected e.g. v5e-128, v6e-256, v5p-256, v4-128 "
                     "or a libtpu name such as v5e:8x16")
  prefix = "v5litepod" if m.group(1) == "v5e" else m.group(1)
  tpu = tpu_topology.parse_slice(f"{prefix}-{m.group(2)}")
  return Topology(name, tpu.topology_name, tpu.generation, tpu.chips)


def topology_devices(topology: Topology, num_slices: int = 1) -> list[Any]:
  """The slice's devices as libtpu describes them (no TPU needed; libtpu must be installed)."""
  # Compiling needs no chip: skip libtpu's one-process-per-host lock, which another process
  # using libtpu (a test, a second plan) holds.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  return list(topologies.get_topology_desc(topology_name=topology.topology_name, platform="tpu",
                                           num_slices=num_slices).devices)


# ------------------------------------------------------------------------------------------------
# The program of a config, built without data.


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


@dataclasses.dataclass(frozen=True)
class Program:
  """What a config's entry point compiles: its trainer, model config and loop.Task."""
  trainer: str  # "vlm" (viit_jax.train) | "dual_encoder" (viit_jax.train_dual_encoder)
  model_cfg: variants.ModelConfig
  task: loop.Task


def build_program(config: ml_collections.ConfigDict) -> Program:
  """The trainer's loop.Task of `config` (model, loss, batch shapes) without its data or eval."""
  kind = variants.get_config(config.model.variant)
  if isinstance(kind, vlm_lib.VLMConfig):
    cfg = programs.vlm_model_config(config)
    return Program("vlm", cfg, programs.vlm_task(config, cfg))
  if isinstance(kind, de_lib.DualEncoderConfig):
    cfg = programs.dual_encoder_model_config(config)
    return Program("dual_encoder", cfg, programs.dual_encoder_task(config, cfg))
  raise ValueError(f"model.variant={config.model.variant!r} ({type(kind).__name__}) is neither a "
                   "VLM nor a dual encoder: viit_jax.plan compiles the trainers' steps only")


# ------------------------------------------------------------------------------------------------
# Analytic FLOPs.


def _towers_forward(cfg: variants.ModelConfig) -> dict[str, int]:
  """Forward FLOPs of one example per top-level parameter collection (img / llm / txt)."""
  if isinstance(cfg, vlm_lib.VLMConfig):
    t, text = cfg.img.num_frames, cfg.llm.seq_len
    return {"img": variants._vit_flops(cfg.img, t),  # pylint: disable=protected-access
            "llm": variants._gemma_flops(  # pylint: disable=protected-access
                cfg.llm, t * cfg.tokens_per_frame + text, text)}
  if isinstance(cfg, de_lib.DualEncoderConfig):
    return {"img": variants._vit_flops(  # pylint: disable=protected-access
                cfg.img, cfg.img.num_frames),
            "txt": variants._text_flops(cfg.txt)}  # pylint: disable=protected-access
  raise TypeError(type(cfg).__name__)


@dataclasses.dataclass(frozen=True)
class AnalyticFlops:
  """Analytic FLOPs of one training step (global, all chips)."""
  model: float  # Forward + backward actually needed (see analytic_step_flops).
  hardware: float  # + the forward recomputed by remat.
  six_nd: float  # 6 x params x tokens, the usual rule of thumb.
  formula: str


def analytic_step_flops(cfg: variants.ModelConfig, batch: int, trainable: Sequence[str],
                        remat_policy: str) -> AnalyticFlops:
  """FLOPs of one step from the model's analytic forward FLOPs (variants._*_flops: matmuls and
  attention, 2 per multiply-add).

  model = B x sum_tower F_tower x m_tower, m = 3 for a tower with trainable weights (forward, the
  activations' and the weights' gradients), 2 for a frozen tower the gradient must cross to reach a
  trainable one (phase 1's frozen LM, downstream of the trained ViT), 1 for a frozen tower nothing
  trainable precedes; hardware = model + B x sum F (remat recomputes the forward: exact for
  'full', an upper bound for the partial policies) unless remat_policy is 'none';
  six_nd = 6 x params x B x tokens (visual + text).
  """
  fwd = _towers_forward(cfg)
  trained = {name.split("/")[0] for name in trainable}
  mult = {}
  for tower in fwd:
    if tower in trained:
      mult[tower] = 3
    elif isinstance(cfg, vlm_lib.VLMConfig) and tower == "llm" and "img" in trained:
      mult[tower] = 2
    else:
      mult[tower] = 1
  model = batch * sum(fwd[k] * mult[k] for k in fwd)
  hardware = model + (batch * sum(fwd.values()) if remat_policy != "none" else 0)
  if isinstance(cfg, vlm_lib.VLMConfig):
    tokens = cfg.img.num_frames * cfg.tokens_per_frame + cfg.llm.seq_len
  else:
    tokens = cfg.img.num_frames * cfg.img.num_patches + cfg.txt.seq_len
  six_nd = 6 * variants.count_params(cfg) * batch * tokens
  formula = (f"B x sum_tower fwd x m (m: {', '.join(f'{k} {v}' for k, v in mult.items())}; "
             "3 trained, 2 frozen but crossed by the gradient, 1 frozen)"
             + (" + B x fwd (remat)" if remat_policy != "none" else ""))
  return AnalyticFlops(model, hardware, six_nd, formula)


# ------------------------------------------------------------------------------------------------
# Compile and report.


def _shard_bytes(tree: Any) -> int:
  """Bytes one chip holds of a tree of ShapeDtypeStructs with shardings."""
  total = 0
  for x in jax.tree_util.tree_leaves(tree):
    shape = x.sharding.shard_shape(x.shape) if x.sharding is not None else x.shape
    total += math.prod(shape) * jnp.dtype(x.dtype).itemsize
  return total


def _format_bytes(b: float) -> str:
  for unit, size in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
    if abs(b) >= size:
      return f"{b / size:.2f} {unit}"
  return f"{b:.0f} B"


def collective_bytes(hlo_text: str) -> dict[str, int]:
  """Result bytes per collective kind in compiled HLO text (static: a loop body counts once)."""
  out = {k: 0 for k in _COLLECTIVES}
  shape_re = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
  op_re = re.compile(r"=\s*(.*?)\s(" + "|".join(_COLLECTIVES) + r")(-start)?\(")
  for line in hlo_text.splitlines():
    m = op_re.search(line)
    if not m:
      continue
    for dtype, dims in shape_re.findall(m.group(1)):
      n = math.prod(int(v) for v in dims.split(",") if v) if dims else 1
      out[m.group(2)] += n * _DTYPE_BYTES[dtype]
  return out


@dataclasses.dataclass
class Plan:
  """The figures `plan` prints."""
  lines: list[str]
  total_gib: float
  hbm_gib: float
  compiled_flops: float | None  # Global (per-chip cost_analysis x chips).
  analytic: AnalyticFlops
  memory: dict[str, int] = dataclasses.field(default_factory=dict)  # Bytes per chip by kind.

  @property
  def fits(self) -> bool:
    return self.total_gib <= self.hbm_gib


def plan(config: ml_collections.ConfigDict, topology: Topology, num_slices: int = 1) -> Plan:
  """Compiles `config`'s train step for `num_slices` x `topology` and measures it per chip.

  When libtpu's compiler itself refuses the program (RESOURCE_EXHAUSTED: more than the chip's HBM),
  the plan reports its message and the amount it names (a lower bound of the total) and does not
  fit.
  """
  program = build_program(config)
  devices = topology_devices(topology, num_slices)
  chips = len(devices)
  mesh = sharding_lib.make_mesh(dict(config.mesh), devices)
  b, m = int(config.train.batch_size), int(config.train.micro_batches)
  ways = sharding_lib.batch_devices(mesh)
  split = math.gcd(b // max(m, 1), chips)
  if b % m or (b // m) % ways:
    raise ValueError(
        f"train.batch_size {b} in {m} micro-batch(es) of {b // max(m, 1)} cannot be split over the "
        f"{ways} batch shards of mesh {dict(mesh.shape)} (the batch is sharded over data x fsdp): "
        f"choose a mesh whose data x fsdp divides {b // max(m, 1)}, e.g. "
        f"mesh.fsdp={split},mesh.tensor={chips // split}")
  # Abstract state: eval_shape of the init with an eager PRNG key made on the host's CPU, outside
  # any topology mesh context (eager ops cannot run on topology devices).
  spec = loop.state_spec(program.task, config, mesh)
  state = spec.abstract_state
  params_b, opt_b = _shard_bytes(state["params"]), _shard_bytes(state["opt"])
  batch_sharding = jax.sharding.NamedSharding(mesh, sharding_lib.batch_spec())
  batch_b = _shard_bytes({k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sharding)
                          for k, v in program.task.batch_spec.items()})
  hbm = topology.hbm_gib
  analytic = analytic_step_flops(program.model_cfg, int(config.train.batch_size), spec.trainable,
                                 str(config.model.remat_policy))
  n_params = optim.tree_size(state["params"])
  n_train = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(
      optim.split_params(state["params"], config.optim.freeze)[0]))
  g = _format_bytes
  lines = [
      f"config {config.experiment}: {program.trainer} train step, model {config.model.variant} "
      f"({n_params:,} params, {n_train:,} trainable), batch {config.train.batch_size} "
      f"(micro-batches {config.train.micro_batches}), remat {config.model.remat_policy}",
      f"topology {topology.name} = {topology.topology_name} x {num_slices} slice(s): {chips} chips "
      f"({topology.generation}, {hbm:g} GiB HBM, {PEAK_BF16_TFLOPS[topology.generation]} bf16 "
      f"TFLOP/s per chip); mesh {dict(mesh.shape)}",
  ]
  try:
    compiled = loop.compile_step(program.task, config, mesh, spec)
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    message = str(e).strip().splitlines()[0]
    named = [float(v) for v in re.findall(r"\(([\d.]+)G\)", message)]
    need = named[0] if named else math.inf
    lines += [
        "per chip (from the abstract state; the compiler gave no memory analysis):",
        f"  parameters {g(params_b)}, optimizer state {g(opt_b)}, batch {g(batch_b)}",
        f"the TPU compiler refused the program: {message}",
        f"analytic FLOPs per step {analytic.hardware:.4g} [{analytic.formula}]",
        f"total per chip: {need:.4g} GiB of {hbm:g} GiB HBM",
    ]
    return Plan(lines, need, hbm, None, analytic,
                {"parameters": params_b, "optimizer": opt_b, "batch": batch_b})

  ma = compiled.memory_analysis()
  arg, out = ma.argument_size_in_bytes, ma.output_size_in_bytes
  temp, alias = ma.temp_size_in_bytes, ma.alias_size_in_bytes
  code = ma.generated_code_size_in_bytes
  total = arg + out - alias + temp + code
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  cost = dict(cost or {})
  per_chip_flops = cost.get("flops")
  compiled_flops = float(per_chip_flops) * chips if per_chip_flops is not None else None
  coll = collective_bytes(compiled.as_text() or "")
  cost_coll = {k: v for k, v in cost.items() if any(c in k for c in _COLLECTIVES)}
  lines += [
      "per chip (compiled memory_analysis):",
      f"  arguments        {g(arg)} = parameters {g(params_b)} + optimizer state {g(opt_b)} + "
      f"batch {g(batch_b)} + other (step, TPU tile padding) {g(arg - params_b - opt_b - batch_b)}",
      f"  outputs          {g(out)} (aliased to donated arguments: {g(alias)})",
      f"  temporaries      {g(temp)}",
      f"  generated code   {g(code)}",
      "  total = arguments + outputs - aliased + temporaries + code",
  ]
  if compiled_flops is not None:
    lines.append(f"FLOPs per step: compiled {compiled_flops:.4g} ({float(per_chip_flops):.4g} per "
                 f"chip x {chips}); analytic {analytic.hardware:.4g} [{analytic.formula}]; "
                 f"compiled / analytic = {compiled_flops / analytic.hardware:.3f}")
  else:
    lines.append(f"FLOPs per step: compiled n/a (cost_analysis reports no flops); analytic "
                 f"{analytic.hardware:.4g} [{analytic.formula}]")
  if config.model.scan:
    lines.append("  note: XLA's cost analysis counts a while-loop body once, so with "
                 "model.scan=True (scanned layer stacks) the compiled FLOPs hold one layer per "
                 "stack; compile with "
                 "model.scan=false to reconcile (the test model: 0.74 scanned, 1.23 unrolled)")
  lines.append(f"  without remat {analytic.model:.4g}; 6 x params x tokens = "
               f"{analytic.six_nd:.4g} (rule of thumb: every tower trained, no attention)")
  if cost_coll:
    lines.append("collectives (cost_analysis): " + ", ".join(
        f"{k} {v:.4g}" for k, v in sorted(cost_coll.items())))
  else:
    lines.append("collectives: cost_analysis reports none; from the compiled HLO (result bytes per "
                 "chip, static count: a loop body, e.g. scanned layers, counts once): "
                 + ", ".join(f"{k} {g(v)}" for k, v in coll.items()))
  lines.append(f"total per chip: {total / GIB:.4g} GiB of {hbm:g} GiB HBM")
  memory = {"arguments": arg, "parameters": params_b, "optimizer": opt_b, "batch": batch_b,
            "outputs": out, "aliased": alias, "temporaries": temp, "code": code, "total": total}
  return Plan(lines, total / GIB, hbm, compiled_flops, analytic, memory)


# ------------------------------------------------------------------------------------------------
# Cost of the paper's method.


@dataclasses.dataclass(frozen=True)
class Phase:
  """One phase of the method for the cost table."""
  name: str
  config: str  # Config file (its model, frames, text length, remat, freeze).
  steps: int
  batch: int
  note: str


PAPER_PHASES = (
    Phase("stage 1 (visual adaptation)", "configs/paligemma_phase1.py", 40_000, 64,
          "40K steps x batch 64, LM frozen (paper, Stage 1)"),
    Phase("stage 2 (VIIT)", "configs/paligemma_phase2.py", 10_000, 256,
          "10K steps x batch 256 (paper, Stage 2)"),
    Phase("dual encoder", "configs/dual_encoder_videocc.py", 137_000, 1024,
          "137K steps x batch 1024 (configs/dual_encoder_videocc.py)"),
)
LABEL_CLIPS = 17_000_000
LABEL_K = 4  # The paper's K captions per clip (configs/autolabel_webvid.py: decode.num_samples).
LABEL_CONFIG = "configs/autolabel_webvid.py"


def _phase_flops(phase: Phase, compiled_on: Topology | None) -> tuple[float, str]:
  """Training FLOPs per step of a phase: compiled when `compiled_on` (with `model.scan=false`: XLA
  counts a scanned layer stack's body once), else analytic."""
  config = load_config(f"{phase.config}:train.batch_size={phase.batch}")
  fallback = ""
  if compiled_on is not None:
    try:
      p = plan(load_config(f"{phase.config}:train.batch_size={phase.batch},model.scan=false"),
               compiled_on)
    except ValueError as e:  # E.g. a batch the topology's mesh cannot split.
      fallback = f"; not compiled on {compiled_on.name}: {e}"
    else:
      if p.compiled_flops is not None:
        return p.compiled_flops, f"compiled on {compiled_on.name}, layers unrolled"
      fallback = f"; the compiler on {compiled_on.name} gave no FLOPs (does the step fit?)"
  program = build_program(config)
  params = variants.abstract_params(program.model_cfg)
  trainable, _ = optim.trainable_names(params, config.optim.freeze)
  a = analytic_step_flops(program.model_cfg, phase.batch, trainable, str(config.model.remat_policy))
  return a.hardware, f"analytic, remat {config.model.remat_policy}{fallback}"


def labeling_flops_per_clip(config_path: str = "configs/paligemma_phase2.py", k: int = LABEL_K,
                            prompt_len: int = 16, decode_len: int = 64) -> tuple[float, str]:
  """Forward FLOPs to caption one clip K times: one prefill (ViT + LM over visual + prompt tokens),
  then K x decode_len extend steps of 2 x LM params each plus attention over the cache."""
  config = load_config(config_path)
  cfg = build_program(config).model_cfg
  t = cfg.img.num_frames
  visual = t * cfg.tokens_per_frame
  prefill = (variants._vit_flops(cfg.img, t)  # pylint: disable=protected-access
             + variants._gemma_flops(  # pylint: disable=protected-access
                 cfg.llm, visual + prompt_len, 0))
  llm_params = variants.count_params(cfg) - sum(
      math.prod(x.shape) for x in jax.tree_util.tree_leaves(
          nn.unbox(variants.abstract_params(cfg))["img"]))
  ctx = visual + prompt_len + decode_len / 2
  per_token = (2 * llm_params
               + 2 * 2 * ctx * cfg.llm.num_heads * cfg.llm.head_dim * cfg.llm.depth)
  total = prefill + k * decode_len * per_token
  return total, (f"prefill once ({t} frames, {visual}+{prompt_len} tokens) + K={k} x "
                 f"{decode_len} tokens x (2 x LM params + cache attention)")


def cost_table(mfu: float, decode_mfu: float, compiled_on: Topology | None = None) -> list[str]:
  """The cost table's lines: chip-hours per phase and generation."""
  gens = ("v4", "v5e", "v5p", "v6e")
  lines = [f"assumptions: MFU {mfu:.0%} of the bf16 peak for training, {decode_mfu:.0%} for "
           "auto-labeling (decode is memory-bound); peak bf16 TFLOP/s per chip: "
           + ", ".join(f"{g} {PEAK_BF16_TFLOPS[g]}" for g in gens),
           f"{'phase':<30} {'FLOPs/step':>11} {'steps':>10}  "
           + "  ".join(f"{g + ' chip-h':>11}" for g in gens) + "  (v5e-256 hours)  basis"]
  rows = []
  for phase in PAPER_PHASES:
    flops, basis = _phase_flops(phase, compiled_on)
    rows.append((phase.name, flops, phase.steps, mfu, f"{phase.note}; {basis}"))
  label = load_config(LABEL_CONFIG)
  per_clip, basis = labeling_flops_per_clip(k=int(label.decode.num_samples),
                                            decode_len=int(label.decode.max_decode_len))
  basis += f" ({LABEL_CONFIG}'s decode settings; a 16-token prompt assumed)"
  unit = 1024  # Clips per "step" in the table.
  rows.append((f"auto-labeling ({LABEL_CLIPS / 1e6:g}M clips)", per_clip * unit,
               math.ceil(LABEL_CLIPS / unit), decode_mfu,
               f"{LABEL_CLIPS:,} clips, a step = {unit} clips; {basis}"))
  for name, flops, steps, m, basis in rows:
    chip_h = {g: flops * steps / (PEAK_BF16_TFLOPS[g] * 1e12 * m) / 3600 for g in gens}
    lines.append(f"{name:<30} {flops:>11.3e} {steps:>10,}  "
                 + "  ".join(f"{chip_h[g]:>11,.0f}" for g in gens)
                 + f"  ({chip_h['v5e'] / 256:>8.1f} h)  {basis}")
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
                      help="--cost: training FLOPs from the compiler on --topology, layers "
                      "unrolled (model.scan=false; slow: minutes per config)")
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
    p = plan(config, topology, args.num_slices)
  except ValueError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return 2
  print("\n".join(p.lines), flush=True)
  if not p.fits:
    print(f"ERROR: does not fit: {p.total_gib:.2f} GiB per chip > {p.hbm_gib:g} GiB HBM of "
          f"{topology.generation}", file=sys.stderr, flush=True)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""Programs compiled ahead of time, and what each costs per chip.

The entry points' programs, built from a config and a mesh with abstract arguments only (no data,
no checkpoint, no tokenizer), then compiled:

  - `train_program`: the train step `loop.run` compiles for a VLM phase (viit_jax.train) or a dual
    encoder (viit_jax.train_dual_encoder): donated state, optimizer state, micro-batches, remat,
    frozen towers;
  - `eval_decode_program`: the VLM trainer's in-training eval sampling (greedy continuation of a
    train-size batch), with the optimizer state resident meanwhile;
  - `decode_program`: the auto-labeling decode step (viit_jax.autolabel): prefill of the clip's
    visual tokens and the prompt, then the `lax.while_loop` extend that samples K captions from the
    tiled KV cache; parameters in `model.param_dtype`.

`programs_of(config, mesh)` is the list an entry point compiles.

`compile_report` compiles one and measures it per chip: `memory_analysis()` (arguments split into
parameters, optimizer state, batch and the rest by the abstract arguments' shard sizes; outputs;
donated (aliased) bytes; temporaries; generated code), FLOPs (`cost_analysis()`, per chip, times the
chips, set beside an analytic count) and the collectives' bytes in the compiled HLO. Its last line:

  total per chip: X GiB of Y GiB HBM

with total = arguments + outputs - aliased + temporaries + code. viit_jax.plan runs this for a TPU
slice described by libtpu (no TPU attached); the entry points' `--compile_only` runs it on their
own devices.

XLA's cost analysis counts a while-loop body once. A scanned layer stack (`model.scan=True`) is a
while loop, so `layer_extrapolated_flops` compiles the program unrolled with 1 and 2 layers per
stack and extrapolates linearly to the real depths (every layer of a stack is the same program).
The decode step's extend loop is counted once too: its analytic figure is given both for one
extend step (comparable with the compiled count) and for the whole call.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from viit_jax import decoding
from viit_jax import flops
from viit_jax import loop
from viit_jax import optim
from viit_jax import programs
from viit_jax import runtime
from viit_jax import sharding as sharding_lib
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

GIB = 2**30
# Prompt tokens assumed when no tokenizer is at hand (BOS + "caption en" + "\n" is ~5 for
# PaliGemma's; 16 leaves room for longer prompts).
PROMPT_TOKENS = 16
_COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}

Config = ml_collections.ConfigDict


# ------------------------------------------------------------------------------------------------
# Programs.


@dataclasses.dataclass(frozen=True)
class Program:
  """One program of an entry point, ready to lower on its mesh.

  Attributes:
    name: e.g. "vlm train step", "decode step".
    header: one line saying what it is (config, model, batch).
    model_cfg: the model it runs.
    mesh: where it runs.
    lower: () -> the program lowered with abstract arguments.
    parts: bytes per chip of named parts of its arguments (parameters, optimizer state, batch).
    analytic: its analytic FLOPs.
    with_depths: (img depth, text-side depth) -> the same program with those layer counts,
      unrolled (for layer_extrapolated_flops).
    resident: bytes per chip that stay allocated while it runs without being its arguments
      (the optimizer state during the trainer's eval).
  """
  name: str
  header: str
  model_cfg: variants.ModelConfig
  mesh: jax.sharding.Mesh
  lower: Callable[[], jax.stages.Lowered]
  parts: Mapping[str, int]
  analytic: flops.AnalyticFlops
  with_depths: Callable[[int, int], "Program"] | None = None
  resident: Mapping[str, int] = dataclasses.field(default_factory=dict)


def shard_bytes(tree: Any) -> int:
  """Bytes one chip holds of a tree of ShapeDtypeStructs with shardings."""
  total = 0
  for x in jax.tree_util.tree_leaves(tree):
    sharding = getattr(x, "sharding", None)
    shape = sharding.shard_shape(x.shape) if sharding is not None else x.shape
    total += math.prod(shape) * jnp.dtype(x.dtype).itemsize
  return total


def sharded_batch(spec: Mapping[str, jax.ShapeDtypeStruct], mesh: jax.sharding.Mesh
                  ) -> dict[str, jax.ShapeDtypeStruct]:
  """A batch's ShapeDtypeStructs with the batch sharding of `mesh` (leading axis split)."""
  sharding = jax.sharding.NamedSharding(mesh, sharding_lib.batch_spec())
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding) for k, v in spec.items()}


def _text_tower(cfg: variants.ModelConfig) -> str:
  return "llm" if isinstance(cfg, vlm_lib.VLMConfig) else "txt"


def _with_depths(cfg: variants.ModelConfig, img: int, text: int) -> variants.ModelConfig:
  tower = _text_tower(cfg)
  return dataclasses.replace(
      cfg, img=dataclasses.replace(cfg.img, depth=img, scan=False),
      **{tower: dataclasses.replace(getattr(cfg, tower), depth=text, scan=False)})


def _depths(cfg: variants.ModelConfig) -> tuple[int, int]:
  return cfg.img.depth, getattr(cfg, _text_tower(cfg)).depth


def train_program(config: Config, mesh: jax.sharding.Mesh,
                  model_cfg: variants.ModelConfig | None = None) -> Program:
  """The train step of `config` (a VLM phase or a dual encoder) on `mesh`.

  Raises:
    ValueError: the batch cannot be split over the mesh's batch axes, or the variant is not one a
      trainer trains.
  """
  kind = model_cfg or variants.get_config(config.model.variant)
  if isinstance(kind, vlm_lib.VLMConfig):
    trainer, cfg = "vlm", model_cfg or programs.vlm_model_config(config)
    task = programs.vlm_task(config, cfg)
  elif isinstance(kind, de_lib.DualEncoderConfig):
    trainer, cfg = "dual_encoder", model_cfg or programs.dual_encoder_model_config(config)
    task = programs.dual_encoder_task(config, cfg)
  else:
    raise ValueError(f"model.variant={config.model.variant!r} ({type(kind).__name__}) is neither a "
                     "VLM nor a dual encoder")
  b, m = int(config.train.batch_size), int(config.train.micro_batches)
  ways = sharding_lib.batch_devices(mesh)
  if b % m or (b // m) % ways:
    chips = mesh.devices.size
    split = math.gcd(b // max(m, 1), chips)
    raise ValueError(
        f"train.batch_size {b} in {m} micro-batch(es) of {b // max(m, 1)} cannot be split over the "
        f"{ways} batch shards of mesh {dict(mesh.shape)} (the batch is sharded over data x fsdp): "
        f"choose a mesh whose data x fsdp divides {b // max(m, 1)}, e.g. "
        f"mesh.fsdp={split},mesh.tensor={chips // split}")
  spec = loop.state_spec(task, config, mesh)
  state = spec.abstract_state
  parts = {"parameters": shard_bytes(state["params"]), "optimizer state": shard_bytes(state["opt"]),
           "batch": shard_bytes(sharded_batch(task.batch_spec, mesh))}
  n_params = optim.tree_size(state["params"])
  n_train = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(
      optim.split_params(state["params"], config.optim.freeze)[0]))
  header = (f"config {config.experiment}: {trainer} train step, model {config.model.variant} "
            f"({n_params:,} params, {n_train:,} trainable), batch {b} (micro-batches {m}), remat "
            f"{config.model.remat_policy}")
  return Program(
      f"{trainer} train step", header, cfg, mesh,
      lower=functools.partial(loop.lower_step, task, config, mesh, spec), parts=parts,
      analytic=flops.analytic_step_flops(cfg, b, spec.trainable, str(config.model.remat_policy)),
      with_depths=lambda i, t: train_program(config, mesh, _with_depths(cfg, i, t)))


def eval_decode_program(config: Config, mesh: jax.sharding.Mesh,
                        model_cfg: vlm_lib.VLMConfig | None = None) -> Program:
  """The VLM trainer's in-training eval sampling: greedy continuation of a train-size batch for
  `train.max_decode_len` tokens, with the train state's parameters; its optimizer state stays
  resident meanwhile."""
  cfg = model_cfg or programs.vlm_model_config(config)
  task = programs.vlm_task(config, cfg)
  spec = loop.state_spec(task, config, mesh)
  params = spec.abstract_state["params"]
  batch = sharded_batch(task.batch_spec, mesh)
  length = int(config.train.max_decode_len)
  fn = decoding.jit_greedy_continuation(vlm_lib.VLM(cfg), length, eos_id=1, mesh=mesh)

  def lower() -> jax.stages.Lowered:
    with sharding_lib.use_mesh(mesh):
      return fn.lower(params, batch)

  b = int(config.train.batch_size)
  prompt = int(config.data.text_len)  # The prompt is padded to the text length.
  dcfg = decoding.DecodeConfig(sampler="greedy", max_decode_len=length)
  return Program(
      "eval decode step", f"config {config.experiment}: eval decode step (the trainer's greedy "
      f"samples), batch {b}, {length} tokens, prompt padded to {prompt}", cfg, mesh, lower,
      parts={"parameters": shard_bytes(params), "batch": shard_bytes(batch)},
      analytic=flops.analytic_decode_flops(cfg, b, dcfg, prompt),
      with_depths=lambda i, t: eval_decode_program(config, mesh, _with_depths(cfg, i, t)),
      resident={"optimizer state": shard_bytes(spec.abstract_state["opt"])})


def decode_model_config(config: Config, source: runtime.CheckpointSource | None = None
                        ) -> vlm_lib.VLMConfig:
  """The VLM an auto-labeling config decodes with (its frames: one per row in frame_captioner
  mode); without a checkpoint `source`, model.variant and data.res must be set."""
  fc = config.mode == "frame_captioner"
  res = config.data.res or (source.trained("data", "res") if source is not None else 0)
  if not res:
    raise ValueError("data.res is not set and no checkpoint records one")
  return runtime.model_config(config.model, vlm_lib.VLMConfig,
                              num_frames=1 if fc else int(config.data.num_frames), res=int(res),
                              source=source)


def decode_settings(config: Config, eos_id: int = 1, pad_id: int = 0,
                    valid_vocab_size: int = 0) -> decoding.DecodeConfig:
  """decoding.DecodeConfig of an auto-labeling config's `decode` section."""
  d = config.decode
  return decoding.DecodeConfig(
      sampler=d.sampler, max_decode_len=int(d.max_decode_len), num_samples=int(d.num_samples),
      temperature=float(d.temperature), top_p=float(d.top_p), top_k=int(d.top_k),
      beam_size=int(d.beam_size), length_penalty=float(d.length_penalty), eos_id=eos_id,
      pad_id=pad_id, valid_vocab_size=valid_vocab_size)


def decode_inputs(rows: int, cfg: vlm_lib.VLMConfig, prompt_len: int
                  ) -> dict[str, jax.ShapeDtypeStruct]:
  """The decoder's inputs for `rows` rows: frames uint8[R, T, px, px, 3], tokens and mask_input
  int32[R, prompt_len]."""
  px = cfg.img.image_size
  return {"frames": jax.ShapeDtypeStruct((rows, cfg.img.num_frames, px, px, 3), jnp.uint8),
          "tokens": jax.ShapeDtypeStruct((rows, prompt_len), jnp.int32),
          "mask_input": jax.ShapeDtypeStruct((rows, prompt_len), jnp.int32)}


def decode_program(config: Config, mesh: jax.sharding.Mesh, *,
                   model_cfg: vlm_lib.VLMConfig | None = None,
                   dcfg: decoding.DecodeConfig | None = None,
                   prompt_len: int = PROMPT_TOKENS) -> Program:
  """The auto-labeling decode step of `config` on `mesh` (one process's devices): `batch_size`
  clips (x frames per clip in frame_captioner mode) per call, K samples each."""
  cfg = model_cfg or decode_model_config(config)
  dcfg = dcfg or decode_settings(config)
  rows = int(config.batch_size) * (cfg_frames(config) if config.mode == "frame_captioner" else 1)
  ways = sharding_lib.batch_devices(mesh)
  if rows % ways:
    raise ValueError(f"batch_size {config.batch_size} ({rows} rows) cannot be split over the "
                     f"{ways} batch shards of mesh {dict(mesh.shape)}")
  param_dtype = str(config.model.get("param_dtype", "") or "")
  params = runtime.abstract_params(cfg, mesh, param_dtype)
  inputs = decode_inputs(rows, cfg, prompt_len)
  decoder = decoding.Decoder(decoding.VLMAdapter(vlm_lib.VLM(cfg)), dcfg, mesh)
  parts = {"parameters": shard_bytes(params), "batch": shard_bytes(sharded_batch(inputs, mesh))}
  header = (f"config {config.experiment}: decode step (auto-labeling), model "
            f"{config.model.variant} ({variants.count_params(cfg):,} params in "
            f"{param_dtype or 'float32'}, compute {cfg.llm.dtype}), {rows} rows per call, "
            f"{dcfg.sampler} K={dcfg.num_samples} x {dcfg.max_decode_len} tokens, prompt "
            f"{prompt_len} tokens, {cfg.img.num_frames} frames x {cfg.tokens_per_frame} tokens")
  return Program(
      "decode step", header, cfg, mesh, lower=lambda: decoder.lower(params, inputs), parts=parts,
      analytic=flops.analytic_decode_flops(cfg, rows, dcfg, prompt_len),
      with_depths=lambda i, t: decode_program(config, mesh, model_cfg=_with_depths(cfg, i, t),
                                              dcfg=dcfg, prompt_len=prompt_len))


def cfg_frames(config: Config) -> int:
  """Frames per clip an auto-labeling config decodes."""
  if config.mode == "frame_captioner":
    return int(config.frame_captioner.num_frames)
  return int(config.data.num_frames)


def is_decode_config(config: Config) -> bool:
  """An auto-labeling config (it has `decode` and `corpus` sections) rather than a trainer's."""
  return "decode" in config and "corpus" in config


def programs_of(config: Config, mesh: jax.sharding.Mesh) -> list[Program]:
  """The programs `config`'s entry point compiles: the decode step (auto-labeling); or the train
  step, and for a VLM phase with in-training samples (data.eval_task, train.decode_samples) the
  eval decode step."""
  if is_decode_config(config):
    return [decode_program(config, mesh)]
  train = train_program(config, mesh)
  out = [train]
  if (isinstance(train.model_cfg, vlm_lib.VLMConfig) and config.data.eval_task
      and int(config.train.decode_samples) > 0):
    out.append(eval_decode_program(config, mesh, train.model_cfg))
  return out


# ------------------------------------------------------------------------------------------------
# Compile and report.


def format_bytes(b: float) -> str:
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


def compiled_flops(compiled: jax.stages.Compiled) -> float | None:
  """cost_analysis()'s FLOPs of one chip, or None when the backend reports none."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = dict(cost or {}).get("flops")
  return float(flops) if flops is not None else None


def layer_extrapolated_flops(program: Program) -> tuple[float, str] | None:
  """Compiled FLOPs of the whole program (global) with every layer counted: the program compiled
  unrolled with (img, text) depths (1, 1), (2, 1) and (1, 2), extrapolated linearly to its real
  depths. None when the backend reports no FLOPs."""
  if program.with_depths is None:
    return None
  chips = program.mesh.devices.size
  f = {}
  for d in ((1, 1), (2, 1), (1, 2)):
    flops = compiled_flops(program.with_depths(*d).lower().compile())
    if flops is None:
      return None
    f[d] = flops * chips
  per_img, per_text = f[(2, 1)] - f[(1, 1)], f[(1, 2)] - f[(1, 1)]
  img, text = _depths(program.model_cfg)
  total = f[(1, 1)] + per_img * (img - 1) + per_text * (text - 1)
  return total, (f"unrolled compiles at 1-2 layers per stack: {per_img:.4g} per image layer, "
                 f"{per_text:.4g} per {_text_tower(program.model_cfg)} layer, "
                 f"{f[(1, 1)] - per_img - per_text:.4g} outside the layers")


@dataclasses.dataclass
class Report:
  """What compile_report measured."""
  lines: list[str]
  total_gib: float
  hbm_gib: float | None  # None: the backend does not say.
  compiled_flops: float | None  # Global: per-chip cost_analysis x chips.
  analytic: flops.AnalyticFlops
  memory: dict[str, int] = dataclasses.field(default_factory=dict)  # Bytes per chip by kind.

  @property
  def fits(self) -> bool:
    return self.hbm_gib is None or self.total_gib <= self.hbm_gib


def print_reports(make_programs: Callable[[], list[Program]]) -> int:
  """What an entry point's `--compile_only` runs: builds its programs on this job's devices,
  compiles them and prints their reports (process 0). Exit code 0 if they fit, 1 if not, 2 if the
  config cannot run on these devices (e.g. a batch the mesh cannot split)."""
  try:
    programs_ = make_programs()
  except ValueError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return 2
  code = 0
  for program in programs_:
    report = compile_report(program, device_hbm_gib(program.mesh.devices.flat[0]))
    if jax.process_index() == 0:
      print("\n".join(report.lines), flush=True)
    if not report.fits:
      print(f"ERROR: {program.name} does not fit: {report.total_gib:.2f} GiB per device > "
            f"{report.hbm_gib:g} GiB", file=sys.stderr, flush=True)
      code = 1
  return code


def trainer_compile_only(config: Config) -> int:
  """The trainers' `--compile_only`: their programs (programs_of) on the config's mesh over all
  devices (the variant's vocabulary, or model.vocab_size: no tokenizer is read)."""
  return print_reports(lambda: programs_of(config, sharding_lib.make_mesh(dict(config.mesh))))


def device_hbm_gib(device: Any) -> float | None:
  """The memory a device offers its programs, when the backend says (TPU / GPU), in GiB."""
  limit = (device.memory_stats() or {}).get("bytes_limit")  # CPU: no stats (None).
  return limit / GIB if limit else None


def compile_report(program: Program, hbm_gib: float | None, *, full_flops: bool = False
                   ) -> Report:
  """Compiles `program` and reports its memory per chip, FLOPs and collectives (see the module
  docstring). `full_flops`: also the layer-extrapolated compiled FLOPs (3 more, small, compiles).

  When the compiler refuses the program (RESOURCE_EXHAUSTED: more than the chip's memory), the
  report gives its message and, as the total, the amount the message names (a lower bound).
  """
  g = format_bytes
  chips = program.mesh.devices.size
  hbm = f"{hbm_gib:g} GiB HBM" if hbm_gib else "unknown HBM"
  lines = [program.header]
  a = program.analytic
  try:
    compiled = program.lower().compile()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    message = str(e).strip().splitlines()[0]
    named = [float(v) for v in re.findall(r"\(([\d.]+)G\)", message)]
    need = named[0] if named else math.inf
    lines += [
        "per chip (from the abstract arguments; the compiler gave no memory analysis): "
        + ", ".join(f"{k} {g(v)}" for k, v in program.parts.items()),
        f"the compiler refused the program: {message}",
        f"analytic FLOPs per call {a.hardware:.4g} [{a.formula}]",
        f"total per chip: {need:.4g} GiB of {hbm}",
    ]
    return Report(lines, need, hbm_gib, None, a, dict(program.parts))

  ma = compiled.memory_analysis()
  arg, out = ma.argument_size_in_bytes, ma.output_size_in_bytes
  temp, alias = ma.temp_size_in_bytes, ma.alias_size_in_bytes
  code = ma.generated_code_size_in_bytes
  resident = sum(program.resident.values())
  total = arg + out - alias + temp + code + resident
  other = arg - sum(program.parts.values())
  lines += [
      "per chip (compiled memory_analysis):",
      f"  arguments        {g(arg)} = " + " + ".join(f"{k} {g(v)}" for k, v in program.parts.items())
      + f" + other (step, seed, TPU tile padding) {g(other)}",
      f"  outputs          {g(out)} (aliased to donated arguments: {g(alias)})",
      f"  temporaries      {g(temp)}",
      f"  generated code   {g(code)}",
  ]
  if resident:
    lines += [f"  resident         {g(resident)} (" + ", ".join(
        f"{k} {g(v)}" for k, v in program.resident.items()) + ": allocated, not an argument)",
              "  total = arguments + outputs - aliased + temporaries + code + resident"]
  else:
    lines.append("  total = arguments + outputs - aliased + temporaries + code")
  per_chip = compiled_flops(compiled)
  flops = per_chip * chips if per_chip is not None else None
  if flops is None:
    lines.append(f"FLOPs per call: compiled n/a (this backend's cost analysis reports none); "
                 f"analytic {a.hardware:.4g} [{a.formula}]")
  else:
    lines.append(f"FLOPs per call: compiled {flops:.4g} ({per_chip:.4g} per chip x {chips}); "
                 f"analytic {a.hardware:.4g} [{a.formula}]")
    if program.name.endswith("decode step"):
      lines.append(f"  the extend while-loop is counted once by XLA: analytic prefill + 1 extend "
                   f"step = {a.comparable:.4g}; compiled / that = {flops / a.comparable:.3f}")
    elif scanned(program.model_cfg):
      lines.append(f"  compiled / analytic = {flops / a.hardware:.3f} with scanned layers (XLA "
                   "counts a while-loop body once: one layer per stack)")
    else:
      lines.append(f"  compiled / analytic = {flops / a.hardware:.3f}")
    if full_flops:
      extrapolated = layer_extrapolated_flops(program)
      if extrapolated is not None:
        full, how = extrapolated
        versus = ("analytic prefill + 1 extend step" if program.name.endswith("decode step")
                  else "analytic")
        lines.append(f"  every layer counted: compiled {full:.4g} ({how}); compiled / {versus} "
                     f"= {full / a.comparable:.3f}")
        flops = full
  if a.six_nd:
    lines.append(f"  without remat {a.model:.4g}; 6 x params x tokens = {a.six_nd:.4g} (rule of "
                 "thumb: every tower trained, no attention)")
  coll = collective_bytes(compiled.as_text() or "")
  lines.append("collectives (result bytes per chip in the compiled HLO, static count: a loop "
               "body, e.g. scanned layers, counts once): "
               + ", ".join(f"{k} {g(v)}" for k, v in coll.items()))
  lines.append(f"total per chip: {total / GIB:.4g} GiB of {hbm}")
  memory = {"arguments": arg, **dict(program.parts), "outputs": out, "aliased": alias,
            "temporaries": temp, "code": code, **dict(program.resident), "total": total}
  return Report(lines, total / GIB, hbm_gib, flops, a, memory)


def scanned(cfg: variants.ModelConfig) -> bool:
  return bool(cfg.img.scan or getattr(cfg, _text_tower(cfg)).scan)

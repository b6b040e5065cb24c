"""Train-step speed and MFU of each phase's program, against a matmul peak measured in the same run.

  python -m viit_jax.benchmarks.train_step [--variant=demo|mid] \
      [--phases=phase1,phase2,dual_encoder] [--batch_size=16] [--steps=10] \
      [--dtype=float32|bfloat16] [--top_ops=15]

Each phase's step is the trainer's own program (viit_jax.aot.train_program, i.e. loop.lower_step:
the optimizer, frozen towers, remat and micro-batches of the phase's demo config with the variant
and dtype swapped in; the dual encoder uses `<variant>-de`), compiled for this process's devices and
run from a fresh state on one synthetic batch of the task's shapes (random pixels and tokens: the
speed does not depend on the values). Per phase it prints the median step time of `--steps` steps
after a warm-up step; FLOPs per step compiled (XLA's cost analysis of every layer: a scanned stack
is extrapolated from 1- and 2-layer compiles, viit_jax.aot) and analytic (model: what the math
needs; hardware: + remat's recomputation, viit_jax.flops); the achieved FLOP/s; and a line

  MFU: X% (<phase>, <variant>)   = analytic model FLOPs / step time / matmul peak

and beside it the matmul ceiling: every matmul of the step (its jaxpr's dot_generals, a scanned
layer's once per layer) timed alone in its best operand layout (viit_jax.flops.matmul_ceiling), the
slowest shapes listed, and

  MFU ceiling: X% (<phase>, <variant>)   = analytic model FLOPs / matmuls' time alone / peak

the MFU the step would reach if everything but its matmuls took no time: what this machine's
matmul kernels allow at the step's shapes.

`--top_ops=N` traces `--steps` more steps of each phase with `jax.profiler` and prints its N
slowest XLA ops and model sources (viit_jax.op_profile): where the time between the matmuls goes.

The peak is a jitted 1024^2 matmul (`--peak_n`) in the compute dtype (viit_jax.flops.matmul_peak), measured
before and after the phases; MFU uses the higher of the two, so a machine that gets busier during
the run lowers MFU instead of flattering it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import demo_phase1
from configs import demo_phase2
from configs import dual_encoder_demo
from viit_jax import aot
from viit_jax import flops
from viit_jax import loop
from viit_jax import op_profile
from viit_jax import programs
from viit_jax import sharding as sharding_lib
from viit_jax.models import vlm as vlm_lib

PHASES = {"phase1": demo_phase1, "phase2": demo_phase2, "dual_encoder": dual_encoder_demo}
VARIANTS = ("demo", "mid", "test")


def phase_config(phase: str, variant: str, dtype: str, batch_size: int, extra: str = ""
                 ) -> ml_collections.ConfigDict:
  """The phase's demo config with the benchmark's variant, compute dtype ('' = the config's own),
  batch and `extra` overrides."""
  model = f"{variant}-de" if phase == "dual_encoder" else variant
  args = (f"model.variant={model},{f'model.dtype={dtype},' if dtype else ''}init_from='',"
          f"train.micro_batches=1{f',train.batch_size={batch_size}' if batch_size else ''}"
          f"{f',{extra}' if extra else ''}")
  return PHASES[phase].get_config(args)


def synthetic_batch(spec: dict[str, jax.ShapeDtypeStruct], vocab_size: int,
                    mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Random pixels (uint8) and token ids in [3, vocab); masks all 1 (every text token is a causal
  target: the most work a batch of these shapes can ask for)."""
  rng = np.random.default_rng(0)
  host = {}
  for k, s in spec.items():
    if s.dtype == jnp.uint8:
      host[k] = rng.integers(0, 256, s.shape, dtype=np.uint8)
    elif k.startswith("mask"):
      host[k] = np.ones(s.shape, np.int32)
    else:
      host[k] = rng.integers(3, vocab_size, s.shape).astype(np.int32)
  return sharding_lib.host_local_to_global(host, mesh, sharding_lib.RULES)


def run_phase(phase: str, variant: str, dtype: str, batch_size: int, steps: int,
              extra: str = "", top_ops: int = 0) -> dict[str, Any]:
  """One phase's figures: step seconds, FLOPs (compiled, analytic), achieved FLOP/s, the matmul
  ceiling; with `top_ops`, "ops": the slowest ops of `steps` more steps, traced."""
  config = phase_config(phase, variant, dtype, batch_size, extra)
  mesh = sharding_lib.make_mesh(dict(config.mesh))
  program = aot.train_program(config, mesh)
  cfg = program.model_cfg
  if isinstance(cfg, vlm_lib.VLMConfig):
    task, vocab = programs.vlm_task(config, cfg), cfg.llm.vocab_size
  else:
    task, vocab = programs.dual_encoder_task(config, cfg), cfg.txt.vocab_size
  spec = loop.state_spec(task, config, mesh)
  # Traced once: its jaxpr gives the matmuls, its lowering the step to time.
  t0 = time.perf_counter()
  traced = loop.trace_step(task, config, mesh, spec)
  compiled = loop.lower_step(task, config, mesh, spec, traced).compile()
  compile_s = time.perf_counter() - t0
  ceiling = flops.matmul_ceiling(traced.jaxpr)
  fresh_params, make_state = loop.fresh_state_fn(task, config, mesh, spec)
  state = make_state(fresh_params())
  batch = synthetic_batch(task.batch_spec, vocab, mesh)
  state, metrics = compiled(state, batch)  # Warm-up.
  jax.block_until_ready((state, metrics))
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  ops = ""
  if top_ops:
    with tempfile.TemporaryDirectory() as trace_dir:
      with jax.profiler.trace(trace_dir):
        t0 = time.perf_counter()
        for _ in range(steps):
          state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        traced_s = (time.perf_counter() - t0) / steps
      ops = op_profile.format_top(op_profile.read(trace_dir, compiled.as_text(), steps),
                                  traced_s, top_ops)
  if aot.scanned(cfg):  # XLA counts a scanned stack's body once.
    extrapolated = aot.layer_extrapolated_flops(program)
    compiled_flops = extrapolated[0] if extrapolated else None
  else:
    per_chip = aot.compiled_flops(compiled)
    compiled_flops = per_chip * mesh.devices.size if per_chip is not None else None
  seconds = statistics.median(times)
  return {"phase": phase, "variant": config.model.variant, "dtype": config.model.dtype,
          "batch": int(config.train.batch_size), "remat": str(config.model.remat_policy),
          "trainable": len(spec.trainable), "compile_s": compile_s, "seconds": seconds,
          "compiled_flops": compiled_flops or float("nan"),
          "model_flops": program.analytic.model, "hardware_flops": program.analytic.hardware,
          "achieved": program.analytic.model / seconds, "dots_s": ceiling.seconds,
          "dots_flops": ceiling.flops, "dots": ceiling.rows, "ops": ops}


def format_rows(rows: Sequence[dict[str, Any]], peak: float, top: int = 5) -> str:
  """The table, then per phase its `top` slowest matmul shapes, then the `MFU:` and
  `MFU ceiling:` lines (model FLOPs over the matmuls' time alone, at the same peak)."""
  lines = [f"{'phase':<13} {'variant':<8} {'batch':>5} {'remat':<6} {'ms/step':>9} "
           f"{'FLOPs compiled':>15} {'analytic model':>15} {'hardware':>10} {'GFLOP/s':>9} "
           f"{'MFU':>6} {'HFU':>6} {'dots ms':>8} {'ceiling':>7}"]
  for r in rows:
    lines.append(
        f"{r['phase']:<13} {r['variant']:<8} {r['batch']:>5} {r['remat']:<6} "
        f"{1e3 * r['seconds']:>9.1f} {r['compiled_flops']:>15.3e} {r['model_flops']:>15.3e} "
        f"{r['hardware_flops']:>10.3e} {r['achieved'] / 1e9:>9.1f} "
        f"{100 * r['achieved'] / peak:>5.1f}% "
        f"{100 * r['hardware_flops'] / r['seconds'] / peak:>5.1f}% "
        f"{1e3 * r['dots_s']:>8.1f} {100 * r['model_flops'] / r['dots_s'] / peak:>6.1f}%")
  for r in rows:
    lines.append(f"{r['phase']} ({r['variant']}): its matmuls alone {1e3 * r['dots_s']:.1f} ms "
                 f"({100 * r['dots_s'] / r['seconds']:.0f}% of the step), "
                 f"{r['dots_flops'] / r['dots_s'] / 1e9:.1f} GFLOP/s; the slowest shapes:")
    for dot, count, sec in r["dots"][:top]:
      lines.append(f"  {count:>4} x {dot}: {1e3 * sec:.3f} ms each, "
                   f"{dot.flops / sec / 1e9:.1f} GFLOP/s")
  for r in rows:
    if r["ops"]:
      lines.append(f"{r['phase']} ({r['variant']}), profiled: {r['ops']}")
  for r in rows:
    lines.append(f"MFU: {100 * r['achieved'] / peak:.1f}% ({r['phase']}, {r['variant']})")
  for r in rows:
    lines.append(f"MFU ceiling: {100 * r['model_flops'] / r['dots_s'] / peak:.1f}% "
                 f"({r['phase']}, {r['variant']})")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="demo", choices=VARIANTS)
  parser.add_argument("--phases", default="phase1,phase2,dual_encoder")
  parser.add_argument("--batch_size", type=int, default=16, help="0 = each config's own")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--dtype", default="", choices=("", "bfloat16", "float32"),
                      help="compute dtype; '' = the phases' configs' own")
  parser.add_argument("--config_args", default="", help="extra overrides of every phase's config "
                      "(e.g. model.scan=false,model.remat_policy=full)")
  parser.add_argument("--peak_n", type=int, default=1024, help="the peak matmul's size")
  parser.add_argument("--top_ops", type=int, default=0,
                      help="trace --steps more steps per phase and print its N slowest XLA ops "
                      "and model sources (viit_jax.op_profile); 0 = no trace")
  args = parser.parse_args(argv)
  phases = [p for p in args.phases.split(",") if p]
  unknown = [p for p in phases if p not in PHASES]
  if unknown:
    parser.error(f"unknown phases {unknown}; known: {list(PHASES)}")
  dtype = jnp.dtype(args.dtype or phase_config(phases[0], args.variant, "", 0).model.dtype)
  before = flops.matmul_peak(dtype, args.peak_n)
  rows = [run_phase(p, args.variant, args.dtype, args.batch_size, args.steps, args.config_args,
                    args.top_ops) for p in phases]
  after = flops.matmul_peak(dtype, args.peak_n)
  peak = max(before, after)
  print(f"{jax.devices()[0].platform} ({jax.device_count()} device(s)); matmul peak "
        f"{dtype.name} {args.peak_n}^2: {before / 1e9:.1f} GFLOP/s before, {after / 1e9:.1f} after "
        f"(MFU against {peak / 1e9:.1f})", flush=True)
  print(format_rows(rows, peak), flush=True)
  return rows


if __name__ == "__main__":
  main()

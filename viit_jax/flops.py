"""FLOPs and peaks: what a program should cost, and what the hardware can do.

Analytic FLOPs (2 per multiply-add; matmuls and attention) of a train step and of a decode call,
shared by the AOT plan (viit_jax.aot), the trainer's MFU (viit_jax.loop) and the benchmarks; and
the peak FLOP/s they are set against: the published dense peak of a TPU or GPU chip, or on a CPU
(no published figure for a shared machine) a jitted square matmul measured in the same process;
and the matmul ceiling: a program's matmuls (from its jaxpr) each timed alone, the time the program
cannot beat with this device's matmul kernels.

  MFU = model FLOPs per step x steps per second / peak FLOP/s of the devices used
  (model FLOPs: what the math needs; remat's recomputation is not counted)
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.extend import core as jax_core

from viit_jax import decoding
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

# Remat policies that recompute a block's whole forward in the backward pass (models/layers.py).
RECOMPUTE_FORWARD = ("full", "nothing_saveable")


# ------------------------------------------------------------------------------------------------
# Analytic FLOPs.


def towers_forward(cfg: variants.ModelConfig) -> dict[str, int]:
  """Forward FLOPs of one training example per top-level parameter collection (img / llm / txt)."""
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
  """Analytic FLOPs of one call of a program (global, all chips)."""
  model: float  # What the math needs (training: forward + backward).
  hardware: float  # What the program runs: + the forward remat recomputes; decode: every step.
  comparable: float  # What XLA's cost analysis should count (loops counted once).
  formula: str
  six_nd: float = 0.0  # Training: 6 x params x tokens, the usual rule of thumb.


def analytic_step_flops(cfg: variants.ModelConfig, batch: int, trainable: tuple[str, ...],
                        remat_policy: str) -> AnalyticFlops:
  """FLOPs of one train step from the model's analytic forward (matmuls and attention, 2 per
  multiply-add).

  model = B x sum_tower F_tower x m_tower, m = 3 for a tower with trainable weights (forward, the
  activations' and the weights' gradients), 2 for a frozen tower the gradient must cross to reach a
  trainable one (phase 1's frozen LM, downstream of the trained ViT), 1 for a frozen tower nothing
  trainable precedes; hardware = model + the forward remat recomputes: B x sum F for 'full' and
  'nothing_saveable'; none for 'dots' (every matmul output is saved; what is recomputed, norms and
  activations, is not counted) and 'dots_no_batch' (a lower bound: it recomputes attention's
  batched matmuls); six_nd = 6 x params x B x tokens (visual + text).
  """
  fwd = towers_forward(cfg)
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
  recomputed = remat_policy in RECOMPUTE_FORWARD
  hardware = model + (batch * sum(fwd.values()) if recomputed else 0)
  if isinstance(cfg, vlm_lib.VLMConfig):
    tokens = cfg.img.num_frames * cfg.tokens_per_frame + cfg.llm.seq_len
  else:
    tokens = cfg.img.num_frames * cfg.img.num_patches + cfg.txt.seq_len
  six_nd = 6 * variants.count_params(cfg) * batch * tokens
  formula = (f"B x sum_tower fwd x m (m: {', '.join(f'{k} {v}' for k, v in mult.items())}; "
             "3 trained, 2 frozen but crossed by the gradient, 1 frozen)"
             + (f" + B x fwd (remat {remat_policy})" if recomputed else
                f" (remat {remat_policy}: no matmul recomputed)" if remat_policy != "none" else ""))
  return AnalyticFlops(model, hardware, hardware, formula, six_nd)


def llm_params(cfg: vlm_lib.VLMConfig) -> int:
  """Parameters of the VLM's language model (everything outside the image tower)."""
  img = nn.unbox(variants.abstract_params(cfg))["img"]
  return variants.count_params(cfg) - sum(math.prod(x.shape)
                                          for x in jax.tree_util.tree_leaves(img))


def analytic_decode_flops(cfg: vlm_lib.VLMConfig, rows: int, dcfg: decoding.DecodeConfig,
                          prompt_len: int, vision: bool = True) -> AnalyticFlops:
  """FLOPs of one decode call over `rows` clips: one prefill (ViT over the frames, LM over the
  visual + prompt tokens, logits at one position), then K x L extend steps per clip, each
  2 x LM parameters (the embedding as the logits' matmul) plus attention over the cache.
  `vision=False`: the LM alone on a text prompt as long as the visual + prompt tokens."""
  t = cfg.img.num_frames
  visual = t * cfg.tokens_per_frame
  prefill = (variants._vit_flops(cfg.img, t) * vision  # pylint: disable=protected-access
             + variants._gemma_flops(cfg.llm, visual + prompt_len, 1))  # pylint: disable=protected-access
  k, length = dcfg.num_samples, dcfg.max_decode_len
  n_llm = llm_params(cfg)

  def step(ctx: float) -> float:
    return 2 * n_llm + 2 * 2 * ctx * cfg.llm.num_heads * cfg.llm.head_dim * cfg.llm.depth

  ctx_total = visual + prompt_len + length
  whole = rows * (prefill + k * length * step(visual + prompt_len + length / 2))
  one_step = rows * (prefill + k * step(ctx_total))
  formula = (f"rows x (prefill ({t} frames, {visual}+{prompt_len} tokens) + K={k} x L={length} "
             "extend steps of 2 x LM params + cache attention)")
  return AnalyticFlops(whole, whole, one_step, formula)


# ------------------------------------------------------------------------------------------------
# Peaks.

# Published dense bf16 peak TFLOP/s per chip, by the start of `device.device_kind`.
CHIP_PEAK_TFLOPS = {"TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0,
                    "TPU v5": 459.0, "TPU v6 lite": 918.0, "TPU v6e": 918.0,
                    "NVIDIA H200": 989.0, "NVIDIA H100": 989.0, "NVIDIA A100": 312.0}


def matmul_peak(dtype: Any = jnp.float32, n: int = 1024, repeats: int = 5,
                device: Any = None) -> float:
  """FLOP/s of a jitted [n, n] x [n, n] matmul in `dtype` on one device: the best of `repeats`
  timed runs of 4 chained products, after a compile run. On a CPU this is the host's practical
  peak (XLA:CPU spreads one matmul over every core)."""
  device = device or jax.local_devices()[0]
  a = jax.device_put(jnp.ones((n, n), dtype) / n, device)

  @jax.jit
  def chain(x):
    for _ in range(4):
      x = x @ a
    return x

  jax.block_until_ready(chain(a))
  best = math.inf
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(chain(a))
    best = min(best, time.perf_counter() - t0)
  return 4 * 2 * n**3 / best


_HOST_PEAK: dict[str, float] = {}


def chip_peak(device: Any) -> float | None:
  """The published dense bf16 peak FLOP/s of one TPU / GPU chip, None if unknown (CPUs)."""
  kind = str(getattr(device, "device_kind", ""))
  for prefix, tflops in CHIP_PEAK_TFLOPS.items():
    if kind.startswith(prefix):
      return tflops * 1e12
  return None


def devices_peak(dtype: Any = jnp.bfloat16, override_tflops: float = 0.0) -> tuple[float, str]:
  """(peak FLOP/s of every device of the job, how it was obtained): `override_tflops` per chip
  when > 0, else the chips' published peak, else (CPU) one matmul measured on this host, times
  the process count: fake CPU devices of one process share its cores, so a host counts once."""
  devices = jax.devices()
  if override_tflops > 0:
    return override_tflops * 1e12 * len(devices), f"train.peak_tflops={override_tflops:g} per chip"
  per_chip = chip_peak(devices[0])
  if per_chip is not None:
    return per_chip * len(devices), f"{devices[0].device_kind} published peak x {len(devices)}"
  hosts = jax.process_count()
  name = jnp.dtype(dtype).name
  if name not in _HOST_PEAK:  # Measured once per process (a trainer's start-up, not per run).
    _HOST_PEAK[name] = matmul_peak(dtype)
  peak = _HOST_PEAK[name] * hosts
  return peak, (f"measured 1024^2 {jnp.dtype(dtype).name} matmul on the host"
                + (f" x {hosts} processes" if hosts > 1 else ""))


# ------------------------------------------------------------------------------------------------
# The matmul ceiling: every matmul of a program, timed alone in its best operand layout.


@dataclasses.dataclass(frozen=True)
class Dot:
  """One matmul shape as the canonical [batch, m, k] x [batch, k, n] -> [batch, m, n]."""
  batch: int
  m: int
  k: int
  n: int
  dtype: str  # Operands' dtype.
  out_dtype: str

  @property
  def flops(self) -> float:
    return 2.0 * self.batch * self.m * self.k * self.n

  def __str__(self) -> str:
    lead = f"{self.batch} x " if self.batch > 1 else ""
    return (f"{lead}[{self.m}, {self.k}] x [{self.k}, {self.n}] "
            f"{self.dtype}->{self.out_dtype}")


def _dot_of(eqn: Any) -> Dot:
  """The canonical shape of a `dot_general` equation (free dimensions flattened)."""
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
  size = lambda shape, dims: math.prod(shape[d] for d in dims)
  free = lambda shape, used: math.prod(s for d, s in enumerate(shape) if d not in used)
  return Dot(batch=size(lhs, lb), m=free(lhs, set(lc) | set(lb)), k=size(lhs, lc),
             n=free(rhs, set(rc) | set(rb)), dtype=str(eqn.invars[0].aval.dtype),
             out_dtype=str(eqn.outvars[0].aval.dtype))


def program_dots(jaxpr: Any, while_trips: int = 1) -> dict[Dot, int]:
  """Every `dot_general` a (closed) jaxpr runs, nested ones included, with how often it runs.

  A scan's body counts `length` times; a while loop's body `while_trips` times (its trip count is
  not static: the caller knows it, e.g. a decode loop with EOS disabled); of a `cond`'s branches
  the one with the most matmul FLOPs.
  """
  counts: dict[Dot, int] = {}

  def walk(jx: Any, times: int, into: dict[Dot, int]) -> None:
    for eqn in jx.eqns:
      name = eqn.primitive.name
      if name == "dot_general":
        d = _dot_of(eqn)
        into[d] = into.get(d, 0) + times
        continue
      if name == "cond":
        branches = []
        for branch in eqn.params["branches"]:
          b: dict[Dot, int] = {}
          walk(branch.jaxpr, times, b)
          branches.append(b)
        best = max(branches, key=lambda b: sum(d.flops * c for d, c in b.items()))
        for d, c in best.items():
          into[d] = into.get(d, 0) + c
        continue
      if name == "while":
        walk(eqn.params["body_jaxpr"].jaxpr, times * while_trips, into)
        continue
      inner = times * (int(eqn.params["length"]) if name == "scan" else 1)
      for sub in jax_core.jaxprs_in_params(eqn.params):
        walk(sub, inner, into)

  walk(getattr(jaxpr, "jaxpr", jaxpr), 1, counts)
  return counts


@functools.lru_cache(maxsize=None)
def time_dot(dot: Dot, device: Any = None, min_flops: float = 1e8, repeats: int = 5) -> float:
  """Seconds of one `dot` alone on `device`: the best over `repeats` runs and over the two layouts
  of the right operand ([k, n] and [n, k]) of a jitted call doing up to 8 copies of it (on
  distinct left operands; enough to reach `min_flops`), so dispatch overhead is spread thin.
  Remembered per process: the phases of one benchmark run share most shapes."""
  device = device or jax.local_devices()[0]
  copies = max(1, min(8, math.ceil(min_flops / dot.flops)))
  lhs = jax.device_put(jnp.ones((copies, dot.batch, dot.m, dot.k), dot.dtype), device)
  best = math.inf
  for rhs_shape, contract in (((dot.batch, dot.k, dot.n), 1), ((dot.batch, dot.n, dot.k), 2)):
    rhs = jax.device_put(jnp.ones(rhs_shape, dot.dtype), device)
    dims = (((2,), (contract,)), ((0,), (0,)))

    @jax.jit
    def run(a, b, dims=dims):
      return [jax.lax.dot_general(a[i], b, dims, preferred_element_type=jnp.dtype(dot.out_dtype))
              for i in range(copies)]

    jax.block_until_ready(run(lhs, rhs))
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(run(lhs, rhs))
      best = min(best, (time.perf_counter() - t0) / copies)
  return best


@dataclasses.dataclass(frozen=True)
class MatmulCeiling:
  """A program's matmuls timed alone: the time no schedule of the program can beat on this device
  with these kernels (element-wise work, layout changes and overheads all come on top).

  Attributes:
    seconds: sum over the program's matmuls of count x `time_dot`.
    flops: their FLOPs (count x 2bmkn).
    rows: (dot, count, seconds of one) per distinct shape, slowest in total first.
  """
  seconds: float
  flops: float
  rows: tuple[tuple[Dot, int, float], ...]


def matmul_ceiling(jaxpr: Any, while_trips: int = 1, device: Any = None) -> MatmulCeiling:
  """Times every distinct matmul of `jaxpr` (see `program_dots`) alone; see `MatmulCeiling`."""
  dots = program_dots(jaxpr, while_trips)
  rows = sorted(((d, c, time_dot(d, device)) for d, c in dots.items()),
                key=lambda r: -r[1] * r[2])
  return MatmulCeiling(seconds=sum(c * s for _, c, s in rows),
                       flops=sum(c * d.flops for d, c, _ in rows), rows=tuple(rows))

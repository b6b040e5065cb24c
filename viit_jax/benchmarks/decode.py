"""Decoding throughput of a VLM variant: clips/s, tokens/s and the fraction of the roofline.

  python -m viit_jax.benchmarks.decode [--variant=demo|mid] [--batch_sizes=1,8,32] \
      [--max_decode_len=32] [--sampler=greedy] [--num_samples=1] [--repeats=3] [--lm_only]

Random-init weights (speed does not depend on them). Each row decodes a batch of clips
(`img.num_frames` frames of the variant's resolution, a 10-token prompt) end to end on one
device: image encoder + prefill + `max_decode_len` cached extend steps. EOS is disabled so every
row generates exactly `max_decode_len` tokens. Times are the median of `--repeats` runs after a
compile run. The last row decodes the largest batch without a KV cache (the full LM forward over
[prompt | tokens so far] at every step; visual tokens are encoded once) and reports the cache's
speed-up.

Roofline: the analytic FLOPs of the call (prefill: ViT + LM over the visual and prompt tokens; then
every extend step: 2 x LM parameters + attention over the cache; viit_jax.flops) divided by a
jitted 1024^2 matmul's FLOP/s in the same dtype, measured before and after (the higher), is the
time the call would take at the matmul peak; each row prints `roofline: X%`, that time over the
measured one. Beside it `roofline ceiling: X%`: the same time over that of the call's matmuls
alone (every dot_general of prefill and of `max_decode_len` extend steps, each timed alone in its
best operand layout: viit_jax.flops.matmul_ceiling), the most the roofline fraction can be with
this machine's matmul kernels at the call's shapes. `--lm_only` decodes with the language model
alone (decoding.LMAdapter) from a text prompt as long as the visual + prompt tokens: the figure to
set beside text-only decoders of the same dimensions (e.g. transformers' generate).
Video decoding (PyAV) is not included: see the autolabel progress line for the whole job.
"""
from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from viit_jax import decoding
from viit_jax import flops
from viit_jax.models import gemma as gemma_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

PROMPT_LEN = 10


def _inputs(cfg: vlm_lib.VLMConfig, batch: int, lm_only: bool = False) -> dict[str, np.ndarray]:
  """A clip and a PROMPT_LEN-token prompt per row; lm_only: a text prompt as long as the visual
  and prompt tokens together, no frames."""
  rng = np.random.default_rng(0)
  t, r = cfg.img.num_frames, cfg.img.image_size
  length = PROMPT_LEN + (t * cfg.tokens_per_frame if lm_only else 0)
  tokens = rng.integers(3, cfg.llm.vocab_size, (batch, length)).astype(np.int32)
  tokens[:, 0] = 2  # BOS
  text = {"tokens": tokens, "mask_input": np.ones((batch, length), np.int32)}
  if lm_only:
    return text
  return {"frames": rng.integers(0, 256, (batch, t, r, r, 3), dtype=np.uint8), **text}


def _args(params, inputs: dict[str, np.ndarray]) -> tuple:
  ids = jnp.arange(len(inputs["tokens"]), dtype=jnp.int32)
  return params, {k: jnp.asarray(v) for k, v in inputs.items()}, ids, jnp.int32(0)


def time_decode(fn, params, inputs: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
  """(compile + first run seconds, median seconds of `repeats` runs)."""
  args = _args(params, inputs)
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times)


def run(variant: str, batch_sizes: Sequence[int], max_decode_len: int, sampler: str,
        num_samples: int, repeats: int, dtype: str, uncached: bool = True,
        lm_only: bool = False) -> list[dict]:
  """Benchmark rows: {"mode", "batch", "seconds", "clips_per_s", "tokens_per_s", "flops", ...}
  ("flops": the call's analytic FLOPs; the roofline needs a peak: `with_roofline`)."""
  cfg = variants.get_config(variant, {"img.dtype": dtype, "llm.dtype": dtype})
  if not isinstance(cfg, vlm_lib.VLMConfig):
    raise ValueError(f"{variant} is not a video-language model variant")
  params = nn.unbox(jax.jit(variants.init_fn(cfg))(jax.random.PRNGKey(0))["params"])
  if lm_only:
    adapter = decoding.LMAdapter(gemma_lib.Gemma(cfg.llm))
    params = params["llm"]
  else:
    adapter = decoding.VLMAdapter(vlm_lib.VLM(cfg))
  dcfg = decoding.DecodeConfig(sampler=sampler, max_decode_len=max_decode_len,
                               num_samples=num_samples, top_p=0.9, eos_id=-1)  # EOS disabled.
  mode = "lm only" if lm_only else "cached"
  cached = jax.jit(functools.partial(decoding.decode, model=adapter, cfg=dcfg))

  def row(mode: str, b: int, first: float, sec: float, dots_s: float = math.nan) -> dict:
    work = flops.analytic_decode_flops(cfg, b, dcfg, PROMPT_LEN, vision=not lm_only).model
    return {"mode": mode, "batch": b, "compile_s": first, "seconds": sec, "clips_per_s": b / sec,
            "tokens_per_s": b * num_samples * max_decode_len / sec, "flops": work,
            "dots_s": dots_s}

  rows = []
  for b in batch_sizes:
    inputs = _inputs(cfg, b, lm_only)
    # EOS is disabled: the decode loop runs exactly max_decode_len extend steps.
    dots = flops.matmul_ceiling(cached.trace(*_args(params, inputs)).jaxpr, max_decode_len)
    rows.append(row(mode, b, *time_decode(cached, params, inputs, repeats), dots.seconds))
  if uncached:
    b = max(batch_sizes)
    slow = jax.jit(functools.partial(decoding.uncached_decode, model=adapter, cfg=dcfg))
    rows.append(row("uncached", b, *time_decode(slow, params, _inputs(cfg, b, lm_only),
                                                repeats)))
  return rows


def with_roofline(rows: list[dict], peak: float) -> list[dict]:
  """Adds "roofline": the time the call's analytic FLOPs take at `peak` FLOP/s over the measured
  time; and "ceiling": the same over the time of the call's matmuls alone (the most `roofline`
  can reach with this machine's matmul kernels at the call's shapes; NaN for the uncached row).
  (The uncached row recomputes the whole prefix at every step: its FLOPs are the cached call's,
  so its fraction shows what the cache saves, not arithmetic efficiency.)"""
  return [{**r, "roofline": r["flops"] / peak / r["seconds"],
           "ceiling": r["flops"] / peak / r["dots_s"]} for r in rows]


def format_table(rows: list[dict], header: str) -> str:
  lines = [header, f"{'mode':<9} {'batch':>5} {'s/batch':>9} {'clips/s':>9} {'tokens/s':>10} "
                   f"{'GFLOP':>8} {'roofline':>8} {'dots s':>8} {'ceiling':>7} "
                   f"{'compile+1st s':>13}"]
  for r in rows:
    lines.append(f"{r['mode']:<9} {r['batch']:>5} {r['seconds']:>9.4f} {r['clips_per_s']:>9.2f} "
                 f"{r['tokens_per_s']:>10.1f} {r['flops'] / 1e9:>8.2f} "
                 f"{100 * r['roofline']:>7.1f}% {r['dots_s']:>8.4f} {100 * r['ceiling']:>6.1f}% "
                 f"{r['compile_s']:>13.2f}")
  for r in rows:
    lines.append(f"roofline: {100 * r['roofline']:.1f}% ({r['mode']}, batch {r['batch']})")
  for r in rows:
    if not math.isnan(r["ceiling"]):
      lines.append(f"roofline ceiling: {100 * r['ceiling']:.1f}% ({r['mode']}, batch {r['batch']})")
  slow = [r for r in rows if r["mode"] == "uncached"]
  if slow:
    fast = next(r for r in rows if r["mode"] != "uncached" and r["batch"] == slow[0]["batch"])
    lines.append(f"KV-cache speed-up at batch {fast['batch']}: "
                 f"{slow[0]['seconds'] / fast['seconds']:.1f}x")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="demo")
  parser.add_argument("--batch_sizes", default="1,8,32")
  parser.add_argument("--max_decode_len", type=int, default=32)
  parser.add_argument("--sampler", default="greedy", choices=decoding.SAMPLERS)
  parser.add_argument("--num_samples", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--no_uncached", action="store_true", help="skip the uncached reference")
  parser.add_argument("--lm_only", action="store_true",
                      help="the language model alone, on a text prompt of the same length")
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.batch_sizes.split(",") if s]
  cfg = variants.get_config(args.variant)
  before = flops.matmul_peak(jnp.dtype(args.dtype))
  rows = run(args.variant, sizes, args.max_decode_len, args.sampler, args.num_samples,
             args.repeats, args.dtype, uncached=not args.no_uncached, lm_only=args.lm_only)
  after = flops.matmul_peak(jnp.dtype(args.dtype))
  peak = max(before, after)
  visual = cfg.img.num_frames * cfg.tokens_per_frame
  prompt = (f"{visual + PROMPT_LEN}-token text prompt (LM only)" if args.lm_only else
            f"{cfg.img.num_frames} frames x {cfg.img.image_size}px ({visual} visual tokens) + "
            f"{PROMPT_LEN}-token prompt")
  header = (f"{args.variant}: {prompt}, {args.max_decode_len} new tokens, {args.sampler} "
            f"x{args.num_samples}, {args.dtype}, {jax.devices()[0].platform} "
            f"({jax.device_count()} device(s), 1 used); matmul peak {before / 1e9:.1f} GFLOP/s "
            f"before, {after / 1e9:.1f} after (roofline against {peak / 1e9:.1f})")
  print(format_table(with_roofline(rows, peak), header), flush=True)


if __name__ == "__main__":
  main()

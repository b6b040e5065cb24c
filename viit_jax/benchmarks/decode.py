"""Decoding throughput of a VLM variant: clips/s and generated tokens/s, cached vs uncached.

  python -m viit_jax.benchmarks.decode [--variant=demo] [--batch_sizes=1,8,32] \
      [--max_decode_len=32] [--sampler=greedy] [--num_samples=1] [--repeats=3]

Random-init weights (speed does not depend on them). Each row decodes a batch of clips
(`img.num_frames` frames of the variant's resolution, a 10-token prompt) end to end on one
device: image encoder + prefill + `max_decode_len` cached extend steps. EOS is disabled so every
row generates exactly `max_decode_len` tokens. Times are the median of `--repeats` runs after a
compile run. The last row decodes the largest batch without a KV cache (the full LM forward over
[prompt | tokens so far] at every step; visual tokens are encoded once) and reports the cache's
speed-up.
Video decoding (PyAV) is not included: see the autolabel progress line for the whole job.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from viit_jax import decoding
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

PROMPT_LEN = 10


def _inputs(cfg: vlm_lib.VLMConfig, batch: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  t, r = cfg.img.num_frames, cfg.img.image_size
  tokens = rng.integers(3, cfg.llm.vocab_size, (batch, PROMPT_LEN)).astype(np.int32)
  tokens[:, 0] = 2  # BOS
  return {"frames": rng.integers(0, 256, (batch, t, r, r, 3), dtype=np.uint8),
          "tokens": tokens, "mask_input": np.ones((batch, PROMPT_LEN), np.int32)}


def time_decode(fn, params, inputs: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
  """(compile + first run seconds, median seconds of `repeats` runs)."""
  ids = jnp.arange(len(inputs["tokens"]), dtype=jnp.int32)
  args = (params, {k: jnp.asarray(v) for k, v in inputs.items()}, ids, jnp.int32(0))
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
        num_samples: int, repeats: int, dtype: str, uncached: bool = True) -> list[dict]:
  """Benchmark rows: {"mode", "batch", "seconds", "clips_per_s", "tokens_per_s", ...}."""
  cfg = variants.get_config(variant, {"img.dtype": dtype, "llm.dtype": dtype})
  if not isinstance(cfg, vlm_lib.VLMConfig):
    raise ValueError(f"{variant} is not a video-language model variant")
  model = vlm_lib.VLM(cfg)
  params = nn.unbox(jax.jit(variants.init_fn(cfg))(jax.random.PRNGKey(0))["params"])
  dcfg = decoding.DecodeConfig(sampler=sampler, max_decode_len=max_decode_len,
                               num_samples=num_samples, top_p=0.9, eos_id=-1)  # EOS disabled.
  adapter = decoding.VLMAdapter(model)
  cached = jax.jit(functools.partial(decoding.decode, model=adapter, cfg=dcfg))
  rows = []
  for b in batch_sizes:
    first, sec = time_decode(cached, params, _inputs(cfg, b), repeats)
    rows.append({"mode": "cached", "batch": b, "compile_s": first, "seconds": sec,
                 "clips_per_s": b / sec, "tokens_per_s": b * num_samples * max_decode_len / sec})
  if uncached:
    b = max(batch_sizes)
    slow = jax.jit(functools.partial(decoding.uncached_decode, model=adapter, cfg=dcfg))
    first, sec = time_decode(slow, params, _inputs(cfg, b), repeats)
    rows.append({"mode": "uncached", "batch": b, "compile_s": first, "seconds": sec,
                 "clips_per_s": b / sec, "tokens_per_s": b * num_samples * max_decode_len / sec})
  return rows


def format_table(rows: list[dict], header: str) -> str:
  lines = [header, f"{'mode':<9} {'batch':>5} {'s/batch':>9} {'clips/s':>9} {'tokens/s':>10} "
                   f"{'compile+1st s':>13}"]
  for r in rows:
    lines.append(f"{r['mode']:<9} {r['batch']:>5} {r['seconds']:>9.4f} {r['clips_per_s']:>9.2f} "
                 f"{r['tokens_per_s']:>10.1f} {r['compile_s']:>13.2f}")
  slow = [r for r in rows if r["mode"] == "uncached"]
  if slow:
    fast = next(r for r in rows if r["mode"] == "cached" and r["batch"] == slow[0]["batch"])
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
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.batch_sizes.split(",") if s]
  cfg = variants.get_config(args.variant)
  rows = run(args.variant, sizes, args.max_decode_len, args.sampler, args.num_samples,
             args.repeats, args.dtype, uncached=not args.no_uncached)
  header = (f"{args.variant}: {cfg.img.num_frames} frames x {cfg.img.image_size}px "
            f"({cfg.img.num_frames * cfg.tokens_per_frame} visual tokens) + {PROMPT_LEN}-token "
            f"prompt, {args.max_decode_len} new tokens, {args.sampler} x{args.num_samples}, "
            f"{args.dtype}, {jax.devices()[0].platform} ({jax.device_count()} device(s), 1 used)")
  print(format_table(rows, header), flush=True)


if __name__ == "__main__":
  main()

"""The training input at pod scale: is the real input path as fast as synthetic batches?

  python -m viit_jax.benchmarks.input [--world=DIR] [--steps=20] [--decode_workers=2] \
      [--config_args=key=value,...] [--resume_step=10000] [--long_s=60] [--memory_steps=20]

Four figures, each printed with its reference measured in the same run:

1. Steps/s of the VLM trainer's demo phase-1 step (configs/demo_phase1.py, `data.process_split=
   indexed`, `data.decode_workers` from the flag) fed by the real input path (`data.vlm_batches.make_data_fn`:
   PyAV decoding of the demo world's clips, seqio preprocessors, tf.data batching) versus the same
   compiled step fed synthetic in-memory batches (random frames, the text of one real batch). The
   step is `loop.train_step`, jitted and AOT-compiled exactly as `loop.run` does (state shardings,
   donated state); each step runs the loop's body: next host batch -> `host_local_to_global` ->
   step -> fetch the previous step's loss. Synthetic and real steps alternate in `--rounds`
   blocks, so that a change of the (shared) machine's speed hits both; each real block starts a
   fresh `data_fn` at the next data position and runs `--warmup` untimed steps first. Line:
   `real/synthetic step-time ratio: X` (goal <= 1.05). Where the step runs on the CPU (no
   accelerator), the input's threads and the step share the cores: the ratio then also counts
   the input's CPU use, and the time spent waiting in `next(batch)` (printed) is the stall proper.
   `data.cache_decoded` is off by default (a pod-scale corpus does not fit in host memory; the
   demo config turns it on): every step decodes its clips. `--cache_decoded` turns it on.
2. Time to the first batch of `data_fn(start)` at start 0 and at `--resume_step` (median of
   `--resume_repeats`, alternating, after one warm-up call): the indexed input reads nothing
   before the step, so the two should be equal within noise.
3. Frames/s of `data.video.decode_frames` (the config's frames, fps and resolution; centred
   window) on the demo world's clips, and on a `--long_s` (60) s and a `--short_s` (4) s 320x240
   30 fps H.264 clip that this script encodes with PyAV (libx264, its default GOP) into a temp
   dir. Line: `60 s clip / 4 s clip decode time: X (goal < 5)`; the long clip decoded from its
   first frame (`seek=False`) is printed as the reference of what seeking saves.
4. Host memory of the input path alone at 1 and 8 decode workers: each setting runs
   `data_fn(0)` for `--memory_steps` batches in a fresh subprocess (JAX on CPU; no model), so the
   peaks do not mix. The figure is the peak resident set size (VmHWM in /proc/self/status) during
   the input minus the resident set size just before it, with the peak reset first (writing 5 to
   /proc/self/clear_refs; where that is refused, ru_maxrss from resource.getrusage, which is then
   a lower bound if the start-up peak was higher). RSS, not tracemalloc: it also counts what
   tracemalloc cannot see (FFmpeg's frame buffers, TensorFlow's tensors, thread stacks). Line:
   `input host memory: 1 worker X MiB, 8 workers Y MiB` (reference: the RSS before the input).
   The same subprocesses print the input's batches/s alone (no model on the cores), the
   reference for figure 1's real-input steps/s.

Without `--world`, the demo world's `test` preset is rendered into a temp dir (seconds).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

CHILD_TAG = "INPUT_MEMORY_RESULT "


# ------------------------------------------------------------------------------------------------
# Configuration.


def make_config(world: str, decode_workers: int, config_args: str, cache_decoded: bool) -> Any:
  """configs/demo_phase1.py with the indexed input on `world`, trained from scratch."""
  from configs import demo_phase1  # pylint: disable=import-outside-toplevel
  config = demo_phase1.get_config(config_args or None)
  config.data.world_dir = str(world)
  config.data.process_split = "indexed"
  config.data.decode_workers = int(decode_workers)
  config.data.cache_decoded = bool(cache_decoded)
  config.init_from = ""  # Speed does not depend on the weights: no phase-0 workdir needed.
  config.init_required = False
  config.train.eval_batches = 0  # No eval data is read or compiled.
  return config


def _wait_for_idle_decoders(timeout_s: float = 30.0, window_s: float = 0.2,
                            busy_fraction: float = 0.1) -> None:
  """Waits until this process uses less than `busy_fraction` of a core over `window_s`: an
  abandoned data_fn iterator keeps filling its bounded buffers for a moment (decode threads,
  tf.data), and its work must not land in the next timing."""
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(window_s)
    if (time.process_time() - cpu) / (time.perf_counter() - wall) < busy_fraction:
      return


# ------------------------------------------------------------------------------------------------
# 1. Real input vs synthetic batches through the compiled train step.


def compile_step(task: Any, config: Any, mesh: Any) -> tuple[Any, Any]:
  """(AOT-compiled train step, fresh state), built as loop.run builds them."""
  from viit_jax import loop  # pylint: disable=import-outside-toplevel
  spec = loop.state_spec(task, config, mesh)
  fresh_params, make_state = loop.fresh_state_fn(task, config, mesh, spec)
  return loop.compile_step(task, config, mesh, spec), make_state(fresh_params())


def run_steps(compiled: Any, state: Any, batches: Iterator[dict[str, np.ndarray]], n: int,
              mesh: Any) -> tuple[Any, float, float, float]:
  """(state, seconds, seconds waiting for the input, last loss) of n steps of loop.run's body."""
  import jax  # pylint: disable=import-outside-toplevel
  from viit_jax import sharding as sharding_lib  # pylint: disable=import-outside-toplevel
  pending, waited, loss = None, 0.0, math.nan
  t0 = time.perf_counter()
  for _ in range(n):
    t = time.perf_counter()
    host = next(batches)
    waited += time.perf_counter() - t
    batch = sharding_lib.host_local_to_global(dict(host), mesh, sharding_lib.RULES)
    state, metrics = compiled(state, batch)
    if pending is not None:  # The loop checks the previous step while this one runs.
      loss = float(jax.device_get(pending["loss"]))
    pending = metrics
  if pending is not None:
    loss = float(jax.device_get(pending["loss"]))
  jax.block_until_ready(state)
  return state, time.perf_counter() - t0, waited, loss


def synthetic_batches(template: dict[str, np.ndarray], count: int = 4
                      ) -> Iterator[dict[str, np.ndarray]]:
  """Endless in-memory batches: random frames, the text fields of one real batch."""
  rng = np.random.default_rng(0)
  pool = [{**template, "frames": rng.integers(0, 256, template["frames"].shape, np.uint8)}
          for _ in range(count)]
  i = 0
  while True:
    yield pool[i % count]
    i += 1


def bench_steps(task: Any, config: Any, mesh: Any, steps: int, warmup: int,
                rounds: int) -> dict[str, Any]:
  """Alternates `rounds` blocks of synthetic and real steps (`steps` timed steps per side in
  all), so that a change of the shared machine's speed hits both sides. Each real block reads a
  fresh data_fn at the next data position and runs `warmup` untimed steps first (its start-up
  is timed separately, in figure 2)."""
  t0 = time.perf_counter()
  compiled, state = compile_step(task, config, mesh)
  compile_s = time.perf_counter() - t0
  first = task.data_fn(0)
  template = next(first)
  del first
  _wait_for_idle_decoders()
  per_round = max(1, math.ceil(steps / rounds))
  synthetic = synthetic_batches(template)
  state, _, _, _ = run_steps(compiled, state, synthetic, warmup, mesh)
  syn, real, waited, position, loss = [], [], 0.0, 0, math.nan
  for _ in range(rounds):
    state, sec, _, _ = run_steps(compiled, state, synthetic, per_round, mesh)
    syn.append(sec / per_round)
    batches = task.data_fn(position)
    state, _, _, _ = run_steps(compiled, state, batches, warmup, mesh)
    state, sec, wait, loss = run_steps(compiled, state, batches, per_round, mesh)
    del batches
    position += warmup + per_round
    real.append(sec / per_round)
    waited += wait
    _wait_for_idle_decoders()
  syn_step, real_step = statistics.mean(syn), statistics.mean(real)
  return {"compile_s": compile_s, "steps_per_side": per_round * rounds, "rounds": rounds,
          "synthetic_step_s": syn_step, "real_step_s": real_step,
          "round_ratios": [r / s for r, s in zip(real, syn)],
          "real_wait_s": waited / (per_round * rounds), "loss": loss,
          "ratio": real_step / syn_step}


# ------------------------------------------------------------------------------------------------
# 2. Time to the first batch when resuming.


def bench_resume(data_fn: Any, resume_step: int, repeats: int) -> dict[int, list[float]]:
  """Seconds from data_fn(start) to its first batch, at start 0 and `resume_step`."""
  warm = data_fn(1)  # One-off costs (tf.data tracing, imports) out of the timings.
  next(warm)
  del warm
  _wait_for_idle_decoders()
  times: dict[int, list[float]] = {0: [], resume_step: []}
  for r in range(repeats):
    for start in ((0, resume_step) if r % 2 == 0 else (resume_step, 0)):
      t0 = time.perf_counter()
      it = data_fn(start)
      next(it)
      times[start].append(time.perf_counter() - t0)
      del it
      _wait_for_idle_decoders()
  return times


# ------------------------------------------------------------------------------------------------
# 3. decode_frames on the demo world and on long vs short encoded clips.


def encode_clip(path: pathlib.Path, seconds: float, *, fps: int = 30, width: int = 320,
                height: int = 240) -> pathlib.Path:
  """A `seconds` long H.264 (libx264, its default GOP) clip of moving shapes over a textured,
  drifting background, written with PyAV."""
  import av  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  texture = rng.integers(0, 256, (height * 2, width * 2, 3), np.uint8)
  yy, xx = np.mgrid[0:height, 0:width]
  with av.open(str(path), mode="w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "veryfast"}
    for i in range(int(round(seconds * fps))):
      dx, dy = (i * 2) % width, (i // 2) % height
      img = texture[dy:dy + height, dx:dx + width].copy() // 2
      cx, cy = (40 + 3 * i) % width, (60 + 2 * i) % height
      img[(xx - cx) ** 2 + (yy - cy) ** 2 < 900] = ((i * 5) % 256, 200, 80)
      img[(abs(xx - (width - cx)) < 25) & (abs(yy - (height - cy)) < 25)] = (30, 60, (i * 3) % 256)
      frame = av.VideoFrame.from_ndarray(img, format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


def keyframe_interval_s(path: pathlib.Path) -> float:
  """Mean seconds between keyframes (from demuxing)."""
  import av  # pylint: disable=import-outside-toplevel
  with av.open(str(path)) as container:
    stream = container.streams.video[0]
    times = [float(p.pts * stream.time_base) for p in container.demux(stream)
             if p.size and p.is_keyframe]
  return (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else math.inf


def time_decode(path: pathlib.Path, config: Any, repeats: int, **kw: Any) -> float:
  """Median seconds of decode_frames(path) (config's frames, fps, res; centred window)."""
  from data import video  # pylint: disable=import-outside-toplevel
  d = config.data
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    video.decode_frames(path, int(d.num_frames), float(d.fps), int(d.res), mode="uniform", **kw)
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def bench_decode(world: pathlib.Path, config: Any, tmp: pathlib.Path, *, clips: int,
                 long_s: float, short_s: float, repeats: int) -> dict[str, Any]:
  from data import video  # pylint: disable=import-outside-toplevel
  d = config.data
  t = int(d.num_frames)
  paths = sorted(world.rglob("*.mp4"))[:clips]
  ok, rejected = 0, 0
  t0 = time.perf_counter()
  for p in paths:
    try:
      video.decode_frames(p, t, float(d.fps), int(d.res), mode="uniform")
      ok += 1
    except video.VideoError:
      rejected += 1
  world_s = time.perf_counter() - t0
  long_path = encode_clip(tmp / f"long_{long_s:g}s.mp4", long_s)
  short_path = encode_clip(tmp / f"short_{short_s:g}s.mp4", short_s)
  short = time_decode(short_path, config, repeats)
  long = time_decode(long_path, config, repeats)
  long_from_start = time_decode(long_path, config, 1, seek=False)
  return {"world_clips": ok, "world_rejected": rejected, "world_s": world_s,
          "world_fps": ok * t / world_s if world_s > 0 else math.nan,
          "short_s": short, "long_s": long, "long_from_start_s": long_from_start,
          "short_fps": t / short, "long_fps": t / long, "long_from_start_fps": t / long_from_start,
          "gop_s": keyframe_interval_s(long_path), "ratio": long / short}


# ------------------------------------------------------------------------------------------------
# 4. Host memory of the input alone, one fresh process per setting.


def _status_kib(field: str) -> int | None:
  try:
    m = re.search(rf"^{field}:\s+(\d+) kB", pathlib.Path("/proc/self/status").read_text(), re.M)
  except OSError:
    return None
  return int(m.group(1)) if m else None


def memory_child(world: str, workers: int, config_args: str, cache_decoded: bool,
                 steps: int) -> dict[str, Any]:
  """Runs in the subprocess: the input alone for `steps` batches; its peak RSS delta in MiB and
  its batches/s after the first."""
  steps = max(2, steps)
  from data import registry  # pylint: disable=import-outside-toplevel
  from data import vlm_batches  # pylint: disable=import-outside-toplevel
  config = make_config(world, workers, config_args, cache_decoded)
  data_fn = vlm_batches.make_data_fn(config, registry.register_for_training(config.data))
  method = "VmHWM after clearing it (/proc/self/clear_refs)"
  try:
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # Resets VmHWM to the current RSS.
    before = _status_kib("VmRSS")
    if before is None:
      raise OSError("no VmRSS")
  except OSError:
    method = "ru_maxrss (resource.getrusage)"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  t0 = time.perf_counter()
  batches = data_fn(0)
  next(batches)
  t1 = time.perf_counter()
  for _ in range(steps - 1):
    next(batches)
  t2 = time.perf_counter()
  if method.startswith("VmHWM"):
    peak = _status_kib("VmHWM")
  else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {"workers": workers, "before_mib": before / 1024, "peak_mib": peak / 1024,
          "delta_mib": (peak - before) / 1024, "method": method, "steps": steps,
          "first_batch_s": t1 - t0,
          "batches_per_s": (steps - 1) / (t2 - t1) if steps > 1 else math.nan}


def bench_memory(world: str, workers: Sequence[int], config_args: str, cache_decoded: bool,
                 steps: int) -> list[dict[str, Any]]:
  repo = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH"))
                                        if p))
  rows = []
  for w in workers:
    cmd = [sys.executable, "-m", "viit_jax.benchmarks.input", "--memory_child",
           f"--world={world}", f"--decode_workers={w}", f"--memory_steps={steps}",
           f"--config_args={config_args}"] + (["--cache_decoded"] if cache_decoded else [])
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(CHILD_TAG)]
    if proc.returncode != 0 or not lines:
      raise RuntimeError(f"memory subprocess ({w} workers) failed with {proc.returncode}:\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    rows.append(json.loads(lines[-1][len(CHILD_TAG):]))
  return rows


# ------------------------------------------------------------------------------------------------
# Main.


@contextlib.contextmanager
def _world(path: str | None) -> Iterator[pathlib.Path]:
  if path:
    yield pathlib.Path(path).resolve()
    return
  from data import demo_world  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory(prefix="input_bench_world_") as tmp:
    t0 = time.perf_counter()
    demo_world.generate(tmp, preset="test", seed=0)
    print(f"rendered the demo world's test preset into {tmp} in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)
    yield pathlib.Path(tmp)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--world", default="", help="demo world root; default: render the test "
                      "preset into a temp dir")
  parser.add_argument("--steps", type=int, default=20, help="timed steps of the real input (and "
                      "as many synthetic ones), in all")
  parser.add_argument("--rounds", type=int, default=4, help="alternating synthetic/real blocks")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each real block "
                      "(and before the first synthetic one)")
  parser.add_argument("--decode_workers", type=int, default=2, help="data.decode_workers")
  parser.add_argument("--cache_decoded", action="store_true",
                      help="data.cache_decoded (off: every step decodes its clips)")
  parser.add_argument("--config_args", default="",
                      help="extra key=value overrides of configs/demo_phase1.py")
  parser.add_argument("--resume_step", type=int, default=10_000)
  parser.add_argument("--resume_repeats", type=int, default=5)
  parser.add_argument("--decode_clips", type=int, default=48, help="demo world clips decoded")
  parser.add_argument("--long_s", type=float, default=60.0)
  parser.add_argument("--short_s", type=float, default=4.0)
  parser.add_argument("--decode_repeats", type=int, default=3)
  parser.add_argument("--memory_workers", default="1,8")
  parser.add_argument("--memory_steps", type=int, default=20,
                      help="batches read by each memory subprocess (>= 2)")
  parser.add_argument("--skip", default="", help="comma-separated sections to skip: "
                      "steps,resume,decode,memory")
  parser.add_argument("--memory_child", action="store_true", help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  if args.memory_child:
    result = memory_child(args.world, args.decode_workers, args.config_args, args.cache_decoded,
                          args.memory_steps)
    print(CHILD_TAG + json.dumps(result), flush=True)
    return result
  skip = {s for s in args.skip.split(",") if s}
  import jax  # pylint: disable=import-outside-toplevel
  from viit_jax import runtime  # pylint: disable=import-outside-toplevel
  from viit_jax import sharding as sharding_lib  # pylint: disable=import-outside-toplevel
  from data import registry  # pylint: disable=import-outside-toplevel
  from data import vlm_batches  # pylint: disable=import-outside-toplevel
  from viit_jax import programs  # pylint: disable=import-outside-toplevel
  runtime.configure_runtime()
  results: dict[str, Any] = {}
  t_all = time.perf_counter()
  with _world(args.world) as world, tempfile.TemporaryDirectory(prefix="input_bench_") as tmp:
    config = make_config(str(world), args.decode_workers, args.config_args, args.cache_decoded)
    d, tc = config.data, config.train
    print(f"input benchmark: {config.experiment} ({config.model.variant} model), batch "
          f"{tc.batch_size}, {d.num_frames} frames x {d.res}px at {d.fps:g} fps, task {d.task}, "
          f"process_split={d.process_split}, decode_workers={d.decode_workers}, "
          f"cache_decoded={d.cache_decoded}; {jax.devices()[0].platform} "
          f"({jax.device_count()} device(s)), {os.cpu_count()} CPU(s); world {world}", flush=True)

    if "steps" not in skip or "resume" not in skip:
      mesh = sharding_lib.make_mesh(dict(config.mesh))
      vocab = registry.register_for_training(config.data)  # The VLM trainer's task, no eval.
      task = programs.vlm_task(config, programs.vlm_model_config(config, vocab.vocab_size),
                               data_fn=vlm_batches.make_data_fn(config, vocab))
    if "steps" not in skip:
      r = results["steps"] = bench_steps(task, config, mesh, args.steps, args.warmup,
                                         args.rounds)
      print(f"train step compiled in {r['compile_s']:.1f}s; {r['steps_per_side']} timed steps "
            f"per side in {r['rounds']} alternating rounds, each real round after "
            f"{args.warmup} untimed steps", flush=True)
      print(f"synthetic in-memory batches: {1 / r['synthetic_step_s']:.2f} steps/s "
            f"({r['synthetic_step_s'] * 1e3:.1f} ms/step)", flush=True)
      print(f"real input (indexed, {d.decode_workers} decode workers): "
            f"{1 / r['real_step_s']:.2f} steps/s ({r['real_step_s'] * 1e3:.1f} ms/step, of which "
            f"{r['real_wait_s'] * 1e3:.1f} ms waiting for the batch; loss {r['loss']:.3f}); "
            "ratio per round: " + ", ".join(f"{x:.2f}" for x in r["round_ratios"]), flush=True)
      print("goal: real/synthetic step time <= 1.05", flush=True)
      print(f"real/synthetic step-time ratio: {r['ratio']:.3f}", flush=True)

    if "resume" not in skip:
      times = results["resume"] = bench_resume(task.data_fn, args.resume_step,
                                               args.resume_repeats)
      t0, tn = statistics.median(times[0]), statistics.median(times[args.resume_step])
      results["resume_ratio"] = tn / t0
      fmt = lambda ts: ", ".join(f"{t:.2f}" for t in ts)  # noqa: E731
      print(f"time to first batch (median of {args.resume_repeats}): step 0 {t0:.2f}s "
            f"[{fmt(times[0])}], step {args.resume_step} {tn:.2f}s "
            f"[{fmt(times[args.resume_step])}]", flush=True)
      print(f"first batch at step {args.resume_step} / at step 0 time ratio: {tn / t0:.3f} "
            f"(goal: 1 within noise)", flush=True)

    if "decode" not in skip:
      r = results["decode"] = bench_decode(
          world, config, pathlib.Path(tmp), clips=args.decode_clips, long_s=args.long_s,
          short_s=args.short_s, repeats=args.decode_repeats)
      per_clip = r["world_s"] / max(1, r["world_clips"])
      print(f"decode_frames on {r['world_clips']} demo world clips ({r['world_rejected']} "
            f"rejected): {r['world_fps']:.0f} frames/s ({per_clip * 1e3:.1f} ms/clip)",
            flush=True)
      print(f"decode_frames, 320x240 30 fps H.264 (keyframe every {r['gop_s']:.1f} s), centred "
            f"{d.num_frames}-frame window: {args.short_s:g} s clip {r['short_s'] * 1e3:.1f} ms "
            f"({r['short_fps']:.0f} frames/s), {args.long_s:g} s clip {r['long_s'] * 1e3:.1f} ms "
            f"({r['long_fps']:.0f} frames/s); {args.long_s:g} s clip decoded from its first "
            f"frame (seek=False): {r['long_from_start_s'] * 1e3:.1f} ms", flush=True)
      print(f"{args.long_s:g} s clip / {args.short_s:g} s clip decode time: {r['ratio']:.2f} "
            f"(goal < 5)", flush=True)

    if "memory" not in skip:
      workers = [int(w) for w in args.memory_workers.split(",") if w]
      rows = results["memory"] = bench_memory(str(world), workers, args.config_args,
                                              args.cache_decoded, args.memory_steps)
      for row in rows:
        print(f"input alone (no model), {row['workers']} decode worker(s), {row['steps']} "
              f"batches: first after {row['first_batch_s']:.1f}s, then "
              f"{row['batches_per_s']:.2f} batches/s; RSS {row['before_mib']:.0f} MiB before, "
              f"peak {row['peak_mib']:.0f} MiB ({row['method']})", flush=True)
      print("input host memory: " + ", ".join(
          f"{row['workers']} worker{'s' if row['workers'] != 1 else ''} "
          f"{row['delta_mib']:.1f} MiB" for row in rows), flush=True)
  print(f"input benchmark done in {time.perf_counter() - t_all:.0f}s", flush=True)
  return results


if __name__ == "__main__":
  main()

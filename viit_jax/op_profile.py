"""Where a compiled program's time goes: a `jax.profiler` trace summed per XLA op.

  rows = op_profile.read(trace_dir, compiled.as_text(), steps=5)
  print(op_profile.format_top(rows, step_seconds, top=15))

Every event of the trace whose name is an instruction of the compiled module (a fusion, a dot, a
copy, ...) counts, on every plane and line: on a CPU the ops run on XLA's worker threads, so an op
split over two threads counts twice and the column is CPU time; on TPU / GPU the device planes'
op lines give device time. Each op is shown with its result shape and the model code it came from
(the HLO `op_name` metadata: `jvp(...)` is the forward pass, `transpose(jvp(...))` the backward).
`by_source` sums ops per source with layer indices removed, so both layers of a block add up.
The trainers print the same table after `train.profile_steps` (viit_jax.loop.Profile), and
`python -m viit_jax.benchmarks.train_step --top_ops=N` after its timed steps.
"""
from __future__ import annotations

import collections
import dataclasses
import re

from jax import profiler

from viit_jax import paths

_INSTRUCTION = re.compile(r"\s*(?:ROOT )?%(\S+) = (\S+?)[\s{]")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_OPCODE = re.compile(r"\s([a-z][\w-]*)\(")
_CONTAINERS = ("while", "conditional", "call")


@dataclasses.dataclass(frozen=True)
class OpTime:
  """One XLA op: seconds per step (summed over the threads / devices it ran on), its result shape,
  and the model code it came from ('' when XLA made it: copies, converts)."""
  name: str
  seconds: float
  shape: str
  source: str


def instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
  """Instruction name -> (result shape, source op_name) of every instruction of an HLO module's
  text (`compiled.as_text()`), fused computations' included; not the control-flow ops (while,
  conditional, call), whose trace events contain their bodies' ops."""
  out = {}
  for line in hlo_text.splitlines():
    m = _INSTRUCTION.match(line)
    opcode = _OPCODE.search(line, m.end() - 1) if m else None
    if m and not (opcode and opcode.group(1) in _CONTAINERS):
      source = _OP_NAME.search(line)
      out[m.group(1)] = (m.group(2), source.group(1) if source else "")
  return out


def read(trace_dir: str, hlo_text: str, steps: int) -> list[OpTime]:
  """The ops of the newest trace under `trace_dir` (a `jax.profiler.trace` directory; one host's
  file) that ran the program `hlo_text` for `steps` steps; slowest first.

  Raises:
    FileNotFoundError: no trace under `trace_dir`.
  """
  files = sorted(paths.path(trace_dir).glob("plugins/profile/*/*.xplane.pb"))
  if not files:
    raise FileNotFoundError(
        f"no jax.profiler trace (plugins/profile/*/*.xplane.pb) under {trace_dir}")
  # jax.profiler writes plugins/profile/<start time YYYY_MM_DD_HH_MM_SS>/<host>.xplane.pb.
  data = profiler.ProfileData.from_serialized_xspace(files[-1].read_bytes())
  ops = instructions(hlo_text)
  total: collections.Counter[str] = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in ops:
          total[event.name] += event.duration_ns * 1e-9
  return [OpTime(name, sec / steps, *ops[name]) for name, sec in total.most_common()]


def _clean(source: str) -> str:
  """An op_name without the jit prefix and the layer index: 'bwd llm.transform/attn/reduce_sum'."""
  source = re.sub(r"^jit\([^)]*\)/", "", source)
  backward = source.startswith("transpose(")
  source = re.sub(r"^(transpose\()?jvp\([^)]*\)\)?/?", "", source)
  source = re.sub(r"/(layers|encoderblock)_\d+", "", source)
  source = source.replace("/while/body/closed_call", "")  # A scanned stack's body.
  return ("bwd " if backward else "") + source


def by_source(rows: list[OpTime]) -> list[tuple[str, float]]:
  """Seconds per step summed per source (layer indices removed), slowest first."""
  total: collections.Counter[str] = collections.Counter()
  for r in rows:
    total[_clean(r.source) or "(made by XLA)"] += r.seconds
  return total.most_common()


def format_top(rows: list[OpTime], step_seconds: float, top: int = 15) -> str:
  """The `top` slowest ops and sources, each in ms per step and as a share of the ops' total."""
  total = sum(r.seconds for r in rows) or 1.0
  lines = [f"ops: {1e3 * total:.1f} ms per step summed over threads / devices "
           f"(step {1e3 * step_seconds:.1f} ms wall); slowest ops:"]
  for r in sorted(rows, key=lambda r: -r.seconds)[:top]:
    lines.append(f"  {1e3 * r.seconds:8.2f} ms {100 * r.seconds / total:5.1f}%  {r.name:<28} "
                 f"{r.shape[:36]:<36} {_clean(r.source)[:80]}")
  lines.append("slowest sources (layers summed):")
  for source, sec in by_source(rows)[:top]:
    lines.append(f"  {1e3 * sec:8.2f} ms {100 * sec / total:5.1f}%  {source[:100]}")
  return "\n".join(lines)

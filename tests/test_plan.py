"""viit_jax.plan: the entry points' programs compiled by libtpu's compiler for a TPU topology; the
cost table.

The compile tests need libtpu (the `[tpu]` extra; `make test` installs it) and are defined only when
it imports, so a machine without it collects the rest rather than skipping them.
"""
import importlib.util
import re

import pytest

from viit_jax import aot
from viit_jax import flops
from viit_jax import plan

libtpu = importlib.util.find_spec("libtpu")

TINY_VLM = ("configs/demo_phase1.py:model.variant=test,data.res=16,data.num_frames=2,"
            "data.text_len=16,train.batch_size=8")
TOTAL_RE = re.compile(r"^total per chip: ([\d.]+) GiB of ([\d.]+) GiB HBM$")


def _last_line(text: str) -> str:
  return text.strip().splitlines()[-1]


def test_parse_topology():
  t = plan.parse_topology("v5e-128")
  assert (t.topology_name, t.generation, t.chips, t.hbm_gib) == ("v5e:8x16", "v5e", 128, 16)
  assert plan.parse_topology("v5litepod-256").topology_name == "v5e:16x16"
  assert plan.parse_topology("v5e:2x4").chips == 8
  v5p = plan.parse_topology("v5p-256")  # Cloud TPU names v5p by TensorCores: 128 chips.
  assert (v5p.topology_name, v5p.chips, v5p.hbm_gib) == ("v5p:4x4x8", 128, 95)
  assert plan.parse_topology("v6e-256").hbm_gib == 32
  with pytest.raises(ValueError, match="unknown topology"):
    plan.parse_topology("v9-1")


def test_collective_bytes_from_hlo():
  hlo = """
  %all-gather.1 = bf16[8,128]{1,0} all-gather(bf16[1,128]{1,0} %p), dimensions={0}
  %ar = (f32[4]{0}, f32[2,2]{1,0}) all-reduce(f32[4]{0} %a, f32[2,2]{1,0} %b), to_apply=%add
  %rs-start = f32[16]{0} reduce-scatter(f32[128]{0} %c), dimensions={0}
  %add.2 = f32[4]{0} add(f32[4]{0} %x, f32[4]{0} %y)
  """
  out = aot.collective_bytes(hlo)
  assert out["all-gather"] == 8 * 128 * 2
  assert out["all-reduce"] == 4 * 4 + 4 * 4
  assert out["reduce-scatter"] == 16 * 4
  assert out["all-to-all"] == out["collective-permute"] == 0


def test_cost_table_prints_positive_hours(capsys):
  assert plan.main(["--cost"]) == 0
  out = capsys.readouterr().out
  assert "MFU 40%" in out and "v5e 197" in out and "v6e 918" in out
  rows = [l for l in out.splitlines() if l.startswith(("stage 1", "stage 2", "dual encoder",
                                                       "auto-labeling"))]
  assert len(rows) == 4, out
  for row in rows:
    cells = row.split()
    hours = [float(c.replace(",", "")) for c in cells if re.fullmatch(r"[\d,]+", c)]
    # FLOPs/step is in e-notation; the numbers left are steps and the four chip-hour cells.
    assert len(hours) >= 5 and all(h > 0 for h in hours[-4:]), row


def test_analytic_flops_count_frozen_towers_less():
  from viit_jax.models import variants
  from viit_jax import sharding as sharding_lib
  import jax
  one = sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
  cfg = aot.train_program(plan.load_config(TINY_VLM), one).model_cfg
  full = flops.analytic_step_flops(cfg, 8, ("img/x", "llm/y"), "none")
  frozen_llm = flops.analytic_step_flops(cfg, 8, ("img/x",), "none")
  remat = flops.analytic_step_flops(cfg, 8, ("img/x", "llm/y"), "full")
  assert full.model == 3 * 8 * variants.flops_per_example(cfg)
  assert frozen_llm.model < full.model
  assert remat.hardware == full.model + 8 * variants.flops_per_example(cfg)
  dots = flops.analytic_step_flops(cfg, 8, ("img/x", "llm/y"), "dots")  # Saves every matmul.
  assert dots.hardware == dots.model == full.model


def test_program_dots_count_every_matmul_as_often_as_it_runs():
  """Nested jaxprs (jit, scan, while, cond) are walked: a scan's body counts `length` times, a
  while loop's `while_trips` times, a cond's costliest branch once; batch dims are the dot's."""
  import jax
  import jax.numpy as jnp
  x, w, v = jnp.ones((2, 3, 4)), jnp.ones((4, 5)), jnp.ones((5, 5))
  z = jnp.ones((2, 4, 7), jnp.bfloat16)

  def f(x, w, v, z):
    y = jnp.einsum("bmk,kn->bmn", x, w).reshape(6, 5)  # [6, 4] x [4, 5] inside einsum's jit
    batched = jnp.einsum("bmk,bkn->bmn", x.astype(jnp.bfloat16), z)  # 2 x [3, 4] x [4, 7]
    y, _ = jax.lax.scan(lambda c, _: (c @ v, None), y, None, length=7)
    y = jax.lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] @ v), (0, y))[1]
    y = jax.lax.cond(y.sum() > 0, lambda c: c @ v @ v, lambda c: c @ v, y)
    return y, batched

  dots = flops.program_dots(jax.make_jaxpr(f)(x, w, v, z), while_trips=3)
  square = flops.Dot(1, 6, 5, 5, "float32", "float32")
  assert dots == {flops.Dot(1, 6, 4, 5, "float32", "float32"): 1, square: 7 + 3 + 2,
                  flops.Dot(2, 3, 4, 7, "bfloat16", "bfloat16"): 1}
  assert square.flops == 2 * 6 * 5 * 5
  ceiling = flops.matmul_ceiling(jax.make_jaxpr(f)(x, w, v, z), while_trips=3)
  assert ceiling.flops == sum(d.flops * c for d, c in dots.items())
  assert ceiling.seconds == pytest.approx(sum(c * s for _, c, s in ceiling.rows))
  assert {d for d, _, _ in ceiling.rows} == set(dots) and all(s > 0 for _, _, s in ceiling.rows)


if libtpu is not None:

  def test_plan_compiles_the_vlm_step_for_v5e_2x4(capsys):
    """The test-size VLM (phase-1 config: LM frozen) on 8 v5e chips: the compiler's figures are
    positive, below HBM, and the last line has the documented format."""
    config = plan.load_config(TINY_VLM)
    p, eval_decode = plan.plan(config, plan.parse_topology("v5e:2x4"))
    assert p.fits and p.hbm_gib == 16
    mem = p.memory
    for key in ("arguments", "parameters", "optimizer state", "batch", "outputs", "code", "total"):
      assert 0 < mem[key] < 16 * aot.GIB, (key, mem)
    assert 0 <= mem["temporaries"] < 16 * aot.GIB  # This tiny step reports 0 B on v5e.
    assert mem["parameters"] + mem["optimizer state"] + mem["batch"] <= mem["arguments"]
    assert p.compiled_flops and p.compiled_flops > 0 and p.analytic.hardware > 0
    m = TOTAL_RE.match(p.lines[-1])
    assert m and 0 < float(m.group(1)) < 16 and m.group(2) == "16", p.lines[-1]
    text = "\n".join(p.lines)
    assert "mesh {'data': 1, 'fsdp': 8, 'tensor': 1}" in text
    assert "compiled / analytic" in text and "collectives" in text
    # The trainer's eval samples: greedy decode with the optimizer state resident meanwhile.
    assert "eval decode step" in eval_decode.lines[0] and eval_decode.fits
    assert eval_decode.memory["optimizer state"] == mem["optimizer state"] > 0
    assert eval_decode.memory["parameters"] == mem["parameters"]
    assert TOTAL_RE.match(eval_decode.lines[-1]), eval_decode.lines

  def test_plan_compiles_the_auto_labeling_decode_step(capsys):
    """The auto-labeling decode step (prefill + K-sample extend loop) on one host of a v5e-16
    (compiled as that host's v5e:2x2), bfloat16 weights sharded over its 4 chips."""
    code = plan.main([
        "--config=configs/autolabel_webvid.py:model.variant=test,data.res=16,data.num_frames=2,"
        "batch_size=8", "--topology=v5e-16", "--full_flops"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "decode step (auto-labeling)" in out and "params in bfloat16" in out
    assert "one host's 4 chips, compiled as v5e:2x2" in out and "each of the 4 hosts" in out
    assert "mesh {'data': 1, 'fsdp': 4, 'tensor': 1}" in out
    assert "every layer counted: compiled" in out
    m = TOTAL_RE.match(_last_line(out))
    assert m and 0 < float(m.group(1)) < 16

  def test_plan_cli_dual_encoder_and_multislice(capsys):
    """The dual encoder's step on 2 x v5e:2x4 (16 chips, data across the slices) exits 0."""
    code = plan.main([
        "--config=configs/dual_encoder_demo.py:model.variant=test-de,data.res=16,"
        "data.num_frames=2,data.text_len=8,train.batch_size=16,mesh.data=2",
        "--topology=v5e:2x4", "--num_slices=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dual_encoder train step" in out and "2 slice(s): 16 chips" in out
    assert "mesh {'data': 2, 'fsdp': 8, 'tensor': 1}" in out
    m = TOTAL_RE.match(_last_line(out))
    assert m and 0 < float(m.group(1)) < 16

  def test_plan_too_large_batch_exits_nonzero(capsys):
    """A batch whose activations cannot fit: libtpu's compiler refuses it; plan says so, prints
    the total line with the amount the compiler named, and exits 1."""
    code = plan.main([
        "--config=configs/demo_phase1.py:model.variant=test,data.res=224,data.num_frames=2,"
        "data.text_len=16,train.batch_size=16384", "--topology=v5e:2x4"])
    captured = capsys.readouterr()
    assert code == 1
    assert "does not fit" in captured.err and "GiB HBM of v5e" in captured.err
    m = TOTAL_RE.match(_last_line(captured.out))
    assert m and float(m.group(1)) > 16 and m.group(2) == "16", captured.out
    assert "RESOURCE_EXHAUSTED" in captured.out

  def test_plan_batch_that_the_mesh_cannot_split_exits_nonzero(capsys):
    """The paper's phase-1 batch (64) on pure FSDP over 128 chips: refused before compiling, with
    the mesh that would work."""
    code = plan.main(["--config=" + TINY_VLM.replace("batch_size=8", "batch_size=4"),
                      "--topology=v5e:2x4"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot be split over the 8 batch shards" in err and "mesh.fsdp=4,mesh.tensor=2" in err
    # --cost --compiled falls back to analytic FLOPs for such a phase, and says why.
    flops, basis = plan._phase_flops(  # pylint: disable=protected-access
        plan.Phase("t", "configs/demo_phase1.py", 1, 4, "v5e-8", ""), plan.parse_topology("v5e:2x4"))
    assert flops > 0 and basis.startswith("analytic") and "not compiled on v5e:2x4" in basis

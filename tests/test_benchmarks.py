"""Benchmarks that print figures: each runs end to end on the test world with a few steps."""
import json
import math
import re

import numpy as np
import pytest

from data import demo_world as demo_world_lib
from viit_jax import caption_sets
from viit_jax.demo import caption_ceiling as dcc
from viit_jax.demo import perception as dp


def test_demo_perception_probes_read_the_worlds_truth_and_train(demo_world, capsys):
  records = [json.loads(l) for l in (demo_world / "world" / "clips.jsonl").read_text().splitlines()]
  single = [r for r in records if len(r["actors"]) == 1 and r["dataset"] != "nextqa"]
  frames, captions, labels = dp.shape_data([demo_world])
  assert frames.shape == (len(single), 1, dp.RES, dp.RES, 3) and frames.dtype == np.uint8
  for r, c, y in zip(single, captions, labels):
    a = r["actors"][0]
    assert c == f"a {a['size']} {a['colour']} {a['shape']}" and dp.SHAPES[y] == a["shape"]
  frames, captions, labels = dp.motion_data([demo_world])
  moving = [r for r in single if r["dataset"] != "stills"
            and len({e["direction"] for e in r["events"] if e["kind"] == "move"}) == 1]
  assert frames.shape == (len(moving), 8, dp.RES, dp.RES, 3) and len(moving) >= 5
  for r, c, y in zip(moving, captions, labels):
    d = next(e["direction"] for e in r["events"] if e["kind"] == "move")
    assert c == f"it moves {d}" and dp.DIRECTIONS[y] == d
  frames, captions, labels = dp.colour_data([demo_world])
  changing = [r for r in single if r["dataset"] != "stills"
              and sum(e["kind"] == "change_colour" for e in r["events"]) == 1]
  assert frames.shape == (len(changing), 8, dp.RES, dp.RES, 3) and len(changing) >= 5
  for r, c, y in zip(changing, captions, labels):
    to = next(e["to"] for e in r["events"] if e["kind"] == "change_colour")
    assert c == f"it turns {to}" and dp.COLOURS[y] == to
  frames, captions, labels = dp.event_data([demo_world])
  one_event = [r for r in single if r["dataset"] != "stills" and len(r["events"]) == 1
               and r["events"][0]["kind"] in dp.EVENT_VERBS]
  assert frames.shape == (len(one_event), 8, dp.RES, dp.RES, 3) and len(one_event) >= 5
  for r, c, y in zip(one_event, captions, labels):
    verb = dp.EVENT_VERBS[r["events"][0]["kind"]]
    assert c == f"it {verb}" and dp.EVENTS[y] == verb
  assert len(set(labels.tolist())) >= 3  # Several kinds, not one.

  # shape_vlm is vlm_probe on the shape data above (compiling it too would cost CI ~10 s).
  results = dp.main([f"--world={demo_world}", "--probes=shape_head,motion_vlm,colour_vlm,event_vlm",
                     "--steps=2", "--eval_every=1", "--batch_size=4"])
  assert set(results) == {"shape_head", "motion_vlm", "colour_vlm", "event_vlm"}
  for rows in results.values():
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss"]) and 0 <= r["held_out"] <= 1 and 0 <= r["train"] <= 1
               for r in rows)
  out = capsys.readouterr().out
  assert "| probe | steps | held-out acc |" in out and "[motion_vlm (llm)] step 2/2" in out
  assert "[colour_vlm (llm)] step 2/2" in out and "[event_vlm (llm)] step 2/2" in out


def test_text_retrieval_ranks_the_document_that_shares_the_rare_terms():
  docs = ["a big red circle grows", "a big red square grows", "a small blue circle shrinks",
          "a small blue square shrinks"]
  assert dcc.text_retrieval(docs, docs) == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0,
                                            "MedR": 1.0}
  # Query 0 names 'red square', doc 1's words: doc 1 ranks first; the true doc 0 ('a', 'red') ties
  # with doc 3 ('a', 'square') for second place, so it is in the top 2 half the time. The other
  # queries find their own.
  r = dcc.text_retrieval(["a red square", "red square", "small blue circle", "blue square"], docs,
                         ks=(1, 2))
  assert r == {"R@1": 75.0, "R@2": 87.5, "MedR": 1.0}
  # Ties are broken at random in expectation: identical documents score chance.
  assert dcc.text_retrieval(["x", "x"], ["same", "same"], ks=(1,)) == {"R@1": 50.0, "MedR": 1.5}
  assert dcc.text_retrieval(["red"] * 4, ["red"] * 3 + ["blue"], ks=(1, 2)) == {
      "R@1": 25.0, "R@2": 50.0, "MedR": 2.0}
  with pytest.raises(ValueError, match="as many queries"):
    dcc.text_retrieval(["a"], ["a", "b"])


def test_ground_truth_caption_set_is_a_finished_autolabel_version(demo_world, tmp_path):
  records = dcc.pool_records(demo_world)
  ids = sorted(records)[:5]
  truth = dcc.paraphrase_sets(records, ids, 3, seed=0, stream=0)
  assert truth == dcc.paraphrase_sets(records, ids, 3, seed=0, stream=0)
  assert truth != dcc.paraphrase_sets(records, ids, 3, seed=0, stream=1)
  for cid in ids:  # Each paraphrase names a shape and a colour of its own clip.
    r = records[cid]
    shapes = {a["shape"] for a in r["actors"]}
    colours = {a["colour"] for a in r["actors"]} | {e["to"] for e in r["events"] if "to" in e}
    assert len(truth[cid]) == 3
    for t in truth[cid]:
      words = set(t.split())
      assert words & shapes and words & colours, (t, r["caption_canonical"])
      assert not words & (set(demo_world_lib.SHAPES) - shapes), (t, r["caption_canonical"])
  label = tmp_path / "label" / "v1"
  (label / "units").mkdir(parents=True)
  rows = [{"clip_id": cid, "path": f"videos/{cid}.mp4", "segment": None, "alt_text": "x",
           "captions": ["m"]} for cid in ids]
  (label / "units" / "unit-00003.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (label / "manifest.json").write_text(json.dumps({"units": ["unit-00003.jsonl"],
                                                   "corpus": {"video_root": "/v"}}))
  out = dcc.write_caption_set(label, truth, tmp_path / "truth" / "v1")
  back = list(caption_sets.caption_rows(out))
  assert [r["captions"] for r in back] == [truth[cid] for cid in ids]
  assert [{**r, "captions": ["m"]} for r in back] == rows
  assert caption_sets.read_manifest(out)["corpus"] == {"video_root": "/v"}
  with pytest.raises(ValueError, match="no captions for 1 clips"):
    dcc.write_caption_set(label, {cid: truth[cid] for cid in ids[1:]}, tmp_path / "t2")


def test_input_benchmark_prints_its_four_figures(demo_world, capsys):
  """python -m viit_jax.benchmarks.input with tiny settings (test model, 2 steps, an 8 s vs 2 s
  clip, 2-batch memory subprocesses): each of its four figures is printed as a finite number."""
  from viit_jax.benchmarks import input as input_bench
  results = input_bench.main([
      f"--world={demo_world}", "--steps=2", "--rounds=2", "--warmup=1", "--decode_workers=2",
      "--config_args=model.variant=test,model.scan=false,data.res=16,data.num_frames=2,"
      "train.batch_size=8",
      "--resume_repeats=1", "--decode_clips=4", "--long_s=8", "--short_s=2",
      "--decode_repeats=1", "--memory_steps=2"])
  out = capsys.readouterr().out
  patterns = [r"^real/synthetic step-time ratio: (\S+)$",
              r"^first batch at step 10000 / at step 0 time ratio: (\S+)",
              r"^8 s clip / 2 s clip decode time: (\S+) \(goal < 5\)",
              r"^input host memory: 1 worker (\S+) MiB, 8 workers (\S+) MiB$"]
  for pattern in patterns:
    m = re.search(pattern, out, re.M)
    assert m, f"no line matching {pattern!r} in:\n{out}"
    values = [float(v) for v in m.groups()]
    assert all(math.isfinite(v) for v in values), m.group(0)
  assert float(re.search(patterns[0], out, re.M).group(1)) > 0
  assert results["decode"]["world_clips"] == 4 and results["steps"]["real_step_s"] > 0
  assert [row["workers"] for row in results["memory"]] == [1, 8]


def test_train_step_benchmark_prints_mfu_per_phase(capsys):
  """python -m viit_jax.benchmarks.train_step in its smoke mode (test variant, 1 step, a VLM phase
  and the dual encoder): per phase a line 'MFU: X%' equal to analytic model FLOPs / step time /
  the run's matmul peak."""
  from viit_jax.benchmarks import train_step
  rows = train_step.main(["--variant=test", "--steps=1", "--batch_size=8", "--dtype=float32",
                          "--config_args=model.scan=false", "--peak_n=256",
                          "--phases=phase1,dual_encoder", "--top_ops=3"])
  out = capsys.readouterr().out
  peak = float(re.search(r"MFU against ([\d.]+)\)", out).group(1)) * 1e9
  assert [r["phase"] for r in rows] == ["phase1", "dual_encoder"]
  for r in rows:
    m = re.search(rf"^MFU: ([\d.]+)% \({r['phase']}, {r['variant']}\)$", out, re.M)
    assert m, out
    assert float(m.group(1)) == pytest.approx(100 * r["model_flops"] / r["seconds"] / peak,
                                              abs=0.06)
    # The compiled count (every layer) and the analytic one agree on what the step computes.
    assert 0.7 < r["compiled_flops"] / r["hardware_flops"] < 1.5, r
    # The matmul ceiling: the step's matmuls were found (their FLOPs are most of the step's) and
    # the printed ceiling is model FLOPs over their time alone.
    assert 0.5 < r["dots_flops"] / r["hardware_flops"] < 1.5, r
    m = re.search(rf"^MFU ceiling: ([\d.]+)% \({r['phase']}, {r['variant']}\)$", out, re.M)
    assert m, out
    assert float(m.group(1)) == pytest.approx(100 * r["model_flops"] / r["dots_s"] / peak,
                                              abs=0.06)
    # --top_ops: a traced profile's 3 slowest ops, each in ms per step.
    assert f"{r['phase']} ({r['variant']}), profiled: ops: " in out
    assert len(re.findall(r"^ +\d+\.\d+ ms +\d+\.\d% ", r["ops"], re.M)) == 3 + 3, r["ops"]


def test_decode_benchmark_prints_the_roofline(capsys):
  """python -m viit_jax.benchmarks.decode in its smoke mode: 'roofline: X%' rows for the VLM and
  for the language model alone (--lm_only), from the analytic FLOPs and the run's matmul peak."""
  from viit_jax.benchmarks import decode
  for extra in ([], ["--lm_only"]):
    decode.main(["--variant=test", "--batch_sizes=8", "--max_decode_len=4", "--repeats=1",
                 "--no_uncached", *extra])
    out = capsys.readouterr().out
    mode = "lm only" if extra else "cached"
    m = re.search(rf"^roofline: ([\d.]+)% \({mode}, batch 8\)$", out, re.M)
    assert m and 0 < float(m.group(1)) < 100, out
    m = re.search(rf"^roofline ceiling: ([\d.]+)% \({mode}, batch 8\)$", out, re.M)
    assert m and float(m.group(1)) > 0, out
    assert ("LM only" in out) == bool(extra)


def test_op_profile_names_each_op_and_sums_layers():
  """An HLO module's instructions map to their shapes and sources; by_source adds both layers of
  a block and keeps the backward pass apart."""
  from viit_jax import op_profile
  hlo = "\n".join([
      "%fused_computation.3 (p: f32[4,8]) -> f32[4,8] {",
      '  %add.1 = f32[4,8]{1,0} add(%p, %p), metadata={op_name="jit(step)/jvp(VLM)/x/add"}',
      "}",
      "ENTRY %main {",
      '  ROOT %ynn_fusion.7 = f32[4,8]{1,0} fusion(%a), kind=kCustom, metadata={op_name='
      '"jit(step)/transpose(jvp(VLM))/llm.transform/layers_1/mlp/dot_general"}',
      "  %copy.2 = bf16[8,4]{1,0} copy(%b)",
      "  %while.3 = (s32[], f32[4,8]{1,0}) while(%t), condition=%c, body=%b",
      "}"])
  assert op_profile.instructions(hlo) == {
      "add.1": ("f32[4,8]", "jit(step)/jvp(VLM)/x/add"),
      "ynn_fusion.7": ("f32[4,8]",
                       "jit(step)/transpose(jvp(VLM))/llm.transform/layers_1/mlp/dot_general"),
      "copy.2": ("bf16[8,4]", "")}
  src = "jit(train_step)/{}llm.transform/layers_{}/mlp/dot_general{}"
  rows = [op_profile.OpTime("f.1", 0.002, "f32[2]", src.format("jvp(VLM)/", 0, "")),
          op_profile.OpTime("f.2", 0.003, "f32[2]", src.format("jvp(VLM)/", 1, "")),
          op_profile.OpTime("f.3", 0.004, "f32[2]", src.format("transpose(jvp(VLM))/", 0, "")),
          op_profile.OpTime("copy.1", 0.001, "f32[2]", "")]
  assert op_profile.by_source(rows) == [
      ("llm.transform/mlp/dot_general", pytest.approx(0.005)),
      ("bwd llm.transform/mlp/dot_general", 0.004), ("(made by XLA)", 0.001)]
  text = op_profile.format_top(rows, 0.01, top=2)
  assert "ops: 10.0 ms per step" in text and "f.3" in text and "copy.1" not in text.split(
      "slowest sources")[0]

"""The demo pipeline end to end, reduced (test-preset world, a few steps per phase, tiny eval).

One real run of `python -m viit_jax.pipeline --config=configs/demo_pipeline.py:preset=test`: every
phase is a real subprocess of its entry point; then a rerun that must skip the finished phases and
resume the one whose marker is gone from its own checkpoint.
"""
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from configs import demo_pipeline
from launch import local
from viit_jax import caption_sets
from viit_jax import config_lib
from viit_jax.demo import analysis
from viit_jax.demo import caption_ceiling as dcc
from viit_jax.demo import claim_noise as dcn
from viit_jax.demo import phases as pl
from viit_jax.demo import report

REPO = pathlib.Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
  env = dict(os.environ)
  # The phases run on one CPU device, as `make demo` does (conftest forces 8 for in-process tests).
  env["XLA_FLAGS"] = local.xla_flags(env["XLA_FLAGS"], 1)
  return env


def _run(workdir: pathlib.Path) -> str:
  cmd = [sys.executable, "-m", "viit_jax.pipeline",
         "--config=configs/demo_pipeline.py:preset=test", f"--workdir={workdir}"]
  r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1500)
  assert r.returncode == 0, f"pipeline failed:\n{r.stdout[-6000:]}\n{r.stderr[-4000:]}"
  return r.stdout


def _md_rows(md: str, first_cell: str) -> list[str]:
  """Cells of the markdown table row starting with `first_cell`."""
  for line in md.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0] == first_cell:
      return cells
  raise AssertionError(f"no table row {first_cell!r} in report.md")


def test_report_reads_metrics_with_a_torn_tail(tmp_path):
  """A metrics.jsonl cut mid-line by a kill: the report keeps every whole record (the last of a
  repeated step) and drops the torn tail."""
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "train/loss": 3.0}\n{"step": 2, "train/loss": 2.5}\n'
                  '{"step": 2, "train/loss": 2.0}\n{"step": 3, "train/lo')
  assert report.read_jsonl_metrics(path) == [{"step": 1, "train/loss": 3.0},
                                             {"step": 2, "train/loss": 2.0}]


def test_config_presets_and_errors():
  demo = demo_pipeline.get_config("seed=3")
  test = demo_pipeline.get_config("quick=true,phase1.steps=7")
  assert (demo.seed, demo.world.preset, demo.preset) == (3, "demo", "demo")
  assert (test.world.preset, test.phase1.steps) == ("test", 7)
  assert test.phase0.steps < demo.phase0.steps
  with pytest.raises(config_lib.ConfigError, match="phase9"):
    demo_pipeline.get_config("phase9.steps=1")
  with pytest.raises(config_lib.ConfigError, match="preset"):
    demo_pipeline.get_config("preset=huge")
  names = [p.name for p in pl.plan(demo, "/tmp/x")]
  assert names == ["world", "image_clip", "phase0", "phase1", "viit_data", "phase2", "label_viit",
                   "label_frames", "de_alt_text", "de_frames", "de_viit", "filter_viit",
                   "de_viit_filtered", "eval_image", "eval_phase1", "eval_phase2",
                   "eval_de_alt_text", "eval_de_frames", "eval_de_viit", "eval_de_viit_filtered",
                   "report"]
  # Phases chain through workdirs: phase 2 starts from phase 1, the VIIT labels from phase 2, the
  # frame captions and the unadapted evaluation from the phase-0 image model.
  argv = {p.name: " ".join(p.argv) for p in pl.plan(demo, "/tmp/x")}
  assert "init_from=/tmp/x/phase1" in argv["phase2"]
  assert "init_from=/tmp/x/phase2" in argv["label_viit"] and "mode=viit" in argv["label_viit"]
  assert "init_from=/tmp/x/phase0" in argv["label_frames"]
  # Filtering: de_viit scores label_viit; the filtered dual encoder trains on its output, from
  # the same start and with the same recipe as de_viit; no filter, no filtering phases.
  assert "dual_encoder=/tmp/x/de_viit,corpus=/tmp/x/label_viit/v1,top_k=2" in argv["filter_viit"]
  assert argv["de_viit_filtered"].replace("/tmp/x/filter_viit/v1", "/tmp/x/label_viit/v1").replace(
      "de_viit_filtered", "de_viit") == argv["de_viit"]
  unfiltered = demo_pipeline.get_config("filter.top_k=0")
  assert not {"filter_viit", "de_viit_filtered", "eval_de_viit_filtered"} & {
      p.name for p in pl.plan(unfiltered, "/tmp/x")}
  assert "mode=frame_captioner" in argv["label_frames"]
  assert "/tmp/x/phase0" in argv["eval_image"] and "num_frames=8" in argv["eval_image"]
  # The dual encoders start from the image CLIP (everything but PE_t); without it, from phase 0.
  assert "caption_source=stills" in argv["image_clip"] and "num_frames=1" in argv["image_clip"]
  for de in pl.DUAL_ENCODERS.values():
    assert "init_from=/tmp/x/image_clip" in argv[de]
    assert "init_assignment_map=(('img/temporal_pos_embedding', None),)" in argv[de]
  no_clip = demo_pipeline.get_config("image_clip.steps=0,dual_encoder.init_from_phase=phase0")
  argv = {p.name: " ".join(p.argv) for p in pl.plan(no_clip, "/tmp/x")}
  assert "image_clip" not in argv and "init_from=/tmp/x/phase0" in argv["de_viit"]
  assert "init_assignment_map" not in argv["de_viit"]
  with pytest.raises(ValueError, match="image_clip.steps > 0"):
    pl.plan(demo_pipeline.get_config("image_clip.steps=0"), "/tmp/x")


def test_caption_accuracy_counts_true_words_per_kind():
  truth = {"a.mp4": {"actors": [{"colour": "red", "shape": "circle"},
                                {"colour": "blue", "shape": "square"}],
                     "events": [{"kind": "move", "direction": "left"},
                                {"kind": "change_colour", "from": "blue", "to": "green"},
                                {"kind": "bounce", "direction": "down", "wall": "bottom"}]}}
  acc = analysis.caption_accuracy(
      {"a.mp4": ["a red circle moves left and turns yellow",  # yellow: wrong colour
                 "a green triangle bounces off the bottom wall",  # triangle: wrong shape
                 "a blue square grows upwards"],  # grows, upwards: wrong event and direction
       "unknown.mp4": ["a purple diamond"]}, truth)  # no ground truth: not counted
  assert acc["texts"] == 3
  assert acc["colour"] == pytest.approx(100 * 3 / 4)  # red, green, blue right; yellow wrong
  assert acc["shape"] == pytest.approx(100 * 2 / 3)
  assert acc["direction"] == pytest.approx(100 * 2 / 3)  # left, bottom(=down) right; up wrong
  assert acc["event"] == pytest.approx(100 * 3 / 4)  # moves, turns, bounces right; grows wrong
  assert acc["words_per_text"] == pytest.approx((8 + 8 + 5) / 3)


def test_change_carried_counts_states_in_order_and_the_named_event():
  one = lambda event: {"actors": [{"shape": "circle"}], "events": [event]}  # noqa: E731
  truth = {"c.mp4": one({"kind": "change_colour", "from": "red", "to": "blue"}),
           "g.mp4": one({"kind": "grow"}), "a.mp4": one({"kind": "appear"}),
           "two.mp4": {"actors": [{}, {}], "events": [{"kind": "grow"}]}}  # two actors: left out
  texts = {"c.mp4": ["a red circle; a blue circle",  # in order, no verb
                     "a red circle turns blue",  # in order and named
                     "a blue circle; a red circle",  # reversed
                     "a red circle turns green"],  # verb with the wrong end colour: not named
           "g.mp4": ["a small square; a large square",  # in order
                     "a big square grows",  # named; one size only
                     "a little square gets bigger"],  # named ("bigger" is a grow stem)
           "a.mp4": ["a circle appears", "a circle"],
           "two.mp4": ["a small square; a big square"], "unknown.mp4": ["a red circle turns blue"]}
  carried = analysis.change_carried(texts, truth)
  assert list(carried) == ["grow", "appear", "change_colour"]  # the world's order of kinds
  assert carried["change_colour"] == {"in_order": 50.0, "named": 25.0, "texts": 4.0}
  assert carried["grow"] == pytest.approx({"in_order": 100 / 3, "named": 200 / 3, "texts": 3.0})
  assert carried["appear"]["named"] == 50.0 and math.isnan(carried["appear"]["in_order"])
  alt = analysis.change_carried({"g.mp4": ["a small square"]}, truth)
  rows = analysis.change_rows({"alt_text": alt, "frame_captions": carried, "viit": {}})
  assert rows == [["grow", "1", "0.0", "0.0", "33.3", "66.7", "n/a", "n/a"]]


def test_oracle_recall_is_the_expected_rank_of_clips_sharing_the_facts():
  def clip(actors, events):
    return {"actors": [{"colour": c, "shape": s, "size": z} for c, s, z in actors],
            "events": [{"kind": k, "direction": d} for k, d in events]}
  truth = {"a": clip([("red", "circle", "big")], [("move", "left")]),
           "b": clip([("red", "square", "big")], [("move", "left")]),
           "c": clip([("red", "square", "small")], [("move", "right")]),
           "d": clip([("blue", "circle", "big"), ("red", "square", "big")], [("grow", None)]),
           "e": clip([("red", "square", "big"), ("blue", "circle", "big")], [("grow", None)])}
  o = analysis.oracle_recall(truth, ["a", "b", "c", "d", "e", "not-in-truth"])
  # colours: {a, b, c} share [red], {d, e} share [blue, red] (actor order does not matter).
  assert o["colours"]["R@1"] == pytest.approx(100 * (3 * (1 / 3) + 2 * (1 / 2)) / 5)
  assert o["colours"]["R@5"] == pytest.approx(100.0) and o["colours"]["groups"] == 2
  # colours + shapes: a | b, c | d, e.
  assert o["colours + shapes"]["R@1"] == pytest.approx(100 * (1 + 2 * (1 / 2) + 2 * (1 / 2)) / 5)
  # events: a, b (move left) | c | d, e.
  assert o["events (kind and direction, in order)"]["R@1"] == pytest.approx(
      100 * (2 * (1 / 2) + 1 + 2 * (1 / 2)) / 5)
  # the whole script still ties d and e (the same actors and events).
  assert o["appearance + events (the whole script)"]["R@1"] == pytest.approx(
      100 * (3 + 2 * (1 / 2)) / 5)


def test_a_claim_holds_only_with_every_margin_at_least_the_minimum():
  def numbers(cider2, wups2, viit, frames, alt=2.0):
    return report.Numbers(
        vlm={"eval_image": {"cider": 30.0, "wups": 10.0}, "eval_phase2": {"cider": cider2,
                                                                         "wups": wups2}},
        de={"viit": {"r1": viit}, "frame_captions": {"r1": frames}, "alt_text": {"r1": alt}},
        files={})
  m = report.MIN_MARGIN
  verdicts = lambda n: [c["verdict"] for c in report.claims(n)]  # noqa: E731
  assert verdicts(numbers(30 + m, 10 + m, 2 + 2 * m, 2 + m)) == ["HOLDS", "HOLDS"]
  # A tie-sized win (half the minimum) on any one comparison fails its claim.
  assert verdicts(numbers(30 + m / 2, 10 + m, 2 + 2 * m, 2 + m)) == ["FAILS", "HOLDS"]
  assert verdicts(numbers(30 + m, 10 + m, 2 + 1.5 * m, 2 + m)) == ["HOLDS", "FAILS"]
  assert verdicts(numbers(30 - 5, 10 + m, 2 + m, 2 + 2 * m)) == ["FAILS", "FAILS"]
  assert f">= {m:g}" in report.claims(numbers(31, 11, 4, 3))[1]["evidence"]


def test_query_oracle_reads_the_named_facts_and_counts_the_clips_that_have_them():
  assert analysis.query_mentions("a little green triangle is going to the left, then it turns blue "
                               "while a big red square stays still and shrinks down") == (
      [{"colour": "green", "size": "small", "shape": "triangle"}, {"colour": "blue"},
       {"colour": "red", "size": "big", "shape": "square"}], {"left"})

  def clip(actors, events=()):
    return {"actors": [{"colour": c, "shape": s, "size": z} for c, s, z in actors],
            "events": [dict(e) for e in events]}
  truth = {"a": clip([("red", "circle", "big")],
                     [{"actor": 0, "kind": "move", "direction": "left"}]),
           "b": clip([("red", "square", "small")],
                     [{"actor": 0, "kind": "grow"}, {"actor": 0, "kind": "change_colour",
                                                     "from": "red", "to": "blue"}]),
           "c": clip([("blue", "circle", "big"), ("red", "square", "big")]),
           "d": clip([("green", "diamond", "small")])}
  pairs = [("a", "a big red circle moves left"), ("b", "a small red square grows and turns blue"),
           ("c", "a blue circle and a red square"), ("d", "a green diamond"),
           ("gone", "a red circle")]
  o = analysis.query_oracle_recall(truth, pairs)
  # colours: a names red -> {a, b, c}; b red, blue -> {b, c}; c blue, red -> {b, c}; d -> {d}.
  assert o["colours"]["R@1"] == pytest.approx(100 * (1 / 3 + 1 / 2 + 1 / 2 + 1) / 4)
  assert o["colours"]["candidates"] == pytest.approx((3 + 2 + 2 + 1) / 4)
  # colours + sizes: a (big red) -> {a, b (big after growing), c}; b (small red, blue) -> {b};
  # c -> {b, c}; d -> {d}.
  assert o["colours + sizes"]["R@1"] == pytest.approx(100 * (1 / 3 + 1 + 1 / 2 + 1) / 4)
  # appearance + directions: each query singles out its own clip.
  assert o["appearance + directions"]["R@1"] == pytest.approx(100.0)
  assert o["appearance + directions"]["R@5"] == pytest.approx(100.0)


def test_pipeline_runs_every_phase_writes_report_and_resumes(tmp_path, monkeypatch, capsys):
  w = tmp_path / "demo"
  out = _run(w)
  phases = [p.name for p in pl.plan(demo_pipeline.get_config("preset=test"), w)]
  for name in phases:
    marker = json.loads((w / name / pl.MARKER).read_text())
    assert marker["phase"] == name and marker["wall_s"] > 0 and marker["cpu_s"] >= 0
    assert f"[pipeline] ({phases.index(name) + 1}/{len(phases)}) {name} done in" in out
  assert "phase timings" in out and "total wall time" in out
  timings = json.loads((w / pl.TIMINGS_FILE).read_text())
  assert [r["phase"] for r in timings["rows"]] == phases

  # The report: md + self-contained html + images, numbers equal to the metrics.json files.
  md = (w / "report.md").read_text()
  # The data cards of both auto-labeling versions and of the synthesized set are linked.
  linked = re.findall(r"^- \[[^]]+\]\((\S+/CARD\.md)\)$", md, re.M)
  assert {"label_viit/v1/CARD.md", "label_frames/v1/CARD.md"} <= set(linked), linked
  assert any(c.startswith("viit_data/") for c in linked) and all((w / c).is_file() for c in linked)
  page = (w / "report.html").read_text()
  pngs = sorted((w / report.FILES_DIR).glob("*.png"))
  assert {"losses.png", "recall.png"} <= {p.name for p in pngs}
  assert any(p.name.startswith("clip_") for p in pngs)
  for p in pngs:
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 500
    assert f"({report.FILES_DIR}/{p.name})" in md
  assert page.count("data:image/png;base64,") == len(pngs)
  for phase, (_, name) in pl.VLM_EVALS.items():
    metrics = json.loads((w / phase / "metrics.json").read_text())
    cells = _md_rows(md, name)
    for j, path in enumerate(report.VLM_METRICS.values()):
      assert cells[1 + 2 * j] == f"{report.lookup(metrics, path):.1f}", (phase, path)
  for source, de in pl.DUAL_ENCODERS.items():
    metrics = json.loads((w / f"eval_{de}" / "metrics.json").read_text())
    cells = _md_rows(md, analysis.SOURCE_NAMES[source])
    for j, path in enumerate(report.DE_METRICS.values()):
      assert cells[1 + j] == f"{report.lookup(metrics, path):.1f}", (de, path)
  # Caption filtering (beyond the paper): de_viit's top-1 of 2 VIIT captions per clip train
  # another dual encoder; its row and the comparison are in the report.
  metrics = json.loads((w / pl.EVAL_DE_FILTERED / "metrics.json").read_text())
  cells = _md_rows(md, report.filtered_name(json.loads((w / pl.CONFIG_FILE).read_text())))
  for j, path in enumerate(report.DE_METRICS.values()):
    assert cells[1 + j] == f"{report.lookup(metrics, path):.1f}", path
  filtered_rows = list(caption_sets.caption_rows(w / pl.FILTER_VIIT / "v1"))
  assert filtered_rows and all(len(r["captions"]) == 1 for r in filtered_rows)
  assert "filter_viit/v1/CARD.md" in linked
  record = json.loads((w / report.CLAIMS_FILE).read_text())
  filtering = record["caption_filtering"]
  assert filtering["r1_gain"] == pytest.approx(filtering["filtered"]["r1"]
                                               - filtering["unfiltered"]["r1"])
  assert filtering["summary"] in md
  assert set(record["caption_accuracy"]) == set(record["change_carried"]) == set(pl.DUAL_ENCODERS)
  assert "### Whether they carry what happens" in md
  assert "## What the training texts get right" in md
  assert set(record["fact_oracle_recall"]) == set(analysis.ORACLE_FACTS)
  assert "### What each kind of fact is worth on this test set" in md
  assert set(record["query_oracle_recall"]) == set(analysis.QUERY_FACTS)
  assert "### What the queries' words are worth" in md
  assert report.TABLE4_NOTE in md and "viit_jax.demo.claim_noise" in page
  claims = record["claims"]
  assert [c["verdict"] in ("HOLDS", "FAILS") for c in claims] == [True, True]
  for c in claims:
    assert f"claim {c['id']}: {c['verdict']}" in out
    assert f"**{c['verdict']}** ({c['id']})" in md
    assert all(re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", str(v)) for v in c["values"].values())

  # Resume: the finished phases are skipped; phase 2 (marker removed, as if killed after its last
  # checkpoint) resumes from its own checkpoint instead of training again.
  (w / "phase2" / pl.MARKER).unlink()
  report_marker = (w / "report" / pl.MARKER).read_text()
  out2 = _run(w)
  for name in phases:
    if name != "phase2":
      assert f"{name}: done already" in out2, name
  assert "[phase2] nothing to do: the state is at step" in out2
  assert (w / "phase2" / pl.MARKER).is_file()
  assert (w / "report" / pl.MARKER).read_text() == report_marker

  # The caption-ceiling benchmark on the finished run: a dual encoder on the pool's ground-truth
  # captions, trained and evaluated with the run's own de_viit / eval_de_viit commands. The phases'
  # runner records the commands (each is an entry point this run has just run with the same
  # arguments but the captions) and writes a marker as a finished phase does; the "evaluation"
  # copies the run's metrics of de_viit.
  ran = []

  def record_phase(phase, out_dir, env, log):
    del env, log
    ran.append(phase)
    assert not (out_dir / phase.name).exists(), f"{phase.name}: old outputs were kept"
    (out_dir / phase.name).mkdir(parents=True)
    if phase.name == dcc.EVAL_TRUTH:
      shutil.copy(w / "eval_de_viit" / "metrics.json", out_dir / phase.name / "metrics.json")
    record = {"phase": phase.name, "argv": list(phase.argv), "wall_s": 0.0}
    (out_dir / phase.name / pl.MARKER).write_text(json.dumps(record))
    return record

  monkeypatch.setattr(pl, "run_phase", record_phase)
  c = w / "caption_ceiling"
  assert dcc.main([f"--run={w}"]) == 0
  assert "| ground truth (the world's paraphrases) |" in capsys.readouterr().out
  res = json.loads((c / dcc.RESULTS).read_text())
  assert set(res["text_to_text"]) == set(dcc.SOURCES)
  assert set(res["dual_encoder_t2v"]) == set(dcc.SOURCES)
  assert res["dual_encoder_t2v"]["viit"] == dcc.t2v_metrics(w / "eval_de_viit" / "metrics.json")
  assert res["dual_encoder_t2v"]["truth"] == res["dual_encoder_t2v"]["viit"]  # Copied above.
  # Ground truth names its clip better than any machine text (the queries are its paraphrases).
  assert res["text_to_text"]["truth"]["R@5"] > max(
      res["text_to_text"][s]["R@5"] for s in ("alt_text", "viit", "frame_captions"))
  viit_rows = list(caption_sets.caption_rows(w / "label_viit" / "v1"))
  truth_dir = c / f"{dcc.TRUTH}_k4_s0" / "v1"
  truth_rows = list(caption_sets.caption_rows(truth_dir))
  assert [{**t, "captions": v["captions"]} for t, v in zip(truth_rows, viit_rows)] == viit_rows
  assert all(len(t["captions"]) == 4 for t in truth_rows)
  assert [p.name for p in ran] == [dcc.DE_TRUTH, dcc.EVAL_TRUTH]
  de_run = json.loads((w / "de_viit" / pl.MARKER).read_text())["argv"]
  de_truth = list(ran[0].argv)
  assert [a for a in de_truth if a not in de_run] == [
      de_run[-2].replace(str(w / "label_viit" / "v1"), str(truth_dir)),
      f"--workdir={c / dcc.DE_TRUTH}"]
  eval_run = json.loads((w / "eval_de_viit" / pl.MARKER).read_text())["argv"]
  assert [a for a in ran[1].argv if a not in eval_run] == [
      eval_run[-2].replace(f"checkpoint={w / 'de_viit'},", f"checkpoint={c / dcc.DE_TRUTH},"),
      f"--workdir={c / dcc.EVAL_TRUTH}"]
  ran.clear()
  assert dcc.main([f"--run={w}"]) == 0 and not ran  # Same commands: both done already.
  # Other settings are another caption set: the old set's outputs are removed and both phases run
  # again with its commands.
  res2 = dcc.measure(w, c, captions_per_clip=2, log=lambda s: None)
  assert [p.name for p in ran] == [dcc.DE_TRUTH, dcc.EVAL_TRUTH]
  assert list(ran[0].argv) == [a.replace("truth_k4_s0", "truth_k2_s0") for a in de_truth]
  assert all(len(r["captions"]) == 2
             for r in caption_sets.caption_rows(c / f"{dcc.TRUTH}_k2_s0" / "v1"))
  assert res2["captions_per_clip"] == 2
  assert json.loads((c / dcc.RESULTS).read_text())["captions_per_clip"] == 2

  # Claim 2's noise: the run's de_viit / de_frames commands with another trainer seed, every dual
  # encoder (the run's own too) evaluated by the run's command on the 1k-A pairs and the full
  # protocol. The runner records the commands; each "evaluation" copies the run's metrics of its
  # source with the VIIT numbers raised by the seed, so the margins are known.
  ran.clear()

  def fake_eval(phase, out_dir, env, log):
    del env, log
    ran.append(phase)
    (out_dir / phase.name).mkdir(parents=True)
    if phase.name.startswith("eval_"):
      source = "viit" if phase.name.startswith("eval_de_viit") else "frames"
      m = json.loads((w / f"eval_de_{source}" / "metrics.json").read_text())
      bump = int(phase.name.rsplit("_s", 1)[1]) if source == "viit" else 0
      for task in ("msrvtt_retrieval", "msrvtt_full_retrieval"):
        m["tasks"][task]["metrics"] = {k: v + bump for k, v in m["tasks"][task]["metrics"].items()}
      (out_dir / phase.name / "metrics.json").write_text(json.dumps(m))
    return {"wall_s": 0.0}

  monkeypatch.setattr(pl, "run_phase", fake_eval)
  noise_dir = tmp_path / "noise"
  res3 = dcn.measure(w, noise_dir, seeds=[2, 0, 2], log=lambda s: None)
  assert res3["seeds"] == [0, 2]
  assert [p.name for p in ran] == ["eval_de_viit_s0", "eval_de_frames_s0", "de_viit_s2",
                                   "eval_de_viit_s2", "de_frames_s2", "eval_de_frames_s2"]
  by_name = {p.name: list(p.argv) for p in ran}
  for de in ("de_viit", "de_frames"):
    run_train = json.loads((w / de / pl.MARKER).read_text())["argv"]
    run_eval = json.loads((w / f"eval_{de}" / pl.MARKER).read_text())["argv"]
    assert by_name[f"{de}_s2"] == [
        a.replace(",seed=0,", ",seed=2,").replace(f"--workdir={w / de}",
                                                  f"--workdir={noise_dir / f'{de}_s2'}")
        for a in run_train]
    assert by_name[f"{de}_s2"] != run_train
    tasks = f"eval.tasks={dcn.TASKS},"
    assert by_name[f"eval_{de}_s0"] == [
        a.replace("eval.tasks=msrvtt_retrieval+msrvtt_full_retrieval+kinetics_zero_shot,", tasks)
        .replace(f"--workdir={w / f'eval_{de}'}", f"--workdir={noise_dir / f'eval_{de}_s0'}")
        for a in run_eval]
    assert by_name[f"eval_{de}_s2"] == [
        a.replace(f"checkpoint={w / de},", f"checkpoint={noise_dir / f'{de}_s2'},")
        .replace(f"eval_{de}_s0", f"eval_{de}_s2") for a in by_name[f"eval_{de}_s0"]]
  run_numbers = report.read_numbers(w).de
  for k in dcn.METRICS:
    base = run_numbers["viit"][k] - run_numbers["frame_captions"][k]
    assert res3["margins"][k]["margins"] == pytest.approx([base, base + 2]), k
    assert res3["margins"][k]["mean"] == pytest.approx(base + 1)
    assert res3["margins"][k]["sd"] == pytest.approx(2 ** 0.5)
  assert json.loads((noise_dir / dcn.RESULTS).read_text()) == res3
  assert "| 0 (the run's) |" in dcn.table(res3) and "(1.41) |" in dcn.table(res3)


def _sleeper(name: str, seconds: float, *, needs: tuple[str, ...] = (), rc: int = 0,
             busy: bool = False) -> pl.Phase:
  """A phase whose child records its start and end times, sleeps (or spins), and exits rc."""
  code = ("import json,sys,time; t0=time.time()\n"
          f"while time.time() - t0 < {seconds}:\n"
          f"  {'pass' if busy else 'time.sleep(0.05)'}\n"
          f"print(json.dumps([t0, time.time()])); sys.exit({rc})")
  return pl.Phase(name, f"{name} for {seconds}s", (sys.executable, "-c", code), needs)


def _span(w: pathlib.Path, name: str) -> tuple[float, float]:
  return tuple(json.loads((w / pl.LOG_DIR / f"{name}.log").read_text().splitlines()[-1]))


def test_run_phases_runs_each_phase_after_those_it_needs_up_to_jobs_at_once(tmp_path):
  lines = []
  phases = [_sleeper("a", 1.0), _sleeper("b", 0.2, needs=("a",)), _sleeper("c", 1.0, busy=True),
            _sleeper("d", 0.2, needs=("b", "c"))]
  started = []
  records = pl.run_phases(phases, tmp_path, os.environ, lines.append, jobs=2,
                          on_start=lambda p: started.append(p.name))
  span = {p.name: _span(tmp_path, p.name) for p in phases}
  assert started == ["a", "c", "b", "d"]
  assert span["c"][0] < span["a"][1] and span["a"][0] < span["c"][1]  # a and c overlapped.
  assert span["b"][0] >= span["a"][1] and span["d"][0] >= max(span["b"][1], span["c"][1])
  assert sorted(r["phase"] for r in records) == ["a", "b", "c", "d"]
  assert all((tmp_path / p.name / pl.MARKER).is_file() for p in phases)
  cpu = {r["phase"]: r["cpu_s"] for r in records}
  # Each phase's CPU time is its own child's, though a (sleeping) and c (spinning) overlapped.
  assert cpu["c"] > 0.5 and cpu["a"] < 0.4, cpu
  assert any(line.startswith("[c] [") for line in lines)

  # One at a time: the order of the list.
  w1 = tmp_path / "serial"
  pl.run_phases(phases, w1, os.environ, lines.append, jobs=1)
  ends = [_span(w1, p.name) for p in phases]
  assert all(ends[i][1] <= ends[i + 1][0] for i in range(len(ends) - 1))


def test_run_phases_stops_starting_after_a_failure_and_lets_running_phases_finish(tmp_path):
  lines = []
  phases = [_sleeper("long", 1.5), _sleeper("bad", 0.1, rc=3), _sleeper("after", 0.1,
                                                                         needs=("bad",)),
            _sleeper("other", 0.1)]
  with pytest.raises(pl.PhaseFailed, match=r"phase bad failed with exit code 3 .*bad\.log"):
    pl.run_phases(phases, tmp_path, os.environ, lines.append, jobs=2)
  assert (tmp_path / "long" / pl.MARKER).is_file()  # Running when bad failed: finished, kept.
  assert not (tmp_path / "bad" / pl.MARKER).exists()
  assert not (tmp_path / "after").exists() and not (tmp_path / "other").exists()
  assert any("waiting for long to finish" in line for line in lines)


def test_run_phases_forwards_sigterm_to_every_running_phase(tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  phases = [_sleeper("x", 30.0), _sleeper("y", 30.0), _sleeper("z", 0.1, needs=("x",))]
  before = signal.getsignal(signal.SIGTERM)
  timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
  t0 = time.time()
  timer.start()
  with pytest.raises(pl.Interrupted, match="stopped by signal 15"):
    pl.run_phases(phases, tmp_path, os.environ, lambda s: None, jobs=2)
  assert time.time() - t0 < 10  # Both children stopped by the forwarded signal, not by the end.
  assert not any((tmp_path / p.name / pl.MARKER).exists() for p in phases)
  assert signal.getsignal(signal.SIGTERM) == before and not (tmp_path / "z").exists()


@pytest.mark.parametrize("arg", ["", "preset=test", "world.dir=/tmp/w,filter.top_k=0",
                                 "dual_encoder.init_from_phase=phase1,image_clip.steps=0"])
def test_each_phase_needs_earlier_phases_only(arg, tmp_path):
  phases = pl.plan(demo_pipeline.get_config(arg), tmp_path)
  seen = set()
  for p in phases:
    assert set(p.needs) <= seen, (p.name, p.needs)
    seen.add(p.name)
  by_name = {p.name: p for p in phases}
  # Every phase whose command names another phase's directory needs that phase.
  for p in phases:
    named = {q for q in by_name if q != p.name and any(
        re.search(re.escape(str(tmp_path / q)) + r"(/|,|'|$)", a) for a in p.argv)}
    if p.name != pl.REPORT:
      assert named - {pl.LABEL_VIIT, pl.LABEL_FRAMES} <= set(p.needs), (p.name, named, p.needs)

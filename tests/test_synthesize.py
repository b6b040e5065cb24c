"""Instruction synthesis with the rules back-end: coverage, consistency with the narrative, order
dependence, validation, templates, the on-disk dataset and resuming (locally and, through the CLI,
on a gs:// workdir of a GCS emulator); the seqio tasks on top."""
from __future__ import annotations

import collections
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest
import tensorflow as tf

from configs import synthesize_demo
from data import rejects as rejects_lib
from viit_jax import cards
from viit_jax import paths
from viit_jax import synthesize
from viit_jax.synthesis import dataset
from viit_jax.synthesis import narratives as narratives_lib
from viit_jax.synthesis import rules
from viit_jax.synthesis import templates
from viit_jax.synthesis import validate

REPO = pathlib.Path(__file__).resolve().parents[1]
_NUM = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_IRREGULAR = {"be": "is", "have": "has", "do": "does", "go": "goes"}


@pytest.fixture(scope="module")
def synthesized(demo_world, tmp_path_factory):
  """The rules back-end run once over the demo world's VidLN narratives."""
  workdir = tmp_path_factory.mktemp("synth")
  config = synthesize_demo.get_config(f"world_dir={demo_world},unit_size=5")
  manifest = synthesize.run(config, workdir)
  nars = narratives_lib.read(demo_world / "vidln" / "train.jsonl", rejects_lib.Rejects("t"), "",
                             True)
  records = [json.loads(line) for p in sorted((workdir / "v1/units").glob("unit-*.jsonl"))
             if not p.name.endswith(".rejects.jsonl") for line in p.read_text().splitlines()]
  return workdir, manifest, {n.clip_id: n for n in nars}, records


# ------------------------------------------------------------------------------------------------
# An independent checker: answers against the raw description text (string positions), not
# against the rules module's own parse.


def _present(base: str) -> list[str]:
  """Third-person forms of a base-form predicate: "move left" -> ["moves left", ...]."""
  verb, _, rest = base.partition(" ")
  forms = {_IRREGULAR.get(verb, verb + "s"), verb + "es"}
  if verb.endswith("y"):
    forms.add(verb[:-1] + "ies")
  return [f"{f} {rest}".strip() for f in forms]


def _pos(desc: str, phrase: str) -> int:
  i = desc.lower().find(phrase.lower())
  assert i >= 0, f"{phrase!r} not in {desc!r}"
  return i


def _find_base(desc: str, base: str) -> int:
  hits = [m.start() for f in _present(base) if (m := re.search(rf"\b{re.escape(f)}\b", desc, re.I))]
  return min(hits) if hits else -1


def _actor(nar, subject: str):
  matches = [a for a in nar.actors if a.actor_name.lower() == subject.lower()]
  assert len(matches) == 1, (subject, nar.text())
  return matches[0]


def _own(desc: str) -> str:
  """The description without clauses that anchor it on other actors ("After X moves, ...")."""
  return re.sub(r"\b(?:after|before|once|when|while) [^,.]*, ", "", desc, flags=re.I)


def _subject_and_rest(nar, text: str):
  """(actor, rest) for text = "<actor name> <rest>"."""
  matches = [(a, text[len(a.actor_name) + 1:]) for a in nar.actors
             if text.lower().startswith(a.actor_name.lower() + " ")]
  assert len(matches) == 1, (text, nar.text())
  return matches[0]


def _only_glue(text: str) -> bool:
  """True when `text` holds no other action: only connectors between two adjacent actions."""
  return not re.sub(r"\b(then|and|finally|it|he|she|they|next|after that)\b|[.,\s]", "",
                    text.lower())


def check_pair(nar: narratives_lib.Narrative, kind: str, q: str, a: str) -> None:
  """Asserts that (q, a) is true of the narrative text."""
  m = re.fullmatch(r"(?:It|He|She|They) (.+)\.", a)
  act = m.group(1) if m else None
  if kind == "temporal":
    if m2 := re.fullmatch(r"What does (.+) do first\?", q):
      desc = _actor(nar, m2.group(1)).description
      assert re.match(rf"^(?:(?:first|at the start|after [^,]+), )?{m2.group(1)} {act}", desc,
                      re.I), (q, a, desc)
    elif m2 := re.fullmatch(r"What is the last thing (.+) does\?", q):
      desc = _own(_actor(nar, m2.group(1)).description)
      rest = desc[_pos(desc, act) + len(act):]
      assert re.fullmatch(r"(?: because [^.]*)?\.?", rest), (q, a, desc)
    elif m2 := re.fullmatch(r"What does (.+) do right (after|before) (?:it|he|she|they) (.+)\?", q):
      desc = _own(_actor(nar, m2.group(1)).description)
      ref, ans = _pos(desc, m2.group(3)), _pos(desc, act)
      if m2.group(2) == "after":
        assert ans > ref and _only_glue(desc[ref + len(m2.group(3)):ans]), (q, a, desc)
      else:
        assert ans < ref and _only_glue(desc[ans + len(act):ref]), (q, a, desc)
    elif m2 := re.fullmatch(r"Does (.+) before or after (?:it|he|she|they) (.+)\?", q):
      actor, base = _subject_and_rest(nar, m2.group(1))
      desc = _own(actor.description)
      first = _find_base(desc, base)
      assert first >= 0, (q, desc)
      assert a == ("After." if first > _pos(desc, m2.group(2)) else "Before."), (q, a, desc)
    elif m2 := re.fullmatch(r"What does (.+) do (after|before|when|once|while) (.+)\?", q):
      desc = _actor(nar, m2.group(1)).description
      assert re.search(rf"{m2.group(2)} {re.escape(m2.group(3))}[^,]*, (?:{m2.group(1)}|it|he|she|"
                       rf"they) {act}", desc, re.I), (q, a, desc)
    elif m2 := re.fullmatch(r"Which happens first: (.+), or (.+)\?", q):
      actor, act = _subject_and_rest(nar, m2.group(2))
      m3 = re.search(rf"(after|before) {re.escape(m2.group(1))}[^,]*, (?:{actor.actor_name}|it|he|"
                     rf"she|they) {re.escape(act)}", actor.description, re.I)
      assert m3, (q, a, actor.description)
      first = m2.group(1) if m3.group(1).lower() == "after" else m2.group(2)
      assert a == first[0].upper() + first[1:] + ".", (q, a, actor.description)
    else:
      raise AssertionError(f"unchecked temporal question {q!r}")
  elif kind == "causal":
    if m2 := re.fullmatch(r"Why does (.+) change direction\?", q):
      desc = _own(_actor(nar, m2.group(1)).description)
      wall = re.fullmatch(r"Because it hits (?:the (\w+)|a) wall\.", a).group(1)
      assert re.search(rf"bounces (?:off|back from) the {wall or ''}\s*wall", desc, re.I), (q, a)
    elif m2 := re.fullmatch(r"How does (.+) get to (.+)\?", q):
      desc = _own(_actor(nar, m2.group(1)).description)
      assert re.search(rf"{re.escape(act)} (?:and stops (?:because|when) it hits|until it hits) "
                       rf"{re.escape(m2.group(2))}", desc, re.I), (q, a, desc)
    elif m2 := re.fullmatch(r"Why does (.+) (\w+)\?", q):
      desc = _own(_actor(nar, m2.group(1)).description)
      cause = re.escape(re.fullmatch(r"Because (.+)\.", a).group(1))
      verb = "|".join(_present(m2.group(2)))
      assert re.search(rf"\b(?:{verb}) (?:because|when) {cause}|until {cause} and (?:{verb})",
                       desc, re.I), (q, a, desc)
    elif m2 := re.fullmatch(r"How does (.+) change during the video\?", q):
      desc = _own(_actor(nar, m2.group(1)).description)
      if m3 := re.fullmatch(r"(?:It|He|She|They) first (.+) and then (.+)\.", a):
        one, two = _pos(desc, m3.group(1)), _pos(desc, m3.group(2))
        assert one < two and _only_glue(desc[one + len(m3.group(1)):two]), (q, a, desc)
      else:
        _pos(desc, act)
    else:
      raise AssertionError(f"unchecked causal question {q!r}")
  elif kind == "shortqa":
    word = a.rstrip(".").lower()
    if q == "How many actors can be seen in the video?":
      assert _NUM.index(word) == len(nar.actors)
    elif m2 := re.fullmatch(r"What colour is the (\w+)( at the start)?\?", q):
      (actor,) = [x for x in nar.actors if x.actor_name.lower().endswith(" " + m2.group(1))]
      assert word in actor.actor_name.lower().split(), (q, a, actor.actor_name)
    elif m2 := re.fullmatch(r"What colour does the (\w+) turn\?", q):
      (actor,) = [x for x in nar.actors if x.actor_name.lower().endswith(" " + m2.group(1))]
      assert re.search(rf"\bturns {word}\b", actor.description, re.I), (q, a, actor.description)
    elif m2 := re.fullmatch(r"Is the (\w+) big or small( at the start)?\?", q):
      (actor,) = [x for x in nar.actors if x.actor_name.lower().endswith(" " + m2.group(1))]
      words = actor.actor_name.lower().split()
      assert word in words or {"large": "big", "little": "small"}.get(
          next(w for w in words if w in ("large", "little", "big", "small"))) == word
    elif m2 := re.fullmatch(r"Which way does (.+) (\w+) (first|last)\?", q):
      desc = _own(_actor(nar, m2.group(1)).description).lower()
      dirs = re.findall(r"\b(?:moves|goes|slides|travels) (?:to the )?(left|right|up|down)", desc)
      assert word == (dirs[0] if m2.group(3) == "first" else dirs[-1]), (q, a, desc)
    elif m2 := re.fullmatch(r"Does (.+)\?", q):
      actor, base = _subject_and_rest(nar, m2.group(1))
      assert (_find_base(_own(actor.description), base) >= 0) == (a == "yes"), (q, a, actor)
    else:
      raise AssertionError(f"unchecked short-QA question {q!r}")


# ------------------------------------------------------------------------------------------------


def test_rules_all_kinds_for_every_narrative(synthesized):
  workdir, manifest, nars, records = synthesized
  n = len(nars)
  assert n >= 10
  assert manifest["stand_in_for_llm"] is True and manifest["backend"] == "rules"
  assert manifest["prompts_per_kind"] == {k: n for k in templates.KINDS}
  assert manifest["counts_per_kind"] == {k: n for k in templates.KINDS}, manifest[
      "rejects_per_reason"]
  by_clip = collections.defaultdict(set)
  for r in records:
    by_clip[r["clip_id"]].add(r["kind"])
  assert by_clip == {c: set(templates.KINDS) for c in nars}
  assert set(manifest["template_hashes"]) == set(templates.KINDS)
  # Its data card: counts per kind from the manifest, plots, an example of every kind.
  card = (workdir / "v1" / "CARD.md").read_text()
  assert "rule-based stand-in for an LLM" in card and f"{manifest['num_examples']:,}" in card
  for k in templates.KINDS:
    assert f"| {k} | {n} | {n} | 0 |" in card and f"- {k}, `" in card
  for png in ("answer_lengths.png", "question_words.png"):
    assert f"]({cards.FILES}/{png})" in card
    assert (workdir / "v1" / cards.FILES / png).read_bytes()[:4] == b"\x89PNG"
  # TFRecords hold the same pairs.
  files = sorted(str(p) for p in (workdir / "v1/units").glob("*.tfrecord"))
  spec = {k: tf.io.FixedLenFeature([], tf.string) for k in
          ("clip_id", "video_path", "kind", "question", "answer", "prompt_id")}
  tf_rows = [{k: v.numpy().decode() for k, v in tf.io.parse_single_example(x, spec).items()}
             for x in tf.data.TFRecordDataset(files)]
  assert sorted((r["prompt_id"], r["question"], r["answer"]) for r in tf_rows) == sorted(
      (r["prompt_id"], r["question"], r["answer"]) for r in records)
  assert all(r["video_path"].startswith("videos/") for r in tf_rows)


def test_rules_pairs_agree_with_the_narrative(synthesized):
  _, _, nars, records = synthesized
  for r in records:   # every pair (the test world is small), checked on the raw text
    check_pair(nars[r["clip_id"]], r["kind"], r["question"], r["answer"])
  # Every candidate, not just the drawn one, for every narrative.
  n_checked = 0
  for nar in nars.values():
    actors = [rules.parse_actor(a) for a in nar.actors]
    for kind, fn in rules.CANDIDATES.items():
      for q, a in fn(actors):
        check_pair(nar, kind, q, a)
        n_checked += 1
  assert n_checked > 10 * len(nars)


def _nar(clip_id: str, *actors: tuple[str, str]) -> narratives_lib.Narrative:
  return narratives_lib.Narrative(clip_id, clip_id, f"videos/{clip_id}.mp4", "a", tuple(
      narratives_lib.ActorNarrative(i, n, d) for i, (n, d) in enumerate(actors)))


def test_temporal_answers_depend_on_order():
  """Clips with the same actions in another order: every shared question changes its answer."""
  acts = ("moves left", "grows", "turns blue")
  answers = collections.defaultdict(dict)
  for perm in itertools.permutations(acts):
    desc = f"First, the big red circle {perm[0]}. Then it {perm[1]}. Finally, it {perm[2]}."
    nar = _nar("+".join(perm), ("the big red circle", desc), ("the small green square",
                                                              "The small green square stays "
                                                              "still the whole time."))
    for q, a in rules.temporal_candidates([rules.parse_actor(x) for x in nar.actors]):
      check_pair(nar, "temporal", q, a)
      answers[q][perm] = a
  shared = {q: by for q, by in answers.items() if len(by) >= 2}
  assert len(shared) >= 8
  for q, by_perm in shared.items():
    assert len(set(by_perm.values())) >= 2, (q, by_perm)
  # Two orders of the same two actions: the drawn pairs differ.
  a = _nar("x", ("the red circle", "The red circle moves up. Then it moves down."))
  b = _nar("x", ("the red circle", "The red circle moves down. Then it moves up."))
  assert rules.write_pair(a, "temporal", 0) != rules.write_pair(b, "temporal", 0)


LIMITS = validate.Limits(3, 40, 60, 2, 10)
NARRATIVE = ("the red circle: First, the red circle moves left across the whole screen very "
             "slowly and carefully. Then it stops because it hits the blue square.")


@pytest.mark.parametrize("reply,kind,reason", [
    ("", "temporal", "empty_reply"),
    ("Answer: left", "shortqa", "no_question"),
    ("Question: Which way does it go?", "shortqa", "no_answer"),
    ("Question: What happens first?\nAnswer: It moves.\nQuestion: Why?\nAnswer: x", "temporal",
     "multiple_pairs"),
    ("Question: It moves left.\nAnswer: yes", "temporal", "question_not_a_question"),
    ("Question: Why?\nAnswer: Because.", "causal", "question_too_short"),
    ("Question: What does the red circle do?\nAnswer: It moves left.", "temporal",
     "temporal_no_order_word"),
    ("Question: What does the red circle do after it moves?\nAnswer: It stops.", "causal",
     "causal_not_why_or_how"),
    ("Question: How many circles are there?\nAnswer: One.", "causal", "causal_not_why_or_how"),
    ("Question: Which way does the circle move first?\nAnswer: To the far left.", "shortqa",
     "shortqa_answer_too_long"),
    ("Question: Why does the circle stop?\nAnswer: First, the red circle moves left across the "
     "whole screen very slowly and carefully.", "causal", "answer_copies_narrative"),
    ("Question: What does the description say first?\nAnswer: It moves left.", "temporal",
     "mentions_description"),
    ("Question: Why does the circle stop at the square?\nAnswer: the square", "causal",
     "answer_in_question"),
    ("Question: What is first?\nAnswer: " + " ".join(["word"] * 61), "temporal",
     "answer_too_long"),
])
def test_validation_rejects(reply, kind, reason):
  verdict = validate.check(reply, kind, NARRATIVE, LIMITS)
  assert isinstance(verdict, validate.Rejected) and verdict.reason == reason, verdict


@pytest.mark.parametrize("reply,kind,q,a", [
    ("Question: Answer in en: Which way does the circle move first?\nAnswer: Left.", "shortqa",
     "Which way does the circle move first?", "Left"),
    ("**Question:** Why does the circle stop?\n**Answer:** It runs into\nthe square.", "causal",
     "Why does the circle stop?", "It runs into the square."),
    ("Q: Does the circle stop before or after it moves left?\nA: After.", "temporal",
     "Does the circle stop before or after it moves left?", "After."),
    ("Question: How does the circle end up next to the square?\nAnswer: It slides over until "
     "they touch.", "causal", "How does the circle end up next to the square?",
     "It slides over until they touch."),
])
def test_validation_accepts(reply, kind, q, a):
  assert validate.check(reply, kind, NARRATIVE, LIMITS) == validate.Accepted(q, a)


def test_templates_follow_the_paper_design():
  nar = _nar("clip7", ("the red circle", "The red circle moves left."))
  for kind in templates.KINDS:
    p = templates.build_prompt(nar, kind, seed=3)
    system = p.messages[0]["content"]
    assert p.messages[0]["role"] == "system" and "visual assistant" in system
    assert "challenging" in system and "give away" in system and "as if" in system
    assert [m["role"] for m in p.messages] == ["system", "user", "assistant", "user",
                                               "assistant", "user"]
    assert p.messages[-1]["content"].endswith(nar.text())
    shown = [m["content"] for m in p.messages if m["role"] == "assistant"]
    assert shown == [templates.format_reply(*templates.EXAMPLES[kind][i][1:]) for i in p.shots]
    for _, q, a in templates.EXAMPLES[kind]:   # the fixed examples pass our own validation
      assert isinstance(validate.check(templates.format_reply(q, a), kind, "", LIMITS),
                        validate.Accepted), (q, a)
    assert templates.build_prompt(nar, kind, seed=3) == p        # deterministic per (clip, kind)
  assert "fewer than three words" in templates.system_message("shortqa")
  assert "Answer in en:" in templates.system_message("shortqa")
  draws = {templates.choose_shots(0, f"c{i}", "causal") for i in range(200)}
  assert len(draws) == 6 and all(len(set(d)) == 2 for d in draws)   # all ordered pairs of 3
  assert templates.choose_shots(0, "c1", "causal") != templates.choose_shots(0, "c1", "shortqa") \
      or templates.choose_shots(0, "c2", "causal") != templates.choose_shots(0, "c2", "shortqa")


def test_resume_skips_finished_units_and_refuses_other_settings(demo_world, tmp_path):
  config = synthesize_demo.get_config(f"world_dir={demo_world},unit_size=4")
  manifest = synthesize.run(config, tmp_path)
  units = sorted((tmp_path / "v1/units").glob("*.meta.json"))
  assert len(units) == manifest["num_units"] >= 3
  before = {p: p.stat().st_mtime_ns for p in (tmp_path / "v1/units").iterdir()}
  victim = units[1]
  victim.unlink()                                   # as if killed before the unit's meta landed
  (tmp_path / "v1/manifest.json").unlink()
  manifest2 = synthesize.run(config, tmp_path)
  after = {p: p.stat().st_mtime_ns for p in (tmp_path / "v1/units").iterdir()}
  changed = {p.name for p in after if before.get(p) != after[p]}
  assert changed == {victim.name, victim.name.replace(".meta.json", ".tfrecord"),
                     victim.name.replace(".meta.json", ".jsonl"),
                     victim.name.replace(".meta.json", ".rejects.jsonl")}
  assert not list((tmp_path / "v1/units").glob(".*tmp*"))
  for key in ("counts_per_kind", "rejects_per_reason", "template_hashes", "narratives_sha256"):
    assert manifest2[key] == manifest[key]
  run = json.loads(sorted((tmp_path / "v1/runs").glob("*.json"))[-1].read_text())
  assert run["units_skipped"] == manifest["num_units"] - 1 and run["units_written"] == 1
  with pytest.raises(ValueError, match="seed"):
    synthesize.run(synthesize_demo.get_config(f"world_dir={demo_world},unit_size=4,seed=1"),
                   tmp_path)
  other = synthesize.run(synthesize_demo.get_config(
      f"world_dir={demo_world},unit_size=4,seed=1,version=v2"), tmp_path)
  assert other["seed"] == 1 and (tmp_path / "v2/manifest.json").exists()


def test_a_second_run_on_the_workdir_exits_naming_the_first(demo_world, tmp_path,
                                                            run_twice_at_once):
  """Two identical CLI runs at once: the second exits EXIT_WORKDIR_LOCKED naming the first and
  sends nothing; the first's examples equal an uninterrupted run's."""
  arg = f"world_dir={demo_world},unit_size=4"
  reference = synthesize.run(synthesize_demo.get_config(arg), tmp_path / "ref")
  cmd = [sys.executable, "-m", "viit_jax.synthesize", f"--config=configs/synthesize_demo.py:{arg}",
         f"--workdir={tmp_path / 'w'}"]
  first = run_twice_at_once(cmd, tmp_path / "w" / ".lock", dict(os.environ, PYTHONPATH=str(REPO)))
  assert first.returncode == 0, first.stdout[-3000:]
  manifest = json.loads((tmp_path / "w/v1/manifest.json").read_text())
  assert manifest["counts_per_kind"] == reference["counts_per_kind"]
  for unit in sorted((tmp_path / "ref/v1/units").glob("*.jsonl")):
    assert (tmp_path / "w/v1/units" / unit.name).read_bytes() == unit.read_bytes(), unit.name
  assert len(list((tmp_path / "w/v1/runs").glob("*.json"))) == 1


def test_bad_input_lines_are_counted_not_dropped(tmp_path):
  root = tmp_path / "vidln"
  (root / "videos").mkdir(parents=True)
  (root / "videos/ok.mp4").write_bytes(b"x")
  good = {"dataset_id": "d", "video_id": "ok", "video_path": "videos/ok.mp4", "annotator_id": "a",
          "actor_narratives": [{"actor_idx": 0, "actor_name": "the red circle",
                                "description": "The red circle moves left. Then it grows.",
                                "time_alignment": []}]}
  lines = [json.dumps(good), "{broken", json.dumps({**good, "video_id": "gone",
                                                     "video_path": "videos/gone.mp4"}),
           json.dumps({**good, "actor_narratives": [{"actor_idx": 0, "actor_name": "x"}]})]
  (root / "train.jsonl").write_text("\n".join(lines) + "\n")
  manifest = synthesize.run(synthesize_demo.get_config(f"narratives={root / 'train.jsonl'}"),
                            tmp_path / "out")
  assert manifest["num_narratives"] == 1 and manifest["num_examples"] == 3
  assert manifest["input_rejects_per_reason"] == {"malformed_row": 2, "missing_file": 1}
  rows = [json.loads(x) for x in (tmp_path / "out/v1/input_rejects.jsonl").read_text().splitlines()]
  assert sorted(r["item"] for r in rows) == ["line 2", "line 3", "line 4"]


def test_seqio_tasks_and_phase2_mixture(demo_world, synthesized):
  import numpy as np
  import seqio
  from data import preprocessors as pp
  from data import tasks as tasks_lib
  from data import viit_tasks

  workdir, manifest, nars, records = synthesized
  vocab = demo_world / "spm" / "demo.model"
  tasks_lib.register_demo_tasks(demo_world, num_frames=4, fps=2.0, res=16, vocab_path=vocab)
  names = viit_tasks.register_viit_tasks(workdir, world_dir=demo_world, vocab_path=vocab,
                                         num_frames=4, fps=2.0, res=16)
  assert names == ["demo_viit_temporal", "demo_viit_causal", "demo_viit_shortqa", "demo_viit_mix"]
  sp = tasks_lib.vocabulary(str(vocab))
  by_id = {r["prompt_id"]: r for r in records}
  for kind in viit_tasks.KINDS:
    ds = seqio.get_mixture_or_task(f"demo_viit_{kind}").get_dataset(
        sequence_length=None, split="train", shuffle=False, num_epochs=1)
    examples = list(ds.as_numpy_iterator())
    assert len(examples) == manifest["counts_per_kind"][kind]
    for ex in examples[:3]:
      assert ex["frames"].dtype == np.uint8 and ex["frames"].shape == (4, 16, 16, 3)
      assert ex["frames"].std() > 0   # real decoded pixels, not padding
      assert ex["prefix"].dtype == np.int32 and ex["suffix"].dtype == np.int32
      r = by_id[ex["key"].decode()]
      want = ("answer in en: " if kind == "shortqa" else "") + r["question"].lower()
      assert sp.decode(ex["prefix"].tolist()) == want
      assert sp.decode(ex["suffix"].tolist()) == r["answer"].lower()
  mix = seqio.get_mixture_or_task("demo_viit_mix")
  assert {t.name for t in mix.tasks} == {"demo_viit_temporal", "demo_viit_causal",
                                        "demo_viit_shortqa", "demo_smit_caption"}
  ds = mix.get_dataset(sequence_length=None, split="train", shuffle=True, seed=0, num_epochs=None,
                       trim_output_features=False)
  batch = next(iter(pp.batch_for_model(ds, batch_size=4, seq_len=32, vocab=sp)))
  assert batch["frames"].dtype == tf.uint8 and tuple(batch["frames"].shape) == (4, 4, 16, 16, 3)
  assert batch["tokens"].dtype == tf.int32 and tuple(batch["tokens"].shape) == (4, 32)
  assert int(tf.reduce_sum(batch["mask_loss"])) > 0
  with pytest.raises(ValueError, match="rates"):
    viit_tasks.register_viit_tasks(workdir, world_dir=demo_world, vocab_path=vocab, num_frames=4,
                                   fps=2.0, res=16, rates={"temporal": 1.0})


def test_shards_split_the_units_and_the_last_one_writes_the_manifest(demo_world, tmp_path):
  arg = f"world_dir={demo_world},unit_size=3,num_shards=2"
  assert synthesize.run(synthesize_demo.get_config(arg + ",shard_index=0"), tmp_path) is None
  metas = sorted(p.name for p in (tmp_path / "v1/units").glob("*.meta.json"))
  assert metas and all(int(m[5:10]) % 2 == 0 for m in metas)
  manifest = synthesize.run(synthesize_demo.get_config(arg + ",shard_index=1"), tmp_path)
  whole = synthesize.run(synthesize_demo.get_config(f"world_dir={demo_world},unit_size=3"),
                         tmp_path / "one")
  assert manifest["counts_per_kind"] == whole["counts_per_kind"]
  assert manifest["num_units"] == len(list((tmp_path / "v1/units").glob("*.meta.json")))
  with pytest.raises(ValueError, match="shard_index"):
    synthesize.run(synthesize_demo.get_config(arg + ",shard_index=2"), tmp_path)


def test_shortqa_answers_lose_trailing_punctuation():
  """A short answer is scored by exact match (NExT-OE DB/DC keep punctuation): no "Two." targets."""
  reply = "Question: Answer in en: How many shapes are in the video?\nAnswer: Two."
  out = validate.check(reply, "shortqa", "A red circle and a blue square move.", LIMITS)
  assert isinstance(out, validate.Accepted), out
  assert out.answer == "Two"


def version_files(version_dir: paths.PathLike) -> dict[str, bytes]:
  """The bytes of a dataset version's example files (units' tfrecord/jsonl/rejects, merged
  rejects, input rejects, settings), by path relative to the version, local or gs://."""
  root = paths.path(version_dir)
  files = sorted((root / "units").glob("unit-*"), key=os.fspath)
  files = [p for p in files if not p.name.endswith(".meta.json")]  # Meta: cache counts, times.
  files += [root / n for n in ("rejects.jsonl", "input_rejects.jsonl", "settings.json")]
  return {os.fspath(p)[len(os.fspath(root)) + 1:]: p.read_bytes() for p in files}


def run_records(version_dir: paths.PathLike) -> list[dict[str, Any]]:
  return [paths.read_json(p) for p in sorted((paths.path(version_dir) / "runs").glob("*.json"),
                                             key=os.fspath)]


def test_gcs_workdir_cli_completes_resumes_and_matches_a_local_run(demo_world, gcs_bucket,
                                                                   tmp_path):
  """`python -m viit_jax.synthesize --workdir=gs://...` writes the whole version to the bucket;
  the same command again sends nothing to the back-end; the bytes equal a local run's."""
  arg = f"world_dir={demo_world},unit_size=4"
  workdir = f"{gcs_bucket}/{tmp_path.name}/synth"
  cmd = [sys.executable, "-m", "viit_jax.synthesize",
         f"--config=configs/synthesize_demo.py:{arg}", f"--workdir={workdir}"]
  env = dict(os.environ, PYTHONPATH=str(REPO))  # Inherits the emulator's STORAGE_EMULATOR_HOST.
  for _ in range(2):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
  assert not (REPO / "gs:").exists()   # No gs:// name taken for a local path.

  manifest = dataset.read_manifest(f"{workdir}/v1")
  assert manifest["num_units"] >= 3 and manifest["num_examples"] > 0
  first, second = run_records(f"{workdir}/v1")
  assert first["units_written"] == manifest["num_units"] and not first["preempted"]
  assert first["backend_stats"] == {"requests": sum(manifest["prompts_per_kind"].values())}
  assert second["units_skipped"] == manifest["num_units"] and second["units_written"] == 0
  assert second["backend_stats"] == {}   # No prompt reached the back-end.
  assert manifest["runs"] == sorted(p.name for p in paths.path(f"{workdir}/v1/runs").glob("*"))
  assert len(manifest["runs"]) == 2   # The second run found every unit and wrote it again.

  local = synthesize.run(synthesize_demo.get_config(arg), tmp_path / "local")
  remote_files = version_files(f"{workdir}/v1")
  assert len(remote_files) == 3 * manifest["num_units"] + 3
  assert remote_files == version_files(tmp_path / "local" / "v1")
  ignore = ("finished", "runs")
  assert {k: v for k, v in manifest.items() if k not in ignore} == {
      k: v for k, v in local.items() if k not in ignore}


def test_gcs_narratives_file(demo_world, gcs_bucket, tmp_path):
  """A gs:// narratives file gives the same examples as its local original; its videos cannot be
  checked, which is a clear error unless check_video_files=False."""
  remote = f"{gcs_bucket}/{tmp_path.name}/vidln/train.jsonl"
  paths.write_atomic(remote, (demo_world / "vidln" / "train.jsonl").read_bytes())
  with pytest.raises(ValueError, match="check_video_files"):
    synthesize.run(synthesize_demo.get_config(f"narratives={remote}"), tmp_path / "checked")
  from_gcs = synthesize.run(synthesize_demo.get_config(
      f"narratives={remote},check_video_files=False"), tmp_path / "gcs")
  local = synthesize.run(synthesize_demo.get_config(
      f"narratives={demo_world / 'vidln' / 'train.jsonl'},check_video_files=False"),
      tmp_path / "local")
  assert from_gcs["video_root"] == f"{gcs_bucket}/{tmp_path.name}/vidln"
  assert from_gcs["narratives_sha256"] == local["narratives_sha256"]
  remote_files, local_files = (version_files(tmp_path / d / "v1") for d in ("gcs", "local"))
  del remote_files["settings.json"], local_files["settings.json"]   # video_root differs.
  assert remote_files == local_files and len(remote_files) > 3

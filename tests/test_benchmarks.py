"""Benchmarks that print figures: each runs end to end on the test world with a few steps."""
import json

import numpy as np

from viit_jax.benchmarks import demo_perception as dp


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

  # shape_vlm is vlm_probe on the shape data above (compiling it too would cost CI ~10 s).
  results = dp.main([f"--world={demo_world}", "--probes=shape_head,motion_vlm,colour_vlm",
                     "--steps=2", "--eval_every=1", "--batch_size=4"])
  assert set(results) == {"shape_head", "motion_vlm", "colour_vlm"}
  for rows in results.values():
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss"]) and 0 <= r["held_out"] <= 1 and 0 <= r["train"] <= 1
               for r in rows)
  out = capsys.readouterr().out
  assert "| probe | steps | held-out acc |" in out and "[motion_vlm (llm)] step 2/2" in out
  assert "[colour_vlm (llm)] step 2/2" in out

"""Captioning metrics equal pycocoevalcap's own pipeline (PTB tokenizer, then each scorer) on the same data."""
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from viit_jax.metrics import captioning

REFERENCES = {
    "video7010": ["A man is playing a guitar on stage.", "someone plays the guitar", "a musician performs."],
    "video7011": ["A cat sleeps on the sofa.", "a kitten is sleeping on a couch"],
    "video7012": ["People are dancing at a party!", "a group of people dance", "friends dancing together"],
    "video7013": ["a red car drives down the road", "a car is driving fast on a street"],
}
PREDICTIONS = {
    "video7010": "a man plays the guitar",
    "video7011": "a cat is sleeping on a couch.",
    "video7012": "",  # an empty generation must not shift the others
    "video7013": "a car is driving down a road",
}


@pytest.fixture(scope="module")
def ours():
  return captioning.caption_metrics(REFERENCES, PREDICTIONS)


@pytest.fixture(scope="module")
def direct(ours):  # after `ours`, which starts the METEOR JVM
  """The COCOEvalCap recipe, called directly."""
  del ours
  tokenizer = PTBTokenizer()
  gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
  res = tokenizer.tokenize({k: [{"caption": v}] for k, v in PREDICTIONS.items()})
  bleu, _ = Bleu(4).compute_score(gts, res)
  # pycocoevalcap's own Meteor object; the JVM is the one `caption_metrics` started (each start costs
  # 5-15 s), and the scorer keeps no state between calls.
  meteor = captioning.meteor_scorer()
  assert isinstance(meteor, Meteor)
  meteor_score, _ = meteor.compute_score(gts, res)
  return {"BLEU-1": 100 * bleu[0], "BLEU-4": 100 * bleu[3], "METEOR": 100 * meteor_score,
          "ROUGE-L": 100 * Rouge().compute_score(gts, res)[0],
          "CIDEr": 100 * Cider().compute_score(gts, res)[0]}


def test_equal_to_pycocoevalcap(ours, direct):
  assert set(ours) == set(captioning.METRICS)
  for name, value in direct.items():
    assert ours[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
  assert ours["CIDEr"] > 0 and ours["BLEU-4"] > 0


def test_perfect_predictions_beat_bad_ones():
  refs = {"a": ["a dog runs across the green field"], "b": ["a woman slices red tomatoes in a kitchen"]}
  perfect = captioning.caption_metrics(refs, {k: v[0] for k, v in refs.items()}, metrics=("BLEU-4", "CIDEr"))
  assert perfect["BLEU-4"] == pytest.approx(100.0)
  bad = captioning.caption_metrics(refs, {"a": "a kitchen", "b": "a field"}, metrics=("BLEU-4", "CIDEr"))
  assert bad["CIDEr"] < perfect["CIDEr"] and bad["BLEU-4"] < 1.0


def test_bad_inputs():
  with pytest.raises(ValueError, match="differ"):
    captioning.caption_metrics({"a": ["x"]}, {"b": "x"})
  with pytest.raises(ValueError, match="Unknown"):
    captioning.caption_metrics({"a": ["x"]}, {"a": "x"}, metrics=("SPICE",))
  with pytest.raises(ValueError, match="no reference"):
    captioning.caption_metrics({"a": []}, {"a": "x"})

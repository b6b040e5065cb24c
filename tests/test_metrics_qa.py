"""Open-ended QA exact-match accuracy and its normalisation."""
import pytest

from viit_jax.metrics import qa


@pytest.mark.parametrize("raw,normalized", [
    ("Dog", "dog"),
    ("  the   Dog. ", "dog"),
    ("a man", "man"),
    ("An apple!", "apple"),
    ("t-shirt", "t shirt"),
    ("theater", "theater"),   # articles only as whole words
    ("Another", "another"),
    ("", ""),
])
def test_normalize_answer(raw, normalized):
  assert qa.normalize_answer(raw) == normalized


def test_exact_match():
  assert qa.exact_match("The dog.", ["dog"])
  assert not qa.exact_match("dogs", ["dog"])  # no lemmatisation
  assert qa.exact_match("cat", ["dog", "Cat"])


def test_accuracy_and_types():
  result = qa.qa_accuracy(["dog", "a cat", "two", "red"], [["dog"], ["cat"], ["three"], ["blue"]],
                          ["what", "what", "how", "what"])
  assert result["accuracy"] == 50.0 and result["count"] == 4.0
  assert result["accuracy/what"] == pytest.approx(200 / 3) and result["count/what"] == 3.0
  assert result["accuracy/how"] == 0.0


def test_all_right_and_all_wrong():
  assert qa.qa_accuracy(["x", "y"], [["x"], ["Y"]])["accuracy"] == 100.0
  assert qa.qa_accuracy(["x", "y"], [["y"], ["x"]])["accuracy"] == 0.0


def test_bad_inputs():
  with pytest.raises(ValueError, match="reference lists"):
    qa.qa_accuracy(["x"], [])
  with pytest.raises(ValueError, match="No questions"):
    qa.qa_accuracy([], [])
  with pytest.raises(ValueError, match="at least one"):
    qa.qa_accuracy(["x"], [[]])

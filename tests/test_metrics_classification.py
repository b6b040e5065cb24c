"""Zero-shot classification: prompt-template averaging and top-k accuracy."""
import numpy as np
import pytest

from viit_jax.metrics import classification as C


def _bag_of_words_encoder(vocab):
  """A deterministic text encoder: word counts over a fixed vocabulary (unknown words ignored)."""
  index = {w: i for i, w in enumerate(vocab)}

  def encode(texts):
    out = np.zeros((len(texts), len(vocab)), np.float32)
    for row, text in enumerate(texts):
      for word in text.lower().replace(".", " ").split():
        if word in index:
          out[row, index[word]] += 1
    return out
  return encode


def test_class_embeddings_average_normalised_templates():
  encode = _bag_of_words_encoder(["video", "of", "a", "dancing", "swimming", "person"])
  templates = ("a video of {}.", "a person {}.")
  emb = C.class_embeddings(encode, ["dancing", "swimming"], templates)
  assert emb.shape == (2, 6)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
  # By hand for "dancing": normalise each template's counts, average, normalise.
  t1 = np.array([1, 1, 1, 1, 0, 0], np.float32) / 2.0          # "a video of dancing"
  t2 = np.array([0, 0, 1, 1, 0, 1], np.float32) / np.sqrt(3)   # "a person dancing"
  mean = (t1 + t2) / 2
  np.testing.assert_allclose(emb[0], mean / np.linalg.norm(mean), rtol=1e-6)
  with pytest.raises(ValueError, match="exactly one"):
    C.class_embeddings(encode, ["x"], ("no slot",))


def test_zero_shot_accuracy_by_hand():
  classes = np.eye(6, dtype=np.float32)  # class c embedding = e_c
  videos = np.array([
      [5, 1, 0, 0, 0, 0],     # label 0 ranks 1st
      [0, 1, 2, 3, 4, 5],     # label 1 ranks 5th (only 0 below it)
      [1, 2, 3, 4, 5, 6],     # label 0 ranks 6th
      [0, 0, 0, 0, 0, 1],     # label 5 ranks 1st
  ], np.float32)
  result = C.zero_shot_accuracy(videos, classes, np.array([0, 1, 0, 5]), ks=(1, 5))
  assert result == {"top1": 50.0, "top5": 75.0}


def test_ties_follow_the_policy():
  classes = np.eye(4, dtype=np.float32)
  videos = np.ones((2, 4), np.float32)  # every class scores the same
  labels = np.array([0, 3])
  optimistic = C.zero_shot_accuracy(videos, classes, labels, ks=(1, 2), tie_policy="optimistic")
  assert optimistic["top1"] == 100.0
  average = C.zero_shot_accuracy(videos, classes, labels, ks=(1, 2), tie_policy="average")
  assert average["top1"] == pytest.approx(25.0) and average["top2"] == pytest.approx(50.0)
  expected = C.zero_shot_accuracy(videos, classes, labels, ks=(1, 2))  # The default: "expected".
  assert expected == average
  # Pessimistic: the true class last of the 4 tied: rank 4.
  pessimistic = C.zero_shot_accuracy(videos, classes, labels, ks=(1, 2, 4), tie_policy="pessimistic")
  assert pessimistic == {"top1": 0.0, "top2": 0.0, "top4": 100.0}
  with pytest.raises(ValueError, match="tie policy"):
    C.zero_shot_accuracy(videos, classes, labels, tie_policy="best")


def test_bounds_beside_the_chosen_policy():
  classes = np.eye(3, dtype=np.float32)
  videos = np.array([[1, 1, 0],    # label 0 ties with class 1: expected top1 1/2
                     [0, 1, 0],    # label 1 first
                     [1, 1, 1]],   # label 2 ties with all three: expected top1 1/3, top2 2/3
                    np.float32)
  result = C.zero_shot_accuracy(videos, classes, np.array([0, 1, 2]), ks=(1, 2), with_bounds=True)
  assert result == pytest.approx({
      "top1": 100 * (1 / 2 + 1 + 1 / 3) / 3, "top1/optimistic": 100.0, "top1/pessimistic": 100 / 3,
      "top2": 100 * (1 + 1 + 2 / 3) / 3, "top2/optimistic": 100.0, "top2/pessimistic": 200 / 3})


def test_end_to_end_with_templates():
  vocab = ["video", "of", "a", "person", "dancing", "swimming", "cooking"]
  encode = _bag_of_words_encoder(vocab)
  names = ["dancing", "swimming", "cooking"]
  class_emb = C.class_embeddings(encode, names)
  videos = encode(["dancing dancing", "swimming", "cooking video", "dancing"])
  result = C.zero_shot_accuracy(videos, class_emb, np.array([0, 1, 2, 1]), ks=(1, 3))
  assert result == {"top1": 75.0, "top3": 100.0}


def test_bad_inputs():
  with pytest.raises(ValueError, match="lie in"):
    C.zero_shot_accuracy(np.ones((1, 2)), np.eye(2), np.array([2]))
  with pytest.raises(ValueError, match="shapes"):
    C.zero_shot_accuracy(np.ones((1, 3)), np.eye(2), np.array([0]))

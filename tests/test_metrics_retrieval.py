"""Retrieval metrics: hand-computed cases, the three tie policies and their bounds, and the sharded jax
version against numpy."""
import itertools

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from viit_jax.metrics import retrieval as R


def _brute_force(sim, text_to_video, k_values):
  """Every policy by enumerating every order of every tie group (all permutations of the items).

  Per query, over all tie-breaking orders: "expected" averages the position of the first correct item
  (and its hits), "optimistic" takes the best position, "pessimistic" the worst.
  Returns {direction: {policy: (mean over queries of rank, {k: R@k x100}, median rank)}}.
  """
  sim = np.asarray(sim, np.float64)
  out = {}
  for direction, scores, correct_sets in (
      ("t2v", sim, [{int(v)} for v in text_to_video]),
      ("v2t", sim.T, [set(np.flatnonzero(text_to_video == j).tolist()) for j in range(sim.shape[1])])):
    per_policy = {policy: ([], {k: [] for k in k_values}) for policy in R.TIE_POLICIES}
    for row, correct in zip(scores, correct_sets):
      n = len(row)
      first_positions = []
      for perm in itertools.permutations(range(n)):  # perm = a tie-breaking priority
        order = sorted(range(n), key=lambda i: (-row[i], perm[i]))
        first_positions.append(min(order.index(c) for c in correct) + 1)
      first_positions = np.array(first_positions, np.float64)
      for policy, rank in (("expected", first_positions.mean()), ("optimistic", first_positions.min()),
                           ("pessimistic", first_positions.max())):
        ranks, hits = per_policy[policy]
        ranks.append(rank)
        for k in k_values:
          hits[k].append((first_positions <= k).mean() if policy == "expected" else float(rank <= k))
    out[direction] = {policy: (np.mean(ranks), {k: 100 * np.mean(v) for k, v in hits.items()},
                               np.median(ranks))
                      for policy, (ranks, hits) in per_policy.items()}
  return out


# Text i describes video GT[i]; video 0 has texts 0 and 1. Scores are small integers (exact in float32).
HAND_SIM = np.array([[2, 2, 1],    # t0 -> v0: ties v1           opt 1, expected 1.5, pess 2
                     [2, 3, 1],    # t1 -> v0: v1 above          2 under every policy
                     [0, 0, 0],    # t2 -> v1: ties all three    opt 1, expected 2,   pess 3
                     [2, 1, 2]],   # t3 -> v2: ties v0           opt 1, expected 1.5, pess 2
                    np.float32)
HAND_GT = np.array([0, 0, 1, 2])
# Columns: v0 [2, 2, 0, 2]: correct t0, t1 tie with the wrong t3 (greater 0, equal 3, correct_tied 2):
#   opt 1; expected (3 + 1) / (2 + 1) = 4/3, P(rank 1) = 1 - 1/3 = 2/3; pess 0 + 3 - 2 + 1 = 2.
# v1 [2, 3, 0, 1]: correct t2 scores lowest: rank 4. v2 [1, 1, 0, 2]: correct t3 highest: rank 1.
HAND_KS = (1, 2, 3)
HAND_EXPECTED = {
    "optimistic": {  # t2v ranks [1, 2, 1, 1]; v2t ranks [1, 4, 1]
        "t2v/R@1": 75.0, "t2v/R@2": 100.0, "t2v/R@3": 100.0, "t2v/MedR": 1.0, "t2v/MeanR": 5 / 4,
        "v2t/R@1": 200 / 3, "v2t/R@2": 200 / 3, "v2t/R@3": 200 / 3, "v2t/MedR": 1.0, "v2t/MeanR": 2.0},
    "expected": {  # t2v ranks [1.5, 2, 2, 1.5], hits@1 [1/2, 0, 1/3, 1/2], hits@2 [1, 1, 2/3, 1];
                   # v2t ranks [4/3, 4, 1], hits@1 [2/3, 0, 1], hits@2 [1, 0, 1]
        "t2v/R@1": 100 * (4 / 3) / 4, "t2v/R@2": 100 * (11 / 3) / 4, "t2v/R@3": 100.0,
        "t2v/MedR": 1.75, "t2v/MeanR": 7 / 4,
        "v2t/R@1": 100 * (5 / 3) / 3, "v2t/R@2": 200 / 3, "v2t/R@3": 200 / 3,
        "v2t/MedR": 4 / 3, "v2t/MeanR": (4 / 3 + 4 + 1) / 3},
    "pessimistic": {  # t2v ranks [2, 2, 3, 2]; v2t ranks [2, 4, 1]
        "t2v/R@1": 0.0, "t2v/R@2": 75.0, "t2v/R@3": 100.0, "t2v/MedR": 2.0, "t2v/MeanR": 9 / 4,
        "v2t/R@1": 100 / 3, "v2t/R@2": 200 / 3, "v2t/R@3": 200 / 3, "v2t/MedR": 2.0, "v2t/MeanR": 7 / 3},
}


def _sharded_from_sim(sim, gt, **kwargs):
  """The sharded path on embeddings whose products are exactly `sim`: texts = sim rows, videos = I."""
  sim = np.asarray(sim, np.float32)
  return R.sharded_retrieval_metrics(sim, np.eye(sim.shape[1], dtype=np.float32), gt, **kwargs)


def test_hand_computed_single_caption():
  # Text i describes video i. Text 0: correct 0.9 is best -> rank 1. Text 1: 0.8 and 0.7 above its 0.5
  # -> rank 3. Text 2: 0.4 ties with one other (0.4) -> optimistic 1, expected 1.5, pessimistic 2.
  sim = np.array([[0.9, 0.1, 0.2],
                  [0.8, 0.5, 0.7],
                  [0.4, 0.1, 0.4]])
  m = R.retrieval_metrics(sim, np.arange(3), tie_policy="optimistic", ks=(1, 2, 3))
  assert m["t2v/R@1"] == pytest.approx(200 / 3)
  assert m["t2v/R@2"] == pytest.approx(200 / 3)
  assert m["t2v/R@3"] == pytest.approx(100.0)
  assert m["t2v/MedR"] == 1.0
  assert m["t2v/MeanR"] == pytest.approx(5 / 3)
  # Video columns: video 0 [0.9, 0.8, 0.4] -> text 0 first: rank 1. Video 1 [0.1, 0.5, 0.1] -> rank 1.
  # Video 2 [0.2, 0.7, 0.4]: correct text 2 has 0.4, text 1 has 0.7 above -> rank 2.
  assert m["v2t/R@1"] == pytest.approx(200 / 3)
  assert m["v2t/MeanR"] == pytest.approx(4 / 3)
  a = R.retrieval_metrics(sim, np.arange(3), ks=(1, 2, 3))  # The default: "expected".
  assert a["t2v/R@1"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
  assert a["t2v/MeanR"] == pytest.approx((1 + 3 + 1.5) / 3)
  assert a["t2v/MedR"] == 1.5
  assert a == R.retrieval_metrics(sim, np.arange(3), tie_policy="average", ks=(1, 2, 3))  # The alias.
  p = R.retrieval_metrics(sim, np.arange(3), tie_policy="pessimistic", ks=(1, 2, 3))
  assert p["t2v/R@1"] == pytest.approx(100 / 3)  # Ranks [1, 3, 2].
  assert p["t2v/R@2"] == pytest.approx(200 / 3)
  assert p["t2v/MedR"] == 2.0 and p["t2v/MeanR"] == pytest.approx(2.0)
  assert p["v2t/R@1"] == pytest.approx(200 / 3) and p["v2t/MeanR"] == pytest.approx(4 / 3)  # No v2t tie.


def test_hand_computed_multi_caption_video_to_text():
  # Video 0 has texts 0, 1; video 1 has text 2. Column of video 0: [0.5, 0.5, 0.5]: both correct texts
  # tie with the wrong text 2 -> optimistic rank 1; average: first of 2 correct among 3 tied: expected
  # position (3 + 1) / (2 + 1) = 4/3, P(rank 1) = 2/3.
  sim = np.array([[0.5, 0.1],
                  [0.5, 0.9],
                  [0.5, 0.3]])
  t2v, v2t = R.retrieval_counts(sim, np.array([0, 0, 1]))
  np.testing.assert_array_equal(v2t.greater, [0, 1])
  np.testing.assert_array_equal(v2t.equal, [3, 1])
  np.testing.assert_array_equal(v2t.correct_tied, [2, 1])
  np.testing.assert_array_equal(t2v.greater, [0, 1, 1])
  np.testing.assert_allclose(R.ranks(v2t, "average"), [4 / 3, 2.0])
  np.testing.assert_allclose(R.hits_at_k(v2t, 1, "average"), [2 / 3, 0.0])
  np.testing.assert_allclose(R.hits_at_k(v2t, 2, "average"), [1.0, 1.0])
  # Pessimistic: both correct texts after the wrong one: rank 0 + 3 - 2 + 1 = 2.
  np.testing.assert_array_equal(R.ranks(v2t, "pessimistic"), [2.0, 2.0])
  np.testing.assert_array_equal(R.hits_at_k(v2t, 1, "pessimistic"), [0.0, 0.0])
  np.testing.assert_array_equal(R.hits_at_k(v2t, 2, "pessimistic"), [1.0, 1.0])
  np.testing.assert_array_equal(R.ranks(v2t, "optimistic"), [1.0, 2.0])
  m = R.retrieval_metrics(sim, np.array([0, 0, 1]), tie_policy="average", ks=(1, 2))
  assert m["v2t/R@1"] == pytest.approx(100 / 3)
  assert m["v2t/MeanR"] == pytest.approx((4 / 3 + 2) / 2)


@pytest.mark.parametrize("tie_policy", R.TIE_POLICIES)
def test_all_correct(tie_policy):
  n = 12
  m = R.retrieval_metrics(np.eye(n), np.arange(n), tie_policy)
  for d in ("t2v", "v2t"):
    assert m[f"{d}/R@1"] == m[f"{d}/R@5"] == m[f"{d}/R@10"] == 100.0
    assert m[f"{d}/MedR"] == m[f"{d}/MeanR"] == 1.0


@pytest.mark.parametrize("tie_policy", R.TIE_POLICIES)
def test_all_wrong(tie_policy):
  n = 12  # The correct item always scores lowest: rank n.
  m = R.retrieval_metrics(-np.eye(n), np.arange(n), tie_policy)
  for d in ("t2v", "v2t"):
    assert m[f"{d}/R@1"] == m[f"{d}/R@5"] == m[f"{d}/R@10"] == 0.0
    assert m[f"{d}/MedR"] == m[f"{d}/MeanR"] == n


def test_all_tied():
  # A collapsed model: every score equal. One caption per video: greater 0, equal n, correct_tied 1.
  n = 20
  sim = np.zeros((n, n), np.float32)
  ks = (1, 5, 10, 20)
  opt = R.retrieval_metrics(sim, np.arange(n), "optimistic", ks)
  avg = R.retrieval_metrics(sim, np.arange(n), "average", ks)
  exp = R.retrieval_metrics(sim, np.arange(n), ks=ks)  # The default.
  pes = R.retrieval_metrics(sim, np.arange(n), "pessimistic", ks)
  assert avg == exp
  for d in ("t2v", "v2t"):
    assert opt[f"{d}/R@1"] == 100.0 and opt[f"{d}/MedR"] == 1.0 and opt[f"{d}/MeanR"] == 1.0
    assert exp[f"{d}/R@1"] == pytest.approx(100 / n)  # Chance: 5.
    assert exp[f"{d}/R@5"] == pytest.approx(25.0)
    assert exp[f"{d}/R@10"] == pytest.approx(50.0)
    assert exp[f"{d}/R@20"] == pytest.approx(100.0)
    assert exp[f"{d}/MedR"] == exp[f"{d}/MeanR"] == pytest.approx(10.5)
    # Pessimistic: rank 0 + 20 - 1 + 1 = 20 for every query.
    assert pes[f"{d}/R@1"] == pes[f"{d}/R@5"] == pes[f"{d}/R@10"] == 0.0
    assert pes[f"{d}/R@20"] == 100.0
    assert pes[f"{d}/MedR"] == pes[f"{d}/MeanR"] == 20.0


def test_collapsed_model_all_policies_numpy_and_sharded():
  """All embeddings equal (5 videos, 2 captions each), through both paths, with the bounds."""
  n_videos, dim = 5, 4
  gt = np.repeat(np.arange(n_videos), 2)
  texts = np.ones((2 * n_videos, dim), np.float32)
  videos = np.ones((n_videos, dim), np.float32)
  ks = (1, 5, 10)
  # t2v: greater 0, equal 5, correct_tied 1. v2t: greater 0, equal 10, correct_tied 2.
  hand = {
      "t2v/R@1": 100 / 5, "t2v/R@5": 100.0, "t2v/R@10": 100.0, "t2v/MedR": 3.0, "t2v/MeanR": 3.0,
      # P(rank 1) = 1 - 8/10; P(rank <= 5) = 1 - (8*7*6*5*4) / (10*9*8*7*6) = 1 - 2/9; rank 11/3.
      "v2t/R@1": 20.0, "v2t/R@5": 700 / 9, "v2t/R@10": 100.0, "v2t/MedR": 11 / 3, "v2t/MeanR": 11 / 3,
  }
  for key in list(hand):
    value = {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0}.get(key.split("/")[1], 1.0)
    hand[f"{key}/optimistic"] = value
  # Pessimistic: t2v rank 0 + 5 - 1 + 1 = 5; v2t rank 0 + 10 - 2 + 1 = 9.
  hand.update({"t2v/R@1/pessimistic": 0.0, "t2v/R@5/pessimistic": 100.0, "t2v/R@10/pessimistic": 100.0,
               "t2v/MedR/pessimistic": 5.0, "t2v/MeanR/pessimistic": 5.0,
               "v2t/R@1/pessimistic": 0.0, "v2t/R@5/pessimistic": 0.0, "v2t/R@10/pessimistic": 100.0,
               "v2t/MedR/pessimistic": 9.0, "v2t/MeanR/pessimistic": 9.0})
  numpy = R.retrieval_metrics(texts @ videos.T, gt, ks=ks, with_bounds=True)
  sharded = R.sharded_retrieval_metrics(texts, videos, gt, ks=ks, with_bounds=True)
  assert sharded == numpy
  assert numpy.keys() == hand.keys()
  assert numpy == pytest.approx(hand)


def test_hand_built_ties_all_policies_both_directions():
  t2v, v2t = R.retrieval_counts(HAND_SIM, HAND_GT)
  np.testing.assert_array_equal(t2v.greater, [0, 1, 0, 0])
  np.testing.assert_array_equal(t2v.equal, [2, 1, 3, 2])
  np.testing.assert_array_equal(v2t.greater, [0, 3, 0])
  np.testing.assert_array_equal(v2t.equal, [3, 1, 1])
  np.testing.assert_array_equal(v2t.correct_tied, [2, 1, 1])
  np.testing.assert_allclose(R.ranks(t2v, "expected"), [1.5, 2, 2, 1.5])
  np.testing.assert_allclose(R.ranks(t2v, "pessimistic"), [2, 2, 3, 2])
  np.testing.assert_allclose(R.ranks(v2t, "expected"), [4 / 3, 4, 1])
  np.testing.assert_allclose(R.ranks(v2t, "pessimistic"), [2, 4, 1])
  brute = _brute_force(HAND_SIM, HAND_GT, HAND_KS)
  for policy, hand in HAND_EXPECTED.items():
    numpy = R.retrieval_metrics(HAND_SIM, HAND_GT, policy, HAND_KS)
    assert numpy == pytest.approx(hand), policy
    for d in ("t2v", "v2t"):  # The enumeration of tie orders agrees with the hand values.
      mean_rank, hits, median_rank = brute[d][policy]
      assert hand[f"{d}/MeanR"] == pytest.approx(mean_rank)
      assert hand[f"{d}/MedR"] == pytest.approx(median_rank)
      for k in HAND_KS:
        assert hand[f"{d}/R@{k}"] == pytest.approx(hits[k])
    assert _sharded_from_sim(HAND_SIM, HAND_GT, tie_policy=policy, ks=HAND_KS) == numpy


def test_bounds_beside_the_chosen_policy(monkeypatch):
  for policy in (*R.TIE_POLICIES, "average"):
    plain = R.retrieval_metrics(HAND_SIM, HAND_GT, policy, HAND_KS)
    both = R.retrieval_metrics(HAND_SIM, HAND_GT, policy, HAND_KS, with_bounds=True)
    assert {k: both[k] for k in plain} == plain  # The usual keys keep the chosen policy's values.
    assert both.keys() == set(plain) | {f"{k}/{b}" for k in plain for b in ("optimistic", "pessimistic")}
    for bound in ("optimistic", "pessimistic"):
      assert {k: both[f"{k}/{bound}"] for k in plain} == pytest.approx(HAND_EXPECTED[bound])
  # The sharded path computes the counts once for the policy and both bounds.
  calls = []
  counts = R.sharded_retrieval_counts
  monkeypatch.setattr(R, "sharded_retrieval_counts", lambda *a, **kw: calls.append(1) or counts(*a, **kw))
  sharded = _sharded_from_sim(HAND_SIM, HAND_GT, ks=HAND_KS, with_bounds=True)
  assert len(calls) == 1
  assert sharded == R.retrieval_metrics(HAND_SIM, HAND_GT, ks=HAND_KS, with_bounds=True)
  # rank_summary_with_bounds on its own counts.
  t2v, _ = R.retrieval_counts(HAND_SIM, HAND_GT)
  summary = R.rank_summary_with_bounds(t2v, "pessimistic", (1,), "x/")
  assert summary == pytest.approx({"x/R@1": 0.0, "x/R@1/optimistic": 75.0, "x/R@1/pessimistic": 0.0,
                                   "x/MedR": 2.0, "x/MedR/optimistic": 1.0, "x/MedR/pessimistic": 2.0,
                                   "x/MeanR": 9 / 4, "x/MeanR/optimistic": 5 / 4,
                                   "x/MeanR/pessimistic": 9 / 4})


def test_bounds_enclose_every_policy():
  rng = np.random.default_rng(5)
  for _ in range(5):
    sim = rng.integers(0, 3, (12, 7)).astype(np.float64)
    gt = np.concatenate([np.arange(7), rng.integers(0, 7, 5)])
    m = R.retrieval_metrics(sim, gt, ks=(1, 2, 5), with_bounds=True)
    for key in [k for k in m if k.count("/") == 1]:
      low, high = m[f"{key}/pessimistic"], m[f"{key}/optimistic"]
      if "R@" in key:
        assert low - 1e-9 <= m[key] <= high + 1e-9
      else:  # Ranks: optimistic is the smallest.
        assert high - 1e-9 <= m[key] <= low + 1e-9


@pytest.mark.parametrize("tie_policy", (*R.TIE_POLICIES, "average"))
def test_average_policy_is_expectation_over_tie_orders(tie_policy):
  """Every policy (the expectation, "average" its alias, and both bounds) against the enumeration."""
  rng = np.random.default_rng(3)
  for _ in range(3):
    sim = rng.integers(0, 3, (6, 4)).astype(np.float64)  # Many ties.
    gt = np.array([0, 1, 2, 3, 0, 2])
    ks = (1, 2, 3)
    brute = _brute_force(sim, gt, ks)
    m = R.retrieval_metrics(sim, gt, tie_policy, ks)
    for d in ("t2v", "v2t"):
      mean_rank, hits, median_rank = brute[d][R.canonical_tie_policy(tie_policy)]
      assert m[f"{d}/MeanR"] == pytest.approx(mean_rank)
      assert m[f"{d}/MedR"] == pytest.approx(median_rank)
      for k in ks:
        assert m[f"{d}/R@{k}"] == pytest.approx(hits[k])


def test_optimistic_policy_is_best_tie_order():
  sim = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
  t2v, _ = R.retrieval_counts(sim, np.arange(3))
  np.testing.assert_array_equal(R.ranks(t2v, "optimistic"), [1, 1, 1])
  np.testing.assert_array_equal(R.ranks(t2v, "average"), [1.5, 1.5, 2.0])
  np.testing.assert_array_equal(R.ranks(t2v, "expected"), [1.5, 1.5, 2.0])
  np.testing.assert_array_equal(R.ranks(t2v, "pessimistic"), [2, 2, 3])
  np.testing.assert_array_equal(R.ranks(t2v), R.ranks(t2v, "expected"))  # The default.


def test_policy_names():
  assert R.DEFAULT_TIE_POLICY == "expected"
  assert R.canonical_tie_policy("average") == "expected"
  assert [R.canonical_tie_policy(p) for p in R.TIE_POLICIES] == list(R.TIE_POLICIES)


def test_bad_inputs():
  with pytest.raises(ValueError, match="no text"):
    R.retrieval_metrics(np.zeros((2, 3)), np.array([0, 1]))
  with pytest.raises(ValueError, match="NaN"):
    R.retrieval_metrics(np.full((2, 2), np.nan), np.arange(2))
  with pytest.raises(ValueError, match="tie policy"):
    R.retrieval_metrics(np.eye(2), np.arange(2), tie_policy="random")
  with pytest.raises(ValueError, match="tie policy"):
    R.sharded_retrieval_metrics(np.eye(2), np.eye(2), np.arange(2), tie_policy="best")
  with pytest.raises(ValueError, match="lie in"):
    R.retrieval_metrics(np.eye(2), np.array([0, 2]))


def _integer_embeddings(seed, n_texts, n_videos, dim=6):
  """Small-integer embeddings: every dot product is exact in float32, whatever the summation order."""
  rng = np.random.default_rng(seed)
  gt = np.concatenate([rng.permutation(n_videos), rng.integers(0, n_videos, n_texts - n_videos)])
  texts = rng.integers(-2, 3, (n_texts, dim)).astype(np.float32)
  videos = rng.integers(-2, 3, (n_videos, dim)).astype(np.float32)
  return texts, videos, gt


@pytest.mark.parametrize("n_texts,n_videos,block_size", [(45, 13, 2), (64, 32, 4), (9, 9, 256)])
def test_sharded_equals_numpy(n_texts, n_videos, block_size):
  assert jax.device_count() == 8
  texts, videos, gt = _integer_embeddings(n_texts, n_texts, n_videos)
  ref_t2v, ref_v2t = R.retrieval_counts(texts @ videos.T, gt)
  t2v, v2t = R.sharded_retrieval_counts(texts, videos, gt, block_size=block_size)
  for ref, got in ((ref_t2v, t2v), (ref_v2t, v2t)):
    np.testing.assert_array_equal(got.greater, ref.greater)
    np.testing.assert_array_equal(got.equal, ref.equal)
    np.testing.assert_array_equal(got.correct_tied, ref.correct_tied)
  assert (ref_t2v.equal > 1).any()  # The case really has ties.
  for policy in R.TIE_POLICIES:
    assert (R.sharded_retrieval_metrics(texts, videos, gt, tie_policy=policy, block_size=block_size)
            == R.retrieval_metrics(texts @ videos.T, gt, policy))


def test_eight_devices_equal_one_device_and_other_meshes():
  texts, videos, gt = _integer_embeddings(7, 50, 20)
  one = Mesh(np.array(jax.devices()[:1]), ("x",))
  grid = Mesh(np.array(jax.devices()).reshape(2, 4), ("a", "b"))
  auto_3d = jax.make_mesh((2, 2, 2), ("p", "q", "r"), axis_types=(AxisType.Auto,) * 3)
  results = [R.sharded_retrieval_metrics(texts, videos, gt, mesh=mesh, block_size=3)
             for mesh in (None, one, grid, auto_3d)]
  assert results[0] == results[1] == results[2] == results[3]
  assert results[0] == R.retrieval_metrics(texts @ videos.T, gt)
  # Already-sharded jax inputs (as an evaluation loop would hold them) give the same numbers.
  sharding = NamedSharding(grid, P(("a", "b")))
  on_device = R.sharded_retrieval_metrics(jax.device_put(texts[:48], sharding),
                                          jax.device_put(videos[:16], sharding),
                                          gt[:48] % 16, mesh=grid, block_size=2)
  assert on_device == R.retrieval_metrics(texts[:48] @ videos[:16].T, gt[:48] % 16)


def test_sharded_never_materialises_the_full_matrix():
  mesh = R._flat_mesh()  # pylint: disable=protected-access
  n_texts, n_videos, dim, block = 4096, 1024, 8, 4
  sharding = NamedSharding(mesh, P(tuple(mesh.axis_names)))
  args = (jax.ShapeDtypeStruct((n_texts, dim), np.float32, sharding=sharding),
          jax.ShapeDtypeStruct((n_videos, dim), np.float32, sharding=sharding),
          jax.ShapeDtypeStruct((n_texts,), np.int32, sharding=sharding))
  compiled = R._device_counts.lower(  # pylint: disable=protected-access
      *args, mesh=mesh, block=block, n_videos=n_videos).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes
  full = n_texts * n_videos * 4
  block_bytes = block * 8 * (n_videos // 8) * 4  # float32[block * devices, videos / devices]
  assert temp < full / 50, (temp, full)
  assert temp < 16 * block_bytes, (temp, block_bytes)

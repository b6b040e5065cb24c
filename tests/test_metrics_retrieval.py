"""Retrieval metrics: hand-computed cases, tie policies, and the sharded jax version against numpy."""
import itertools

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from viit_jax.metrics import retrieval as R


def _brute_force(sim, text_to_video, k_values):
  """Expected ranks / hits over every order of every tie group, by enumerating permutations.

  Returns {direction: (mean over queries of expected rank, {k: mean expected hit})}.
  """
  sim = np.asarray(sim, np.float64)
  out = {}
  for direction, scores, correct_sets in (
      ("t2v", sim, [{int(v)} for v in text_to_video]),
      ("v2t", sim.T, [set(np.flatnonzero(text_to_video == j).tolist()) for j in range(sim.shape[1])])):
    exp_ranks, exp_hits = [], {k: [] for k in k_values}
    for row, correct in zip(scores, correct_sets):
      n = len(row)
      first_positions = []
      for perm in itertools.permutations(range(n)):  # perm = a tie-breaking priority
        order = sorted(range(n), key=lambda i: (-row[i], perm[i]))
        first_positions.append(min(order.index(c) for c in correct) + 1)
      first_positions = np.array(first_positions, np.float64)
      exp_ranks.append(first_positions.mean())
      for k in k_values:
        exp_hits[k].append((first_positions <= k).mean())
    out[direction] = (np.mean(exp_ranks), {k: 100 * np.mean(v) for k, v in exp_hits.items()},
                      np.median(exp_ranks))
  return out


def test_hand_computed_single_caption():
  # Text i describes video i. Text 0: correct 0.9 is best -> rank 1. Text 1: 0.8 and 0.7 above its 0.5
  # -> rank 3. Text 2: 0.4 ties with one other (0.4) -> optimistic 1, average 1.5.
  sim = np.array([[0.9, 0.1, 0.2],
                  [0.8, 0.5, 0.7],
                  [0.4, 0.1, 0.4]])
  m = R.retrieval_metrics(sim, np.arange(3), ks=(1, 2, 3))
  assert m["t2v/R@1"] == pytest.approx(200 / 3)
  assert m["t2v/R@2"] == pytest.approx(200 / 3)
  assert m["t2v/R@3"] == pytest.approx(100.0)
  assert m["t2v/MedR"] == 1.0
  assert m["t2v/MeanR"] == pytest.approx(5 / 3)
  # Video columns: video 0 [0.9, 0.8, 0.4] -> text 0 first: rank 1. Video 1 [0.1, 0.5, 0.1] -> rank 1.
  # Video 2 [0.2, 0.7, 0.4]: correct text 2 has 0.4, text 1 has 0.7 above -> rank 2.
  assert m["v2t/R@1"] == pytest.approx(200 / 3)
  assert m["v2t/MeanR"] == pytest.approx(4 / 3)
  a = R.retrieval_metrics(sim, np.arange(3), tie_policy="average", ks=(1, 2, 3))
  assert a["t2v/R@1"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
  assert a["t2v/MeanR"] == pytest.approx((1 + 3 + 1.5) / 3)
  assert a["t2v/MedR"] == 1.5


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
  n = 20
  sim = np.zeros((n, n), np.float32)
  opt = R.retrieval_metrics(sim, np.arange(n), "optimistic")
  avg = R.retrieval_metrics(sim, np.arange(n), "average")
  for d in ("t2v", "v2t"):
    assert opt[f"{d}/R@1"] == 100.0 and opt[f"{d}/MedR"] == 1.0 and opt[f"{d}/MeanR"] == 1.0
    assert avg[f"{d}/R@1"] == pytest.approx(5.0)
    assert avg[f"{d}/R@5"] == pytest.approx(25.0)
    assert avg[f"{d}/R@10"] == pytest.approx(50.0)
    assert avg[f"{d}/MedR"] == avg[f"{d}/MeanR"] == pytest.approx(10.5)


def test_average_policy_is_expectation_over_tie_orders():
  rng = np.random.default_rng(3)
  for _ in range(3):
    sim = rng.integers(0, 3, (6, 4)).astype(np.float64)  # Many ties.
    gt = np.array([0, 1, 2, 3, 0, 2])
    ks = (1, 2, 3)
    brute = _brute_force(sim, gt, ks)
    m = R.retrieval_metrics(sim, gt, "average", ks)
    for d in ("t2v", "v2t"):
      mean_rank, hits, median_rank = brute[d]
      assert m[f"{d}/MeanR"] == pytest.approx(mean_rank)
      assert m[f"{d}/MedR"] == pytest.approx(median_rank)
      for k in ks:
        assert m[f"{d}/R@{k}"] == pytest.approx(hits[k])


def test_optimistic_policy_is_best_tie_order():
  sim = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
  t2v, _ = R.retrieval_counts(sim, np.arange(3))
  np.testing.assert_array_equal(R.ranks(t2v, "optimistic"), [1, 1, 1])
  np.testing.assert_array_equal(R.ranks(t2v, "average"), [1.5, 1.5, 2.0])


def test_bad_inputs():
  with pytest.raises(ValueError, match="no text"):
    R.retrieval_metrics(np.zeros((2, 3)), np.array([0, 1]))
  with pytest.raises(ValueError, match="NaN"):
    R.retrieval_metrics(np.full((2, 2), np.nan), np.arange(2))
  with pytest.raises(ValueError, match="tie policy"):
    R.retrieval_metrics(np.eye(2), np.arange(2), tie_policy="pessimistic")
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

"""Decoding: cached == uncached, seeds independent of devices, sampler edge cases, beam, EOS.

All on the tiny `test` VLM with random weights (float32) and real jitted decoding loops.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from viit_jax import decoding as dec
from viit_jax import sharding as sharding_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

B = 4
L = 8


@pytest.fixture(scope="module")
def setup():
  cfg = variants.get_config("test", {"llm.dtype": "float32", "img.dtype": "float32"})
  model = vlm_lib.VLM(cfg)
  params = nn.unbox(jax.jit(variants.init_fn(cfg))(jax.random.PRNGKey(0))["params"])
  rng = np.random.default_rng(0)
  # Right-padded prompts of different lengths (BOS + prompt + separator).
  tokens = np.array([[2, 5, 6, 7, 9], [2, 8, 9, 0, 0], [2, 10, 11, 12, 0], [2, 3, 4, 5, 6],
                     [2, 20, 0, 0, 0], [2, 21, 22, 23, 24], [2, 30, 31, 0, 0], [2, 40, 41, 42, 0]],
                    np.int32)
  mask = (np.arange(5)[None] < np.array([5, 3, 4, 5, 2, 5, 3, 4])[:, None]).astype(np.int32)
  inputs = {"frames": rng.integers(0, 256, (8, 2, 16, 16, 3), dtype=np.uint8),
            "tokens": tokens, "mask_input": mask}
  return model, params, inputs


def _first(inputs, n=B):
  return {k: v[:n] for k, v in inputs.items()}


@functools.lru_cache(maxsize=None)
def _jitted(model, cfg, cached=True):
  fn = dec.decode if cached else dec.uncached_decode
  return jax.jit(functools.partial(fn, model=dec.VLMAdapter(model), cfg=cfg))


def _run(model, params, inputs, cfg, cached=True, ids=None, seed=0):
  n = len(inputs["tokens"])
  ids = np.arange(n, dtype=np.int32) if ids is None else ids
  out = _jitted(model, cfg, cached)(params, inputs, jnp.asarray(ids), jnp.int32(seed))
  return dec.DecodeOutput(*map(np.asarray, out))


GREEDY = dec.DecodeConfig(sampler="greedy", max_decode_len=L, eos_id=1)


def _rescore(model, params, inputs, tokens):
  """Teacher-forced log p of each generated token: f32[B, L] (full forward, no cache)."""
  p = inputs["tokens"].shape[1]
  n, length = tokens.shape
  full = np.concatenate([inputs["tokens"], tokens], axis=1)
  ar = np.concatenate([np.zeros((n, p), np.int32), np.ones((n, length), np.int32)], axis=1)
  mi = np.concatenate([inputs["mask_input"], np.ones((n, length), np.int32)], axis=1)
  logits = jax.jit(model.apply)({"params": params}, inputs["frames"], full, ar, mi)
  logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
  last = inputs["mask_input"].sum(axis=1) - 1  # Position whose logits predict generated token 0.
  out = np.zeros((n, length), np.float32)
  for b in range(n):
    for s in range(length):
      pos = last[b] if s == 0 else p + s - 1
      out[b, s] = logp[b, pos, tokens[b, s]]
  return out


def test_cached_equals_uncached_greedy(setup):
  model, params, inputs = setup
  x = _first(inputs)
  cached = _run(model, params, x, GREEDY)
  uncached = _run(model, params, x, GREEDY, cached=False)
  assert cached.tokens.shape == (B, 1, L)
  np.testing.assert_array_equal(cached.tokens, uncached.tokens)
  np.testing.assert_allclose(cached.logprobs, uncached.logprobs, atol=1e-5)
  # Not a degenerate output: different prompts give different continuations.
  assert len({tuple(t) for t in cached.tokens[:, 0]}) > 1
  # The reported log-probs are the model's own (teacher-forced rescoring agrees).
  np.testing.assert_allclose(cached.logprobs[:, 0], _rescore(model, params, x, cached.tokens[:, 0]),
                             atol=1e-4)
  np.testing.assert_allclose(cached.mean_logprob[:, 0], cached.logprobs[:, 0].mean(axis=1),
                             atol=1e-6)


def test_same_seed_same_samples_on_1_and_8_devices(setup):
  model, params, inputs = setup
  cfg = dec.DecodeConfig(sampler="nucleus", top_p=0.9, max_decode_len=L, num_samples=2, eos_id=1)
  ids = np.arange(100, 108, dtype=np.int32)  # Global example indices.
  outs = []
  for n_dev in (1, 8):
    mesh = sharding_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1},
                                  devices=jax.devices()[:n_dev])
    shardings = sharding_lib.logical_to_shardings(variants.abstract_params(model.cfg), mesh)
    placed = jax.device_put(params, shardings)
    decoder = dec.Decoder(dec.VLMAdapter(model), cfg, mesh)
    outs.append(decoder(placed, inputs, ids, seed=7))
    if n_dev == 8:
      # The keys follow the global example index, not the batch position.
      perm = np.array([3, 0, 7, 1, 6, 2, 5, 4])
      shuffled = decoder(placed, {k: v[perm] for k, v in inputs.items()}, ids[perm], seed=7)
      np.testing.assert_array_equal(shuffled.tokens, outs[-1].tokens[perm])
      other_seed = decoder(placed, inputs, ids, seed=8)
      assert not np.array_equal(other_seed.tokens, outs[-1].tokens)
  one, eight = outs
  assert one.tokens.shape == (8, 2, L)
  np.testing.assert_array_equal(one.tokens, eight.tokens)
  np.testing.assert_allclose(one.mean_logprob, eight.mean_logprob, atol=1e-5)
  # The K samples of a clip differ (they are independent draws).
  assert any(not np.array_equal(one.tokens[b, 0], one.tokens[b, 1]) for b in range(8))


def test_nucleus_with_tiny_top_p_is_greedy(setup):
  model, params, inputs = setup
  x = _first(inputs)
  cfg = dec.DecodeConfig(sampler="nucleus", top_p=1e-6, temperature=1.0, max_decode_len=L,
                         num_samples=3, eos_id=1)
  nucleus = _run(model, params, x, cfg, seed=3)
  greedy = _run(model, params, x, GREEDY)
  for k in range(3):
    np.testing.assert_array_equal(nucleus.tokens[:, k], greedy.tokens[:, 0])


def test_beam_size_1_is_greedy_and_beam_scores(setup):
  model, params, inputs = setup
  x = _first(inputs)
  greedy = _run(model, params, x, GREEDY)
  beam1 = _run(model, params, x, dec.DecodeConfig(sampler="beam", beam_size=1, num_samples=1,
                                                   max_decode_len=L, eos_id=1))
  np.testing.assert_array_equal(beam1.tokens, greedy.tokens)
  np.testing.assert_allclose(beam1.logprobs, greedy.logprobs, atol=1e-5)

  alpha = 0.6
  beam = _run(model, params, x, dec.DecodeConfig(sampler="beam", beam_size=3, num_samples=2,
                                                  max_decode_len=L, length_penalty=alpha,
                                                  eos_id=1))
  assert beam.tokens.shape == (B, 2, L)
  assert np.all(beam.scores[:, 0] >= beam.scores[:, 1])
  expected = beam.logprobs.sum(-1) / beam.lengths.astype(np.float32) ** alpha
  np.testing.assert_allclose(beam.scores, expected, rtol=1e-5)
  # The two hypotheses of an example are distinct; their log-probs are the model's.
  assert all(not np.array_equal(beam.tokens[b, 0], beam.tokens[b, 1]) for b in range(B))
  np.testing.assert_allclose(beam.logprobs[:, 0], _rescore(model, params, x, beam.tokens[:, 0]),
                             atol=1e-4)
  # Beam search finds sequences at least as likely as greedy's (full-length, no EOS here).
  assert np.all(beam.logprobs[:, 0].sum(-1) >= greedy.logprobs[:, 0].sum(-1) - 1e-4)


def test_eos_stops_each_example(setup):
  """Make EOS (id 1) the argmax wherever token t was: each row stops at its own step."""
  model, params, inputs = setup
  x = _first(inputs)
  greedy = _run(model, params, x, GREEDY).tokens[:, 0]
  # A token that rows first produce at different steps (or never).
  candidates = {}
  for t in np.unique(greedy):
    firsts = tuple(int(np.argmax(row == t)) if (row == t).any() else -1 for row in greedy)
    candidates[int(t)] = firsts
  t, firsts = max(candidates.items(), key=lambda kv: len(set(kv[1])))
  assert len(set(firsts)) >= 2, candidates
  table = params["llm"]["embedder"]["input_embedding"]
  eos_params = jax.tree.map(lambda a: a, params)
  eos_params["llm"]["embedder"]["input_embedding"] = table.at[1].set(table[t] * 1.05)
  out = _run(model, eos_params, x, GREEDY)
  for b, first in enumerate(firsts):
    row, length = out.tokens[b, 0], out.lengths[b, 0]
    if first < 0:  # Never emits t: runs to max_decode_len like greedy.
      np.testing.assert_array_equal(row, greedy[b])
      assert length == L
    else:
      np.testing.assert_array_equal(row[:first], greedy[b, :first])
      assert row[first] == 1 and length == first + 1
      assert np.all(row[first + 1:] == 0) and np.all(out.logprobs[b, 0, first + 1:] == 0)
      assert dec.strip(row, eos_id=1) == greedy[b, :first].tolist()


def test_filter_logits_top_k_and_top_p():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  top2 = dec.filter_logits(logits, dec.DecodeConfig(sampler="top_k", top_k=2))
  assert np.isfinite(np.asarray(top2)).tolist() == [[True, True, False, False]]
  p = dec.filter_logits(logits, dec.DecodeConfig(sampler="nucleus", top_p=0.8))
  assert np.isfinite(np.asarray(p)).tolist() == [[True, True, False, False]]
  p = dec.filter_logits(logits, dec.DecodeConfig(sampler="nucleus", top_p=0.81))
  assert np.isfinite(np.asarray(p)).tolist() == [[True, True, True, False]]
  with pytest.raises(ValueError, match="top_p"):
    dec.DecodeConfig(sampler="nucleus", top_p=0.0)
  with pytest.raises(ValueError, match="beam"):
    dec.DecodeConfig(sampler="beam", beam_size=2, num_samples=3)

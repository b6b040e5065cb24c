"""Autoregressive decoding: prefill + cached extend in `lax.while_loop`; samplers, beam search.

Samplers (`DecodeConfig.sampler`):
  greedy       argmax.
  temperature  categorical over logits / temperature (optionally restricted to the top_k).
  nucleus      top-p: the smallest set of most likely tokens whose mass reaches top_p, after
               temperature and the optional top_k restriction (HF's order: temperature, top-k,
               top-p).
  top_k        categorical over the top_k tokens (after temperature).
  beam         fairseq-style beam search, per example: each step takes the 2W best continuations
               of the W live beams; an EOS among the W best candidates finishes a hypothesis
               (score = sum log p / length ** length_penalty); an example is done when it holds W
               finished hypotheses; at max_decode_len the live beams compete as they are. The
               `num_samples` best hypotheses are returned. With W = 1 this is exactly greedy.

K samples per example (`num_samples`): the prompt is prefilled once and its KV cache tiled K times
(row b * K + k is sample k of example b).

Determinism: sample k of an example draws its token at step s with the key
  fold_in(fold_in(fold_in(PRNGKey(seed), example_id), k), s)
where `example_id` is the example's *global* index (e.g. its position in the corpus), never its
position in a batch or on a device. So a fixed seed gives the same samples whatever the batch
size, padding, process count or device count (up to float round-off of the logits).

Outputs (`DecodeOutput`), K = num_samples, L = max_decode_len:
  tokens        int32[B, K, L]   generated tokens, EOS included; pad (0) after EOS
  logprobs      f32[B, K, L]     log p(token) under the model itself (temperature 1, no top-k/p
                                 filter; over the first valid_vocab_size ids when that is set);
                                 0 on padding
  lengths       int32[B, K]      generated tokens including EOS
  mean_logprob  f32[B, K]        sum(logprobs) / lengths (the caption's confidence)
  scores        f32[B, K]        beam: length-normalised score; samplers: mean_logprob

`uncached_decode` is the reference: the same loop, but every step runs the full LM forward over
[prompt | tokens so far] (visual tokens are encoded once); used by tests (cached == uncached token
for token) and by `viit_jax.benchmarks.decode` (the speed-up of the cache).

The model side is a `DecodeModel` adapter: `VLMAdapter` (frames + text prompt) and `LMAdapter`
(text-only Gemma). `Decoder` jits a decode function once for a mesh: the batch is sharded over the
mesh's batch axes (viit_jax/sharding.py), parameters keep their shardings.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from viit_jax import sharding as sharding_lib
from viit_jax.models import gemma as gemma_lib
from viit_jax.models import vlm as vlm_lib

Array = jax.Array
Params = Any
Inputs = Mapping[str, Array]
Cache = gemma_lib.Cache

SAMPLERS = ("greedy", "temperature", "nucleus", "top_k", "beam")
_NEG = -1e30  # Finite "minus infinity" for scores (keeps inf - inf out of the arithmetic).


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How to decode. See the module docstring for the samplers.

  Attributes:
    sampler: greedy | temperature | nucleus | top_k | beam.
    max_decode_len: L, generated tokens at most (EOS included).
    num_samples: K sequences per example (samplers: K independent samples; beam: the K best
      hypotheses, K <= beam_size).
    temperature: > 0; divides the logits (temperature, nucleus, top_k samplers).
    top_p: nucleus mass in (0, 1].
    top_k: top_k sampler: k >= 1; temperature / nucleus: 0 = no top-k restriction.
    beam_size: W for beam search.
    length_penalty: beam score = sum log p / length ** length_penalty (0 = raw sum).
    eos_id, pad_id: special token ids.
    valid_vocab_size: ids >= this are never generated (model vocab larger than the
      tokenizer's); 0 = every id of the model.
  """
  sampler: str = "greedy"
  max_decode_len: int = 32
  num_samples: int = 1
  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0
  beam_size: int = 4
  length_penalty: float = 1.0
  eos_id: int = 1
  pad_id: int = 0
  valid_vocab_size: int = 0

  def __post_init__(self):
    if self.sampler not in SAMPLERS:
      raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
    if self.max_decode_len < 1 or self.num_samples < 1:
      raise ValueError(f"max_decode_len and num_samples must be >= 1, got "
                       f"{self.max_decode_len}, {self.num_samples}")
    if self.temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {self.temperature}")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
    if self.top_k < 0 or (self.sampler == "top_k" and self.top_k < 1):
      raise ValueError(f"top_k must be >= 0 (>= 1 for the top_k sampler), got {self.top_k}")
    if self.sampler == "beam" and not 1 <= self.num_samples <= self.beam_size:
      raise ValueError(f"beam search returns num_samples <= beam_size hypotheses, got "
                       f"{self.num_samples} > {self.beam_size}")
    if self.length_penalty < 0:
      raise ValueError(f"length_penalty must be >= 0, got {self.length_penalty}")

  def settings(self) -> dict[str, Any]:
    """The fields that matter for this sampler (for manifests and logs)."""
    out: dict[str, Any] = {"sampler": self.sampler, "max_decode_len": self.max_decode_len,
                           "num_samples": self.num_samples, "eos_id": self.eos_id}
    if self.sampler in ("temperature", "nucleus", "top_k"):
      out.update(temperature=self.temperature, top_k=self.top_k)
    if self.sampler == "nucleus":
      out["top_p"] = self.top_p
    if self.sampler == "beam":
      out.update(beam_size=self.beam_size, length_penalty=self.length_penalty)
    if self.valid_vocab_size:
      out["valid_vocab_size"] = self.valid_vocab_size
    return out


class DecodeOutput(NamedTuple):
  """See the module docstring. Leading dims [B, K]."""
  tokens: Array
  logprobs: Array
  lengths: Array
  mean_logprob: Array
  scores: Array


# ------------------------------------------------------------------------------------------------
# Model adapters.


class DecodeModel(Protocol):
  """What the decoding loops need from a model."""

  def prefill(self, params: Params, inputs: Inputs, max_decode_len: int) -> tuple[Array, Cache]:
    """Prompt -> (next-token logits f32[B, V], cache with room for max_decode_len tokens)."""

  def extend(self, params: Params, tokens: Array, cache: Cache) -> tuple[Array, Cache]:
    """tokens int32[B, 1] -> (next-token logits f32[B, V], cache)."""

  def embed_prompt(self, params: Params, inputs: Inputs) -> tuple[Array, Array, Array]:
    """Prompt -> (x [B, P, D] embedded, mask_input int32[B, P], mask_ar int32[B, P])."""

  def forward(self, params: Params, x: Array, mask_input: Array, mask_ar: Array,
              tokens: Array) -> Array:
    """Full forward of [x | embed(tokens)] -> hidden-state logits f32[B, P + L, V]."""


def _llm_forward(llm: gemma_lib.Gemma, x: Array, mask_input: Array, mask_ar: Array,
                 tokens: Array) -> Array:
  """[prompt x | tokens] through the LM (no cache): logits f32[B, P + L, V]."""
  full = jnp.concatenate([x, llm.embed(tokens).astype(x.dtype)], axis=1)
  hidden, _ = llm.transform(full, gemma_lib.positions_from_mask(mask_input),
                            gemma_lib.make_attn_mask(mask_input, mask_ar))
  return llm.logits(hidden)


@dataclasses.dataclass(frozen=True)
class VLMAdapter:
  """The VLM: inputs {"frames": uint8[B, T, H, W, 3], "tokens": int32[B, P] (BOS + prompt + "\\n",
  right-padded), "mask_input": int32[B, P]}; the prompt is all prefix (mask_ar 0)."""
  model: vlm_lib.VLM

  def prefill(self, params, inputs, max_decode_len):
    tokens = inputs["tokens"]
    return self.model.apply({"params": params}, inputs["frames"], tokens, jnp.zeros_like(tokens),
                            inputs["mask_input"], max_decode_len, method=vlm_lib.VLM.prefill)

  def extend(self, params, tokens, cache):
    return self.model.apply({"params": params}, tokens, cache, method=vlm_lib.VLM.extend)

  def embed_prompt(self, params, inputs):
    tokens = inputs["tokens"]
    x, mask_ar, mask_input = self.model.apply(
        {"params": params}, inputs["frames"], tokens, jnp.zeros_like(tokens), inputs["mask_input"],
        method=vlm_lib.VLM.embed_prefix)
    return x, mask_input, mask_ar

  def forward(self, params, x, mask_input, mask_ar, tokens):
    return self.model.apply({"params": params}, x, mask_input, mask_ar, tokens,
                            method=lambda m, *a: _llm_forward(m.llm, *a))


@dataclasses.dataclass(frozen=True)
class LMAdapter:
  """A text-only Gemma: inputs {"tokens": int32[B, P] (right-padded prompt), "mask_input"}."""
  model: gemma_lib.Gemma

  def prefill(self, params, inputs, max_decode_len):
    tokens, mask = inputs["tokens"], inputs["mask_input"]
    return self.model.apply(
        {"params": params}, tokens, mask, jnp.zeros_like(tokens), tokens.shape[1] + max_decode_len,
        method=lambda m, t, mi, ma, s: m.prefill(m.embed(t), mi, ma, s))

  def extend(self, params, tokens, cache):
    return self.model.apply({"params": params}, tokens, cache,
                            method=lambda m, t, c: m.extend(m.embed(t), c))

  def embed_prompt(self, params, inputs):
    tokens = inputs["tokens"]
    x = self.model.apply({"params": params}, tokens, method=gemma_lib.Gemma.embed)
    return x, inputs["mask_input"].astype(jnp.int32), jnp.zeros_like(tokens, jnp.int32)

  def forward(self, params, x, mask_input, mask_ar, tokens):
    return self.model.apply({"params": params}, x, mask_input, mask_ar, tokens,
                            method=_llm_forward)


# ------------------------------------------------------------------------------------------------
# Token choice.


def row_keys(seed: Array, example_ids: Array, num_samples: int) -> Array:
  """Per-row base keys uint32[B * K, 2] from (seed, global example index, sample index)."""
  base = jax.random.PRNGKey(seed)
  per_example = jax.vmap(lambda e: jax.random.fold_in(base, e))(example_ids)

  def samples(key):
    return jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(num_samples))

  return jax.vmap(samples)(per_example).reshape(-1, *per_example.shape[1:])


def restrict_vocab(logits: Array, valid_vocab_size: int) -> Array:
  """logits f32[..., V] with ids >= valid_vocab_size set to -inf (no-op for 0)."""
  if not valid_vocab_size or valid_vocab_size >= logits.shape[-1]:
    return logits
  return jnp.where(jnp.arange(logits.shape[-1]) < valid_vocab_size, logits, -jnp.inf)


def filter_logits(logits: Array, cfg: DecodeConfig) -> Array:
  """Temperature, then top-k, then top-p: logits f32[B, V] -> f32[B, V] (-inf outside)."""
  logits = logits / cfg.temperature
  k = cfg.top_k if cfg.sampler in ("temperature", "nucleus", "top_k") else 0
  if k and k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, k)[0][:, -1:]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  if cfg.sampler == "nucleus" and cfg.top_p < 1.0:
    desc = -jnp.sort(-logits, axis=-1)
    probs = jax.nn.softmax(desc, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = mass_before < cfg.top_p  # Always keeps the most likely token.
    threshold = jnp.min(jnp.where(keep, desc, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits >= threshold, logits, -jnp.inf)
  return logits


def choose_tokens(logits: Array, keys: Array, step: Array, cfg: DecodeConfig) -> Array:
  """Next tokens int32[B] from logits f32[B, V] with per-row keys [B, 2] at `step`."""
  if cfg.sampler == "greedy":
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  filtered = filter_logits(logits, cfg)
  step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
  return jax.vmap(jax.random.categorical)(step_keys, filtered).astype(jnp.int32)


# ------------------------------------------------------------------------------------------------
# Sampling loops (greedy / temperature / nucleus / top-k).


def _tile(x: Array, k: int) -> Array:
  return jnp.repeat(x, k, axis=0) if k > 1 else x


def _finish(tokens: Array, logprobs: Array, lengths: Array, b: int, k: int) -> DecodeOutput:
  tokens = tokens.reshape(b, k, -1)
  logprobs = logprobs.reshape(b, k, -1)
  lengths = lengths.reshape(b, k)
  mean = jnp.sum(logprobs, axis=-1) / jnp.maximum(lengths, 1).astype(jnp.float32)
  return DecodeOutput(tokens, logprobs, lengths, mean, mean)


def _sampling_loop(first_logits: Array, state: Any, next_logits, keys: Array,
                   cfg: DecodeConfig) -> tuple[Array, Array, Array]:
  """The shared while_loop. next_logits(state, tokens int32[R], step) -> (logits f32[R, V], state).

  Returns (tokens int32[R, L], logprobs f32[R, L], lengths int32[R]).
  """
  rows, length = first_logits.shape[0], cfg.max_decode_len

  def cond(carry):
    step, _, _, _, _, done, _ = carry
    return jnp.logical_and(step < length, jnp.logical_not(jnp.all(done)))

  def body(carry):
    step, tokens, logprobs, lengths, logits, done, state = carry
    logits = restrict_vocab(logits, cfg.valid_vocab_size)
    tok = choose_tokens(logits, keys, step, cfg)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tok[:, None], axis=-1)[:, 0]
    alive = jnp.logical_not(done)
    tok = jnp.where(alive, tok, cfg.pad_id)
    logp = jnp.where(alive, logp, 0.0)
    tokens = jax.lax.dynamic_update_slice(tokens, tok[:, None], (0, step))
    logprobs = jax.lax.dynamic_update_slice(logprobs, logp[:, None], (0, step))
    lengths = lengths + alive.astype(jnp.int32)
    done = jnp.logical_or(done, tok == cfg.eos_id)
    logits, state = next_logits(state, tok, step)
    return step + 1, tokens, logprobs, lengths, logits, done, state

  init = (jnp.zeros((), jnp.int32), jnp.full((rows, length), cfg.pad_id, jnp.int32),
          jnp.zeros((rows, length), jnp.float32), jnp.zeros((rows,), jnp.int32),
          first_logits.astype(jnp.float32), jnp.zeros((rows,), jnp.bool_), state)
  _, tokens, logprobs, lengths, _, _, _ = jax.lax.while_loop(cond, body, init)
  return tokens, logprobs, lengths


def sample_decode(params: Params, inputs: Inputs, example_ids: Array, seed: Array, *,
                  model: DecodeModel, cfg: DecodeConfig) -> DecodeOutput:
  """Cached decoding with a sampler (not beam): prefill once, tile the cache K times, extend.

  Args:
    params: model parameters.
    inputs: the adapter's prompt inputs, leading dim B.
    example_ids: int32[B] global example indices (the sampling keys derive from them).
    seed: int32[] sampling seed.
  """
  if cfg.sampler == "beam":
    raise ValueError("sample_decode does not do beam search; use beam_decode or decode")
  k = cfg.num_samples
  logits, cache = model.prefill(params, inputs, cfg.max_decode_len)
  b = logits.shape[0]
  if k > 1:
    cache = gemma_lib.reorder_cache(cache, jnp.repeat(jnp.arange(b), k))
    logits = _tile(logits, k)
  keys = row_keys(seed, example_ids, k)

  def next_logits(cache, tok, step):
    del step
    return model.extend(params, tok[:, None], cache)

  tokens, logprobs, lengths = _sampling_loop(logits, cache, next_logits, keys, cfg)
  return _finish(tokens, logprobs, lengths, b, k)


def uncached_decode(params: Params, inputs: Inputs, example_ids: Array, seed: Array, *,
                    model: DecodeModel, cfg: DecodeConfig) -> DecodeOutput:
  """Reference decoding without a KV cache: each step runs the LM over [prompt | tokens so far].

  Same samplers, keys and outputs as `sample_decode` (beam search is not supported). The prompt
  embedding (incl. the image encoder) is computed once; the LM forward is repeated every step.
  """
  if cfg.sampler == "beam":
    raise ValueError("uncached_decode supports the samplers, not beam search")
  k, length = cfg.num_samples, cfg.max_decode_len
  x, mask_input, mask_ar = model.embed_prompt(params, inputs)
  b, p = mask_input.shape
  x, mask_input, mask_ar = _tile(x, k), _tile(mask_input, k), _tile(mask_ar, k)
  rows = b * k
  gen_ar = jnp.ones((rows, length), jnp.int32)
  full_ar = jnp.concatenate([mask_ar, gen_ar], axis=1)
  last_prompt = jnp.max(jnp.where(mask_input != 0, jnp.arange(p)[None, :], 0), axis=1)

  def logits_at(tokens: Array, num_generated: Array) -> Array:
    gen_mask = (jnp.arange(length)[None, :] < num_generated).astype(jnp.int32)
    full_mask = jnp.concatenate([mask_input.astype(jnp.int32),
                                 jnp.broadcast_to(gen_mask, (rows, length))], axis=1)
    all_logits = model.forward(params, x, full_mask, full_ar, tokens)
    idx = jnp.where(num_generated == 0, last_prompt, p + num_generated - 1)
    return jnp.take_along_axis(all_logits, idx[:, None, None], axis=1)[:, 0]

  buf0 = jnp.full((rows, length), cfg.pad_id, jnp.int32)
  first = logits_at(buf0, jnp.zeros((), jnp.int32))

  def next_logits(buf, tok, step):
    buf = jax.lax.dynamic_update_slice(buf, tok[:, None], (0, step))
    return logits_at(buf, step + 1), buf

  keys = row_keys(seed, example_ids, k)
  tokens, logprobs, lengths = _sampling_loop(first, buf0, next_logits, keys, cfg)
  return _finish(tokens, logprobs, lengths, b, k)


# ------------------------------------------------------------------------------------------------
# Beam search.


def _gather_beams(x: Array, idx: Array) -> Array:
  """x [B, W, ...], idx int32[B, W'] -> [B, W', ...]."""
  return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def _length_norm(lengths: Array, alpha: float) -> Array:
  return jnp.power(jnp.maximum(lengths, 1).astype(jnp.float32), alpha)


def beam_decode(params: Params, inputs: Inputs, example_ids: Array, seed: Array, *,
                model: DecodeModel, cfg: DecodeConfig) -> DecodeOutput:
  """Per-example beam search (see the module docstring); returns the num_samples best."""
  del example_ids, seed  # Deterministic.
  w, length, v_eos = cfg.beam_size, cfg.max_decode_len, cfg.eos_id
  logits, cache = model.prefill(params, inputs, length)
  b, vocab = logits.shape
  cache = gemma_lib.reorder_cache(cache, jnp.repeat(jnp.arange(b), w))
  logits = _tile(logits, w)

  zeros_seq = jnp.full((b, w, length), cfg.pad_id, jnp.int32)
  init = dict(
      step=jnp.zeros((), jnp.int32), logits=logits.astype(jnp.float32), cache=cache,
      live_tok=zeros_seq, live_lp=jnp.zeros((b, w, length), jnp.float32),
      # Only beam 0 is live at the start (the W copies are identical).
      live_score=jnp.tile(jnp.where(jnp.arange(w) == 0, 0.0, _NEG)[None], (b, 1)),
      fin_tok=zeros_seq, fin_lp=jnp.zeros((b, w, length), jnp.float32),
      fin_score=jnp.full((b, w), _NEG, jnp.float32), fin_len=jnp.zeros((b, w), jnp.int32),
      fin_count=jnp.zeros((b,), jnp.int32))

  def cond(c):
    return jnp.logical_and(c["step"] < length, jnp.logical_not(jnp.all(c["fin_count"] >= w)))

  def body(c):
    step = c["step"]
    done = c["fin_count"] >= w  # [B]
    logp = jax.nn.log_softmax(restrict_vocab(c["logits"], cfg.valid_vocab_size), axis=-1)
    logp = logp.reshape(b, w, vocab)
    cand = (c["live_score"][:, :, None] + logp).reshape(b, w * vocab)
    cand_score, cand_idx = jax.lax.top_k(cand, 2 * w)  # [B, 2W], best first
    parent = (cand_idx // vocab).astype(jnp.int32)
    tok = (cand_idx % vocab).astype(jnp.int32)
    tok_lp = jnp.take_along_axis(logp.reshape(b, w * vocab), cand_idx, axis=1)
    seq = jax.lax.dynamic_update_slice(_gather_beams(c["live_tok"], parent),
                                       tok[:, :, None], (0, 0, step))
    seq_lp = jax.lax.dynamic_update_slice(_gather_beams(c["live_lp"], parent),
                                          tok_lp[:, :, None], (0, 0, step))
    is_eos = tok == v_eos
    valid = cand_score > _NEG / 2

    # Finished hypotheses: EOS among the W best candidates of examples not yet done.
    new_fin = is_eos & valid & (jnp.arange(2 * w)[None] < w) & jnp.logical_not(done)[:, None]
    new_len = step + 1
    new_fin_score = jnp.where(new_fin, cand_score / _length_norm(new_len, cfg.length_penalty),
                              _NEG)
    pool_score = jnp.concatenate([c["fin_score"], new_fin_score], axis=1)  # [B, 3W]
    pool_tok = jnp.concatenate([c["fin_tok"], seq], axis=1)
    pool_lp = jnp.concatenate([c["fin_lp"], seq_lp], axis=1)
    pool_len = jnp.concatenate([c["fin_len"], jnp.full((b, 2 * w), new_len, jnp.int32)], axis=1)
    fin_score, keep = jax.lax.top_k(pool_score, w)
    fin_count = jnp.minimum(c["fin_count"] + jnp.sum(new_fin, axis=1).astype(jnp.int32), w)

    # Live beams: the W best non-EOS candidates.
    live_cand = jnp.where(is_eos | jnp.logical_not(valid), _NEG, cand_score)
    live_score, live_pick = jax.lax.top_k(live_cand, w)
    live_parent = jnp.take_along_axis(parent, live_pick, axis=1)  # [B, W]
    live_next = jnp.take_along_axis(tok, live_pick, axis=1)
    rows = (jnp.arange(b)[:, None] * w + live_parent).reshape(-1)
    cache = gemma_lib.reorder_cache(c["cache"], rows)
    logits, cache = model.extend(params, live_next.reshape(-1, 1), cache)
    return dict(
        step=step + 1, logits=logits.astype(jnp.float32), cache=cache,
        live_tok=_gather_beams(seq, live_pick), live_lp=_gather_beams(seq_lp, live_pick),
        live_score=live_score, fin_tok=_gather_beams(pool_tok, keep),
        fin_lp=_gather_beams(pool_lp, keep), fin_score=fin_score,
        fin_len=jnp.take_along_axis(pool_len, keep, axis=1), fin_count=fin_count)

  c = jax.lax.while_loop(cond, body, init)
  # Examples with fewer than W finished hypotheses: the live beams compete at their length.
  done = c["fin_count"] >= w
  steps = c["step"]
  live_norm = jnp.where(done[:, None] | (c["live_score"] <= _NEG / 2), _NEG,
                        c["live_score"] / _length_norm(steps, cfg.length_penalty))
  score = jnp.concatenate([c["fin_score"], live_norm], axis=1)
  tok = jnp.concatenate([c["fin_tok"], c["live_tok"]], axis=1)
  lp = jnp.concatenate([c["fin_lp"], c["live_lp"]], axis=1)
  lens = jnp.concatenate([c["fin_len"], jnp.full((b, w), steps, jnp.int32)], axis=1)
  best_score, best = jax.lax.top_k(score, cfg.num_samples)
  tokens = _gather_beams(tok, best)
  logprobs = _gather_beams(lp, best)
  lengths = jnp.take_along_axis(lens, best, axis=1)
  in_seq = jnp.arange(length)[None, None, :] < lengths[:, :, None]
  tokens = jnp.where(in_seq, tokens, cfg.pad_id)
  logprobs = jnp.where(in_seq, logprobs, 0.0)
  mean = jnp.sum(logprobs, axis=-1) / jnp.maximum(lengths, 1).astype(jnp.float32)
  return DecodeOutput(tokens, logprobs, lengths, mean, best_score)


def decode(params: Params, inputs: Inputs, example_ids: Array, seed: Array, *,
           model: DecodeModel, cfg: DecodeConfig) -> DecodeOutput:
  """Cached decoding with cfg's sampler (beam search or a sampling loop)."""
  fn = beam_decode if cfg.sampler == "beam" else sample_decode
  return fn(params, inputs, example_ids, seed, model=model, cfg=cfg)


def greedy_continuation(params: Params, batch: Mapping[str, Array], *, model: vlm_lib.VLM,
                        max_len: int, eos_id: int) -> Array:
  """Greedy continuation of each row's prompt: int32[B, max_len], 0 after EOS.

  The prompt is the prefix part of `batch` (mask_ar 0, valid): [BOS + prefix + "\\n"]. Decodes with
  `decode` (prefill + cached extend in a while_loop), the code auto-labeling runs. The VLM
  trainer's in-training eval samples.
  """
  prompt_mask = batch["mask_input"] * (1 - batch["mask_ar"])
  inputs = {"frames": batch["frames"], "tokens": batch["tokens"] * prompt_mask,
            "mask_input": prompt_mask}
  cfg = DecodeConfig(sampler="greedy", max_decode_len=max_len, eos_id=eos_id)
  example_ids = jnp.arange(prompt_mask.shape[0], dtype=jnp.int32)
  out = decode(params, inputs, example_ids, jnp.int32(0), model=VLMAdapter(model), cfg=cfg)
  return out.tokens[:, 0]


def jit_greedy_continuation(model: vlm_lib.VLM, max_len: int, eos_id: int, mesh: Mesh
                            ) -> Any:
  """`greedy_continuation` jitted with its output replicated on `mesh` (the VLM trainer's eval
  samples; viit_jax.aot compiles the same program for a slice)."""
  return jax.jit(functools.partial(greedy_continuation, model=model, max_len=max_len,
                                   eos_id=eos_id), out_shardings=NamedSharding(mesh, P()))


# ------------------------------------------------------------------------------------------------
# Jitted, sharded decoding.


class Decoder:
  """`decode` (or `uncached_decode`) jitted once for a mesh; batch sharded over its batch axes.

  Typical use::

    decoder = Decoder(VLMAdapter(model), cfg, mesh)
    out = decoder(params, {"frames": f, "tokens": t, "mask_input": m}, example_ids, seed=0)

  `params` must already be placed on `mesh` (any sharding); inputs are host numpy arrays of the
  global batch of this mesh (the batch must divide by the mesh's batch axes). Returns numpy.
  """

  def __init__(self, model: DecodeModel, cfg: DecodeConfig, mesh: Mesh, *, cached: bool = True,
               rules: sharding_lib.LogicalRules = sharding_lib.RULES):
    self.cfg = cfg
    self.mesh = mesh
    self.rules = rules
    fn = decode if cached else uncached_decode
    self._batch = NamedSharding(mesh, sharding_lib.batch_spec(rules))
    replicated = NamedSharding(mesh, P())
    self._fn = jax.jit(functools.partial(fn, model=model, cfg=cfg),
                       out_shardings=DecodeOutput(*([self._batch] * 5)))
    self._replicated = replicated
    self.batch_divisor = sharding_lib.batch_devices(mesh, rules)

  def lower(self, params: Params, inputs: Mapping[str, jax.ShapeDtypeStruct]
            ) -> jax.stages.Lowered:
    """The decode program for `params` (arrays or ShapeDtypeStructs, with their shardings) and
    inputs of these shapes (a global batch of this mesh), lowered but not run; `.compile()` gives
    the compiled program of `__call__` (viit_jax.aot reports its memory)."""
    b = next(iter(inputs.values())).shape[0]
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self._batch)
             for k, v in inputs.items()}
    ids = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=self._batch)
    seed = jax.ShapeDtypeStruct((), jnp.int32, sharding=self._replicated)
    with sharding_lib.use_mesh(self.mesh, self.rules):
      return self._fn.lower(params, batch, ids, seed)

  def __call__(self, params: Params, inputs: Mapping[str, np.ndarray], example_ids: np.ndarray,
               seed: int) -> DecodeOutput:
    b = len(example_ids)
    if b % self.batch_divisor:
      raise ValueError(f"batch {b} is not divisible by the mesh's batch axes "
                       f"({self.batch_divisor} devices)")
    with sharding_lib.use_mesh(self.mesh, self.rules):
      batch = {k: jax.device_put(np.asarray(v), self._batch) for k, v in inputs.items()}
      ids = jax.device_put(np.asarray(example_ids, np.int32), self._batch)
      seed_arr = jax.device_put(np.asarray(seed, np.int32), self._replicated)
      out = self._fn(params, batch, ids, seed_arr)
    return DecodeOutput(*(np.asarray(x) for x in jax.device_get(tuple(out))))


def local_mesh(mesh_cfg: Mapping[str, int]) -> Mesh:
  """A mesh over this process's devices only (each process decodes its own work units)."""
  return sharding_lib.make_mesh(mesh_cfg, devices=jax.local_devices())


def strip(tokens: np.ndarray, eos_id: int, pad_id: int = 0) -> list[int]:
  """Generated ids int[L] -> the ids before the first EOS, padding dropped."""
  out = []
  for t in np.asarray(tokens).tolist():
    if t == eos_id:
      break
    if t != pad_id:
      out.append(int(t))
  return out

"""Numerics of the model zoo against a plain-jnp reference written from docs/checkpoints.md.

Covers: ViT / Gemma (1 and 2) / VLM equal the reference; cached decoding (prefill + extend) equals the
full forward; the prefix-LM mask; T=1 is the image path; frame order matters to ViT-st but not to the
VLM's per-frame encoder; token pooling; the target-only loss; dual-encoder losses; remat; bf16; FLOPs.
Parameters are random (eval_shape + numpy) so no test pays for compiling an init.
"""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import gemma as gemma_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib


def random_params(cfg, seed=0, std=0.2):
  leaves, treedef = jax.tree_util.tree_flatten(nn.unbox(variants.abstract_params(cfg)))
  rng = np.random.default_rng(seed)
  return treedef.unflatten([jnp.asarray(rng.normal(size=x.shape) * std, jnp.float32)
                            for x in leaves])


@functools.lru_cache(maxsize=None)
def jitted(cfg, method=None):
  """One jitted `apply` per (config, method), shared by the tests."""
  model = variants.make_model(cfg)
  if method is None:
    return jax.jit(model.apply)
  return jax.jit(functools.partial(model.apply, method=method))


TEST_VLM = variants.get_config("test")


def random_frames(shape, seed=0):
  return jax.random.randint(jax.random.PRNGKey(seed), shape, 0, 256).astype(jnp.uint8)


# ------------------------------------------------------------------ reference (docs/checkpoints.md)


def _ln(x, p):
  m = x.mean(-1, keepdims=True)
  v = ((x - m) ** 2).mean(-1, keepdims=True)
  return (x - m) / jnp.sqrt(v + 1e-6) * p["scale"] + p["bias"]


def _mha(xq, xkv, p):
  q = jnp.einsum("bqd,dnh->bqnh", xq, p["query"]["kernel"]) + p["query"]["bias"]
  k = jnp.einsum("bkd,dnh->bknh", xkv, p["key"]["kernel"]) + p["key"]["bias"]
  v = jnp.einsum("bkd,dnh->bknh", xkv, p["value"]["kernel"]) + p["value"]["bias"]
  w = jax.nn.softmax(jnp.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(q.shape[-1]), axis=-1)
  o = jnp.einsum("bnqk,bknh->bqnh", w, v)
  return jnp.einsum("bqnh,nhd->bqd", o, p["out"]["kernel"]) + p["out"]["bias"]


def _mlp(x, p):
  h = jax.nn.gelu(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], approximate=True)
  return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]


def ref_patch_embed(p, images):
  """uint8 images [B, H, W, 3] -> [B, N, D] with a VALID stride-P conv (no position embedding)."""
  x = images.astype(jnp.float32) / 127.5 - 1.0
  kern = p["embedding"]["kernel"]
  x = jax.lax.conv_general_dilated(x, kern, kern.shape[:2], "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  x = x + p["embedding"]["bias"]
  return x.reshape(x.shape[0], -1, x.shape[-1])


def ref_encoder_head(p, x, depth):
  """Pre-LN blocks (scanned params), encoder_norm, optional MAP head, optional head."""
  for layer in range(depth):
    blk = jax.tree_util.tree_map(lambda a, i=layer: a[i], p["Transformer"]["encoderblock"])
    y = _ln(x, blk["LayerNorm_0"])
    x = x + _mha(y, y, blk["MultiHeadDotProductAttention_0"])
    x = x + _mlp(_ln(x, blk["LayerNorm_1"]), blk["MlpBlock_0"])
  x = _ln(x, p["Transformer"]["encoder_norm"])
  if "MAPHead_0" in p:
    mp = p["MAPHead_0"]
    probe = jnp.broadcast_to(mp["probe"], (x.shape[0], 1, x.shape[-1]))
    a = _mha(probe, x, mp["MultiHeadDotProductAttention_0"])
    x = (a + _mlp(_ln(a, mp["LayerNorm_0"]), mp["MlpBlock_0"]))[:, 0]
  if "head" in p:
    x = x @ p["head"]["kernel"] + p["head"]["bias"]
  return x


@functools.partial(jax.jit, static_argnums=2)
def ref_vit(p, images, depth):
  """SigLIP ViT on uint8 images [B, H, W, 3]."""
  return ref_encoder_head(p, ref_patch_embed(p, images) + p["pos_embedding"], depth)


@functools.partial(jax.jit, static_argnums=2)
def ref_vit_st(p, clips, depth):
  """ViT-st on uint8 clips [B, T, H, W, 3]: PE[t, n] = PE_t[t] + PE_s[n], joint attention."""
  b, t = clips.shape[:2]
  x = ref_patch_embed(p, clips.reshape(b * t, *clips.shape[2:]))
  x = x.reshape(b, t, -1, x.shape[-1]) + p["pos_embedding"][:, None] \
      + p["temporal_pos_embedding"][:, :, None]
  return ref_encoder_head(p, x.reshape(b, -1, x.shape[-1]), depth)


def _rms(x, scale):
  return x / jnp.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * (1 + scale)


def _rope(x, pos):
  h = x.shape[-1]
  ts = 10_000.0 ** (2 * np.arange(h // 2) / h)
  ang = pos[:, :, None, None] / ts
  a, b = x[..., : h // 2], x[..., h // 2:]
  return jnp.concatenate([a * jnp.cos(ang) - b * jnp.sin(ang), b * jnp.cos(ang) + a * jnp.sin(ang)],
                         -1)


@functools.partial(jax.jit, static_argnums=1)
def ref_gemma(p, cfg, x, mask_input, mask_ar):
  """Gemma on embedded x [B, S, D]; returns f32 logits [B, S, V]."""
  pos = jnp.cumsum(mask_input, 1) - 1
  cum = jnp.cumsum(mask_ar, 1)
  valid = (mask_input[:, None, :] * mask_input[:, :, None]) > 0
  mask = (cum[:, None, :] <= cum[:, :, None]) & valid
  s = x.shape[1]
  for layer in range(cfg.depth):
    lp = jax.tree_util.tree_map(lambda a, i=layer: a[i], p["layers"])
    h = _rms(x, lp["pre_attention_norm"]["scale"])
    q = _rope(jnp.einsum("btd,ndh->btnh", h, lp["attn"]["q_einsum"]["w"]), pos)
    k = _rope(jnp.einsum("btd,kdh->btkh", h, lp["attn"]["kv_einsum"]["w"][0]), pos)
    v = jnp.einsum("btd,kdh->btkh", h, lp["attn"]["kv_einsum"]["w"][1])
    rep = cfg.num_heads // cfg.num_kv_heads
    k, v = jnp.repeat(k, rep, axis=2), jnp.repeat(v, rep, axis=2)
    logits = jnp.einsum("btnh,bsnh->bnts", q * cfg.head_dim ** -0.5, k)
    if cfg.attn_logits_softcap:
      logits = 50.0 * jnp.tanh(logits / 50.0)
    m = mask
    if cfg.sliding_window and layer % 2 == 0:
      m = m & (np.abs(np.arange(s)[:, None] - np.arange(s)[None]) < cfg.sliding_window)
    logits = jnp.where(m[:, None], logits, -1e30)
    o = jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(logits, -1), v)
    o = jnp.einsum("btnh,nhd->btd", o, lp["attn"]["attn_vec_einsum"]["w"])
    if cfg.post_norms:
      o = _rms(o, lp["post_attention_norm"]["scale"])
    x = x + o
    h = _rms(x, lp["pre_ffw_norm"]["scale"])
    g = lp["mlp"]["gating_einsum"]
    f = (jax.nn.gelu(h @ g[0], approximate=True) * (h @ g[1])) @ lp["mlp"]["linear"]
    if cfg.post_norms:
      f = _rms(f, lp["post_ffw_norm"]["scale"])
    x = x + f
  x = _rms(x, p["final_norm"]["scale"])
  logits = x @ p["embedder"]["input_embedding"].T
  if cfg.final_logits_softcap:
    logits = 30.0 * jnp.tanh(logits / 30.0)
  return logits


def _embed(p, cfg, tokens):
  return p["embedder"]["input_embedding"][tokens] * np.sqrt(cfg.width)


GEMMA1 = gemma_lib.GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1,
                               head_dim=16, vocab_size=64, seq_len=12)
GEMMA2 = gemma_lib.GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=4, num_kv_heads=2,
                               head_dim=8, vocab_size=64, seq_len=12, post_norms=True,
                               attn_logits_softcap=50.0, final_logits_softcap=30.0,
                               sliding_window=4, scan=False)


def _lm_batch(cfg, seed=0):
  b, s = 2, cfg.seq_len
  tokens = jax.random.randint(jax.random.PRNGKey(seed), (b, s), 3, cfg.vocab_size)
  mask_ar = jnp.asarray([[0] * 5 + [1] * (s - 5), [0] * 7 + [1] * (s - 7)], jnp.int32)
  mask_input = jnp.ones((b, s), jnp.int32).at[1, s - 2:].set(0)
  return tokens, mask_input, mask_ar


def _scanned_view(params):
  """Per-layer `layers_{i}` params -> scanned `layers` (for the reference)."""
  if "layers" in params:
    return params
  n = len([k for k in params if k.startswith("layers_")])
  out = {k: v for k, v in params.items() if not k.startswith("layers_")}
  out["layers"] = jax.tree_util.tree_map(lambda *a: jnp.stack(a),
                                         *[params[f"layers_{i}"] for i in range(n)])
  return out


# -------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("cfg", [GEMMA1, GEMMA2], ids=["gemma", "gemma2-unscanned"])
def test_gemma_matches_reference(cfg):
  params = random_params(cfg)
  tokens, mask_input, mask_ar = _lm_batch(cfg)
  got = jitted(cfg)({"params": params}, tokens, mask_input, mask_ar)
  p = _scanned_view(params)
  want = ref_gemma(p, cfg, _embed(p, cfg, tokens), mask_input, mask_ar)
  valid = np.asarray(mask_input, bool)
  np.testing.assert_allclose(np.asarray(got)[valid], np.asarray(want)[valid], atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("cfg", [GEMMA1, GEMMA2], ids=["gemma", "gemma2-unscanned"])
def test_cached_decoding_equals_full_forward(cfg):
  """prefill(prompt with right padding) + extend one token at a time == the full forward."""
  params = {"params": random_params(cfg, seed=1)}
  b, p, e = 2, 7, 5
  tokens = jax.random.randint(jax.random.PRNGKey(2), (b, p + e), 3, cfg.vocab_size)
  prompt_valid = jnp.asarray([[1] * 7, [1] * 4 + [0] * 3], jnp.int32)  # row 1 padded
  mask_input = jnp.concatenate([prompt_valid, jnp.ones((b, e), jnp.int32)], 1)
  mask_ar = jnp.concatenate([jnp.zeros((b, p), jnp.int32), jnp.ones((b, e), jnp.int32)], 1)
  full = jitted(cfg)(params, tokens, mask_input, mask_ar)

  embed = jitted(cfg, gemma_lib.Gemma.embed)
  prefill = jax.jit(functools.partial(gemma_lib.Gemma(cfg).apply, method=gemma_lib.Gemma.prefill),
                    static_argnums=4)
  extend = jitted(cfg, gemma_lib.Gemma.extend)
  logits, cache = prefill(params, embed(params, tokens[:, :p]), prompt_valid, mask_ar[:, :p],
                          p + e)
  last = [6, 3]  # last valid prompt token per row
  np.testing.assert_allclose(logits, np.asarray(full)[np.arange(b), last], atol=1e-4, rtol=1e-4)
  for i in range(e - 1):
    logits, cache = extend(params, embed(params, tokens[:, p + i:p + i + 1]), cache)
    np.testing.assert_allclose(logits, full[:, p + i], atol=1e-4, rtol=1e-4)
  assert int(cache["index"]) == p + e - 1
  np.testing.assert_array_equal(cache["pos"], [p + e - 1, 4 + e - 1])


def test_prefix_lm_mask():
  mask_ar = jnp.asarray([[0, 0, 0, 1, 1]])
  mask_input = jnp.asarray([[1, 1, 1, 1, 0]])
  got = np.asarray(gemma_lib.make_attn_mask(mask_input, mask_ar))[0]
  want = np.zeros((5, 5), bool)
  for i in range(5):
    for j in range(5):
      prefix_pair = j < 3  # every token sees the whole prefix (prefix sees prefix both ways)
      causal = 3 <= j <= i
      want[i, j] = (prefix_pair or causal) and i < 4 and j < 4
  np.testing.assert_array_equal(got, want)

  # Behaviour: prefix tokens see each other (both ways); the suffix is causal.
  cfg = GEMMA1
  params = {"params": random_params(cfg, seed=3)}
  apply = jitted(cfg)
  tokens, mask_input, mask_ar = _lm_batch(cfg, seed=4)  # row 0: prefix 0..4, suffix 5..
  base = np.asarray(apply(params, tokens, mask_input, mask_ar))
  later_prefix = np.asarray(apply(params, tokens.at[0, 4].set(tokens[0, 4] % 60 + 3),
                                  mask_input, mask_ar))
  assert np.abs(later_prefix[0, 0] - base[0, 0]).max() > 1e-4  # token 0 sees prefix token 4
  suffix = np.asarray(apply(params, tokens.at[0, 8].set(tokens[0, 8] % 60 + 3),
                            mask_input, mask_ar))
  np.testing.assert_array_equal(suffix[0, :8], base[0, :8])  # nothing sees a later suffix token
  assert np.abs(suffix[0, 8:] - base[0, 8:]).max() > 1e-4


def _vlm_batch(cfg, t, seed=0):
  b, s = 2, cfg.llm.seq_len
  frames = random_frames((b, t, cfg.img.image_size, cfg.img.image_size, 3), seed)
  tokens = jax.random.randint(jax.random.PRNGKey(seed + 1), (b, s), 3, cfg.llm.vocab_size)
  mask_ar = (jnp.arange(s)[None] >= jnp.asarray([[6], [8]])).astype(jnp.int32)
  mask_input = jnp.ones((b, s), jnp.int32).at[1, s - 3:].set(0)
  return frames, tokens, mask_ar, mask_input


def test_vlm_single_frame_is_the_image_path():
  """T=1: VLM == reference PaliGemma (conv ViT + head, [image | text] prefix-LM Gemma)."""
  cfg = TEST_VLM
  params = random_params(cfg, seed=5)
  frames, tokens, mask_ar, mask_input = _vlm_batch(cfg, 1)
  got = jitted(cfg)({"params": params}, frames, tokens, mask_ar, mask_input)
  img = ref_vit(params["img"], frames[:, 0], cfg.img.depth)
  x = jnp.concatenate([img, _embed(params["llm"], cfg.llm, tokens)], 1)
  n = img.shape[1]
  ones, zeros = jnp.ones((2, n), jnp.int32), jnp.zeros((2, n), jnp.int32)
  want = ref_gemma(params["llm"], cfg.llm, x, jnp.concatenate([ones, mask_input], 1),
                   jnp.concatenate([zeros, mask_ar], 1))[:, n:]
  valid = np.asarray(mask_input, bool)
  np.testing.assert_allclose(np.asarray(got)[valid], np.asarray(want)[valid], atol=2e-4, rtol=2e-4)


def test_vlm_cached_decoding_equals_full_forward():
  cfg = TEST_VLM
  params = {"params": random_params(cfg, seed=6)}
  frames, tokens, _, _ = _vlm_batch(cfg, 2, seed=7)
  p, e = 9, 7
  prompt_valid = jnp.asarray([[1] * p, [1] * 6 + [0] * 3], jnp.int32)
  mask_input = jnp.concatenate([prompt_valid, jnp.ones((2, e), jnp.int32)], 1)
  mask_ar = jnp.concatenate([jnp.zeros((2, p), jnp.int32), jnp.ones((2, e), jnp.int32)], 1)
  full = jitted(cfg)(params, frames, tokens, mask_ar, mask_input)
  prefill = jax.jit(functools.partial(vlm_lib.VLM(cfg).apply, method=vlm_lib.VLM.prefill),
                    static_argnums=5)
  extend = jitted(cfg, vlm_lib.VLM.extend)
  logits, cache = prefill(params, frames, tokens[:, :p], mask_ar[:, :p], prompt_valid, e)
  np.testing.assert_allclose(logits, np.asarray(full)[[0, 1], [p - 1, 5]], atol=1e-4, rtol=1e-4)
  assert cache["k"].shape == (cfg.llm.depth, 2, 2 * 4 + p + e, 1, 16)
  for i in range(e - 1):
    logits, cache = extend(params, tokens[:, p + i:p + i + 1], cache)
    np.testing.assert_allclose(logits, full[:, p + i], atol=1e-4, rtol=1e-4)


def test_frame_order_matters_to_vit_st_not_to_the_vlm_encoder():
  perm = jnp.asarray([1, 0])
  de_cfg = variants.get_config("test-de")
  de_params = {"params": random_params(de_cfg, seed=8)}
  frames = random_frames((4, 2, 16, 16, 3), seed=9)
  tokens = jax.random.randint(jax.random.PRNGKey(17), (4, 8), 0, 256)
  z = np.asarray(jitted(de_cfg)(de_params, frames, tokens)[0])
  z_perm = np.asarray(jitted(de_cfg)(de_params, frames[:, perm], tokens)[0])
  assert np.abs(z - z_perm).max() > 1e-3

  params = {"params": random_params(TEST_VLM, seed=10)}
  encode = jitted(TEST_VLM, vlm_lib.VLM.encode_frames)
  tok, tok_perm = np.asarray(encode(params, frames)), np.asarray(encode(params, frames[:, perm]))
  np.testing.assert_allclose(tok_perm, tok[:, perm], atol=1e-6)
  # Frames are encoded independently: frame 1 of the clip == that frame alone.
  np.testing.assert_allclose(np.asarray(encode(params, frames[:, 1:2]))[:, 0], tok[:, 1],
                             atol=1e-6)
  # uint8 frames are normalised on device; float frames in [-1, 1] give the same tokens.
  as_float = encode(params, frames.astype(jnp.float32) / 127.5 - 1.0)
  np.testing.assert_allclose(np.asarray(as_float), tok, atol=1e-5)
  with pytest.raises(ValueError, match="image_size"):
    encode(params, random_frames((1, 1, 32, 32, 3)))


def test_token_pool_averages_each_frame_grid():
  cfg = variants.get_config("test", {"img.image_size": 32})  # 4x4 grid per frame
  pooled_cfg = dataclasses.replace(cfg, token_pool=2)
  assert pooled_cfg.tokens_per_frame == 4
  params = {"params": random_params(cfg, seed=13)}
  frames = random_frames((1, 2, 32, 32, 3), seed=14)
  full = np.asarray(jitted(cfg, vlm_lib.VLM.encode_frames)(params, frames))
  pooled = np.asarray(jitted(pooled_cfg, vlm_lib.VLM.encode_frames)(params, frames))
  assert pooled.shape == (1, 2, 4, 32)
  grid = full.reshape(1, 2, 4, 4, 32)
  np.testing.assert_allclose(pooled[0, 1, 1], grid[0, 1, 0:2, 2:4].mean(axis=(0, 1)), atol=1e-6)


def test_loss_counts_only_target_tokens():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(2, 6, 11)), jnp.float32)
  tokens = jnp.asarray(rng.integers(0, 11, size=(2, 6)), jnp.int32)
  mask_loss = jnp.asarray([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 0]], jnp.int32)
  loss, aux = vlm_lib.loss(logits, tokens, mask_loss)
  logp = np.asarray(jax.nn.log_softmax(logits, -1))
  per_ex = [np.mean([-logp[b, i - 1, tokens[b, i]] for i in range(6) if mask_loss[b, i]])
            for b in range(2)]
  np.testing.assert_allclose(loss, np.mean(per_ex), rtol=1e-6)
  assert float(aux["num_tokens"]) == 4
  # Logits at positions that do not predict a target do not matter.
  changed = logits.at[:, 0:2].add(5.0).at[1, 2:4].add(3.0).at[:, 5].add(7.0)
  np.testing.assert_allclose(vlm_lib.loss(changed, tokens, mask_loss)[0], loss, rtol=1e-6)


def test_dual_encoder_embeddings_and_losses():
  cfg = variants.get_config("test-de")
  params = {"params": random_params(cfg, seed=15)}
  frames = random_frames((4, 2, 16, 16, 3), seed=16)
  tokens = jax.random.randint(jax.random.PRNGKey(17), (4, 8), 0, 256)
  zimg, ztxt, out = jitted(cfg)(params, frames, tokens)
  assert zimg.shape == ztxt.shape == (4, 32)
  np.testing.assert_allclose(np.linalg.norm(zimg, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(ztxt, axis=-1), 1.0, rtol=1e-5)
  # The video tower is the reference ViT-st.
  want = np.asarray(ref_vit_st(params["params"]["img"], frames, cfg.img.depth))
  want = want / np.linalg.norm(want, axis=-1, keepdims=True)
  np.testing.assert_allclose(np.asarray(zimg), want, atol=1e-4)

  t, b = np.asarray(out["t"]), np.asarray(out["b"])
  logits = np.asarray(zimg) @ np.asarray(ztxt).T * np.exp(t[0]) + b[0]
  sig = 0.0
  for i in range(4):
    for j in range(4):
      z = 1.0 if i == j else -1.0
      sig += np.log1p(np.exp(-z * logits[i, j]))
  np.testing.assert_allclose(de_lib.sigmoid_loss(zimg, ztxt, out["t"], out["b"]), sig / 4,
                             rtol=1e-5)
  lg = logits - b[0]
  i2t = -np.mean([lg[i, i] - np.log(np.exp(lg[i]).sum()) for i in range(4)])
  t2i = -np.mean([lg[i, i] - np.log(np.exp(lg[:, i]).sum()) for i in range(4)])
  np.testing.assert_allclose(de_lib.softmax_loss(zimg, ztxt, out["t"]), (i2t + t2i) / 2,
                             rtol=1e-5)


def test_remat_and_bf16():
  cfg = TEST_VLM
  remat_cfg = variants.get_config("test", {"img.remat_policy": "full",
                                           "llm.remat_policy": "dots"})
  params = random_params(cfg, seed=18)
  batch = _vlm_batch(cfg, 2, seed=19)

  def grads(c):
    def loss(p, batch):
      logits = vlm_lib.VLM(c).apply({"params": p}, *batch)
      return vlm_lib.loss(logits, batch[1], batch[2])[0]
    return jax.jit(jax.grad(loss))(params, batch)

  for a, b in zip(jax.tree_util.tree_leaves(grads(cfg)), jax.tree_util.tree_leaves(
      grads(remat_cfg))):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)

  bf16 = variants.get_config("test", {"img.dtype": "bfloat16", "llm.dtype": "bfloat16"})
  f32 = jitted(cfg)({"params": params}, *batch)
  low = jitted(bf16)({"params": params}, *batch)
  assert low.dtype == jnp.float32
  assert np.abs(np.asarray(low) - np.asarray(f32)).max() < 0.1 * np.abs(np.asarray(f32)).max()
  with pytest.raises(ValueError, match="unknown remat_policy"):
    variants.abstract_params(variants.get_config("test", {"img.remat_policy": "x"}))


@pytest.mark.parametrize("name,overrides", [
    ("test", {"img.width": 128, "img.mlp_dim": 256, "img.num_heads": 4, "img.head_features": 128,
              "img.scan": False, "llm.width": 128, "llm.mlp_dim": 512, "llm.num_heads": 4,
              "llm.head_dim": 32, "llm.scan": False}),
    ("test-de", {"img.width": 128, "img.mlp_dim": 256, "img.num_heads": 4,
                 "img.head_features": 128, "img.scan": False, "txt.width": 128,
                 "txt.mlp_dim": 256, "txt.num_heads": 4, "txt.head_features": 128,
                 "txt.scan": False}),
])
def test_analytic_flops_match_xla_cost_analysis(name, overrides):
  """Unscanned models (XLA does not multiply a scan body by its trip count)."""
  cfg = variants.get_config(name, overrides)
  model = variants.make_model(cfg)
  abstract = nn.unbox(variants.abstract_params(cfg))
  lowered = jax.jit(model.apply).lower({"params": abstract}, **variants.dummy_inputs(cfg, 1))
  cost = lowered.cost_analysis()
  xla = cost[0]["flops"] if isinstance(cost, list) else cost["flops"]
  ours = variants.flops_per_example(cfg)
  assert abs(xla - ours) / ours < 0.1, (xla, ours)

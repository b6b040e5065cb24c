"""Import of big_vision .npz weights: tiny round trips, full-size layouts, errors, CLI checkpoint.

The expected big_vision names and shapes are written here from docs/checkpoints.md's tables, not taken from
our model, so the tests check that our tree really is big_vision's layout.
"""
import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
import pytest
import scipy.ndimage
from flax import traverse_util

from viit_jax import checkpoints
from viit_jax import import_weights as iw
from viit_jax.models import variants
from viit_jax.models import vit as vit_lib

# ---------------------------------------------------------------- big_vision tables (docs/checkpoints.md)


def _block(d, f, n):
  hd = d // n
  mha = "MultiHeadDotProductAttention_0"
  out = {"LayerNorm_0/scale": (d,), "LayerNorm_0/bias": (d,), "LayerNorm_1/scale": (d,),
         "LayerNorm_1/bias": (d,), "MlpBlock_0/Dense_0/kernel": (d, f),
         "MlpBlock_0/Dense_0/bias": (f,), "MlpBlock_0/Dense_1/kernel": (f, d),
         "MlpBlock_0/Dense_1/bias": (d,), f"{mha}/out/kernel": (n, hd, d), f"{mha}/out/bias": (d,)}
  for p in ("query", "key", "value"):
    out[f"{mha}/{p}/kernel"] = (d, n, hd)
    out[f"{mha}/{p}/bias"] = (n, hd)
  return out


def _encoder(prefix, d, depth, f, n, scanned):
  out = {f"{prefix}encoder_norm/scale": (d,), f"{prefix}encoder_norm/bias": (d,)}
  for k, s in _block(d, f, n).items():
    if scanned:
      out[f"{prefix}encoderblock/{k}"] = (depth, *s)
    else:
      out.update({f"{prefix}encoderblock_{i}/{k}": s for i in range(depth)})
  return out


def bv_vit(prefix, d, depth, f, n, patch, tokens, *, scanned, head=None, map_head=False):
  out = {f"{prefix}embedding/kernel": (patch, patch, 3, d), f"{prefix}embedding/bias": (d,),
         f"{prefix}pos_embedding": (1, tokens, d),
         **_encoder(f"{prefix}Transformer/", d, depth, f, n, scanned)}
  if map_head:
    out[f"{prefix}MAPHead_0/probe"] = (1, 1, d)
    blk = _block(d, f, n)
    out.update({f"{prefix}MAPHead_0/{k}": s for k, s in blk.items() if "LayerNorm_1" not in k})
  if head:
    out[f"{prefix}head/kernel"] = (d, head)
    out[f"{prefix}head/bias"] = (head,)
  return out


def bv_gemma(prefix, d, depth, f, n, k, hd, v, post_norms=False):
  out = {f"{prefix}embedder/input_embedding": (v, d), f"{prefix}final_norm/scale": (d,)}
  layer = {"pre_attention_norm/scale": (d,), "pre_ffw_norm/scale": (d,),
           "attn/q_einsum/w": (n, d, hd), "attn/kv_einsum/w": (2, k, d, hd),
           "attn/attn_vec_einsum/w": (n, hd, d), "mlp/gating_einsum": (2, d, f),
           "mlp/linear": (f, d)}
  if post_norms:
    layer.update({"post_attention_norm/scale": (d,), "post_ffw_norm/scale": (d,)})
  out.update({f"{prefix}layers/{name}": (depth, *s) for name, s in layer.items()})
  return out


def bv_text(prefix, v, d, depth, f, n, seq, head, scanned=False):
  return {f"{prefix}Embed_0/embedding": (v, d), f"{prefix}pos_embedding": (1, seq, d),
          **_encoder(f"{prefix}Encoder_0/", d, depth, f, n, scanned),
          f"{prefix}head/kernel": (d, head), f"{prefix}head/bias": (head,)}


def bv_paligemma_3b(res=224):
  return {**bv_vit("img/", 1152, 27, 4304, 16, 14, (res // 14) ** 2, scanned=True, head=2048),
          **bv_gemma("llm/", 2048, 18, 16384, 8, 1, 256, 257152)}


def bv_siglip_so400m():
  return {**bv_vit("img/", 1152, 27, 4304, 16, 14, 256, scanned=False, map_head=True),
          **bv_text("txt/", 32000, 1152, 27, 4304, 16, 16, 1152), "t": (1,), "b": (1,)}


def _count(table):
  return sum(int(np.prod(s)) for s in table.values())


def _random(table, seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s).astype(np.float32) for k, s in sorted(table.items())}


def _write_npz(path, arrays, *, prefix, bf16_name):
  out = {}
  for k, v in arrays.items():
    if k == bf16_name:  # big_vision stores bf16 as 2-byte void
      v = v.astype(ml_dtypes.bfloat16).view(np.dtype("V2"))
    out[prefix + k] = v
  np.savez(path, **out)


def _random_params(cfg, seed=0, std=0.2):
  """Random parameters of the model's shapes (no init compile: eval_shape + numpy)."""
  leaves, treedef = jax.tree_util.tree_flatten(nn.unbox(variants.abstract_params(cfg)))
  rng = np.random.default_rng(seed)
  return treedef.unflatten([jnp.asarray(rng.normal(size=x.shape) * std, jnp.float32)
                            for x in leaves])


def _nested(flat):
  return traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v)
                                       for k, v in flat.items()})


def _stack_per_layer(flat):
  """The test's own per-layer -> scanned conversion (the 'set directly' reference)."""
  out, groups = {}, {}
  for k, v in flat.items():
    parts = k.split("/")
    idx = [i for i, p in enumerate(parts) if p.startswith("encoderblock_")]
    if idx:
      i = idx[0]
      key = "/".join(parts[:i] + ["encoderblock"] + parts[i + 1:])
      groups.setdefault(key, {})[int(parts[i].split("_")[1])] = v
    else:
      out[k] = v
  for k, layers in groups.items():
    out[k] = np.stack([layers[i] for i in range(len(layers))])
  return out


# ------------------------------------------------------------------------------------- tables


def test_tables_match_documented_counts():
  """The hand-written big_vision tables reproduce docs/checkpoints.md's parameter counts."""
  assert _count(bv_paligemma_3b()) == 2_923_335_408
  assert _count(bv_paligemma_3b(448)) == 2_924_220_144
  assert _count(bv_siglip_so400m()) == 877_360_306
  pg2 = {**bv_vit("img/", 1152, 27, 4304, 16, 14, 256, scanned=True, head=2304),
         **bv_gemma("llm/", 2304, 26, 9216, 8, 4, 256, 257152, post_norms=True)}
  assert _count(pg2) == 3_032_094_960


@pytest.mark.parametrize("variant,kind,table", [
    ("paligemma-3b-224", "paligemma", bv_paligemma_3b()),
    ("siglip-so400m14", "siglip", bv_siglip_so400m()),
    ("paligemma2-3b-224", "paligemma",
     {**bv_vit("img/", 1152, 27, 4304, 16, 14, 256, scanned=True, head=2304),
      **bv_gemma("llm/", 2304, 26, 9216, 8, 4, 256, 257152, post_norms=True)}),
])
def test_full_size_layout_maps_every_name(variant, kind, table):
  """Every big_vision name and shape maps onto our eval_shape tree with nothing left over."""
  cfg = variants.get_config(variant)
  src = {"params/" + k: jax.ShapeDtypeStruct(s, jnp.bfloat16) for k, s in table.items()}
  converted, unused = iw.convert(src, kind, cfg)
  target = {"/".join(k): v for k, v in traverse_util.flatten_dict(
      nn.unbox(variants.abstract_params(cfg))).items()}
  assert unused == []
  assert set(converted) == set(target)
  assert all(converted[k].shape == target[k].shape for k in target)
  assert variants.count_params(cfg) == _count(table)


def test_siglip_into_vit_st_tower_adds_only_pe_t():
  """SigLIP B/16 (per-layer) -> vit-st-b16: the img/ tower maps, plus the new PE_t."""
  table = {**bv_vit("img/", 768, 12, 3072, 12, 16, 196, scanned=False, map_head=True),
           **bv_text("txt/", 32000, 768, 12, 3072, 12, 64, 768), "t": (1,), "b": (1,)}
  cfg = variants.get_config("vit-st-b16")
  src = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in table.items()}
  converted, unused = iw.convert(src, "siglip", cfg)
  assert converted["temporal_pos_embedding"].shape == (1, 4, 768)
  assert set(unused) == {k for k in table if not k.startswith("img/")}
  assert converted["Transformer/encoderblock/MlpBlock_0/Dense_0/kernel"].shape == (12, 768, 3072)


def test_mismatch_error_lists_missing_extra_and_misshaped():
  cfg = variants.get_config("test")
  table = {**bv_vit("img/", 32, 2, 64, 2, 8, 4, scanned=True, head=32),
           **bv_gemma("llm/", 32, 2, 64, 2, 1, 16, 256)}
  del table["llm/final_norm/scale"]
  table["img/extra_thing/kernel"] = (3, 3)
  table["llm/mlp_wrong"] = (1,)
  table["img/head/kernel"] = (32, 31)
  src = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in table.items()}
  with pytest.raises(iw.ImportMismatchError) as e:
    iw.convert(src, "paligemma", cfg)
  msg = str(e.value)
  assert "1 missing" in msg and "llm/final_norm/scale" in msg
  assert "2 extra" in msg and "img/extra_thing/kernel" in msg and "llm/mlp_wrong" in msg
  assert "1 mis-shaped" in msg and "img/head/kernel: source (32, 31) vs model (32, 32)" in msg


# ---------------------------------------------------------------------------- tiny round trips

_TEST_VLM_TABLE = {**bv_vit("img/", 32, 2, 64, 2, 8, 4, scanned=True, head=32),
                   **bv_gemma("llm/", 32, 2, 64, 2, 1, 16, 256)}


def _vlm_inputs(cfg, rng=0):
  k1, k2 = jax.random.split(jax.random.PRNGKey(rng))
  frames = jax.random.randint(k1, (2, 2, 16, 16, 3), 0, 256).astype(jnp.uint8)
  tokens = jax.random.randint(k2, (2, cfg.llm.seq_len), 3, cfg.llm.vocab_size)
  mask_ar = (jnp.arange(cfg.llm.seq_len) >= 6).astype(jnp.int32)[None].repeat(2, 0)
  return frames, tokens, mask_ar, jnp.ones_like(tokens)


@pytest.mark.parametrize("prefix", ["", "params/"])
def test_paligemma_round_trip(tmp_path, prefix):
  cfg = variants.get_config("test")
  arrays = _random(_TEST_VLM_TABLE)
  bf16 = "llm/layers/mlp/linear"
  path = str(tmp_path / "pg.npz")
  _write_npz(path, arrays, prefix=prefix, bf16_name=bf16)
  params, unused = iw.import_params(path, "paligemma", cfg)
  assert unused == []
  direct = dict(arrays)
  direct[bf16] = arrays[bf16].astype(ml_dtypes.bfloat16).astype(np.float32)
  assert not np.array_equal(direct[bf16], arrays[bf16])  # the bf16 rounding is real
  model = variants.make_model(cfg)
  inputs = _vlm_inputs(cfg)
  apply = jax.jit(model.apply)
  got = apply({"params": jax.tree_util.tree_map(jnp.asarray, params)}, *inputs)
  want = apply({"params": _nested(direct)}, *inputs)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(params).items()}
  assert all(v.dtype == np.float32 for v in flat.values())


@pytest.mark.parametrize("scanned", [False, True])
def test_siglip_round_trip_per_layer_and_scanned(tmp_path, scanned):
  cfg = variants.get_config("test-de", {"img.temporal": False})  # image two-tower, T frames
  table = {**bv_vit("img/", 32, 2, 64, 2, 8, 4, scanned=scanned, map_head=True, head=32),
           **bv_text("txt/", 256, 32, 2, 64, 2, 8, 32, scanned=scanned), "t": (1,), "b": (1,)}
  arrays = _random(table, seed=1)
  bf16 = "img/MAPHead_0/probe"
  path = str(tmp_path / "siglip.npz")
  _write_npz(path, arrays, prefix="params/", bf16_name=bf16)
  params, _ = iw.import_params(path, "siglip", cfg)
  direct = dict(arrays)
  direct[bf16] = arrays[bf16].astype(ml_dtypes.bfloat16).astype(np.float32)
  direct = _stack_per_layer(direct)
  model = variants.make_model(cfg)
  frames = jax.random.randint(jax.random.PRNGKey(3), (2, 2, 16, 16, 3), 0, 256).astype(jnp.uint8)
  tokens = jax.random.randint(jax.random.PRNGKey(4), (2, 8), 0, 256)
  apply = jax.jit(model.apply)
  got = apply({"params": jax.tree_util.tree_map(jnp.asarray, params)}, frames, tokens)
  want = apply({"params": _nested(direct)}, frames, tokens)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_scanned_file_into_unscanned_model():
  cfg = variants.get_config("test", {"img.scan": False, "llm.scan": False})
  arrays = _random(_TEST_VLM_TABLE, seed=2)
  flat, _ = iw.convert(arrays, "paligemma", cfg)
  np.testing.assert_array_equal(flat["img/Transformer/encoderblock_1/LayerNorm_0/scale"],
                                arrays["img/Transformer/encoderblock/LayerNorm_0/scale"][1])
  np.testing.assert_array_equal(flat["llm/layers_0/attn/q_einsum/w"],
                                arrays["llm/layers/attn/q_einsum/w"][0])
  model = variants.make_model(cfg)
  scanned_model = variants.make_model(variants.get_config("test"))
  inputs = _vlm_inputs(cfg, rng=5)
  got = jax.jit(model.apply)({"params": _nested(flat)}, *inputs)
  want = jax.jit(scanned_model.apply)({"params": _nested(arrays)}, *inputs)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4)


def test_posemb_resized_bilinearly_for_another_resolution():
  cfg = variants.get_config("test", {"img.image_size": 32})  # 2x2 -> 4x4 token grid
  arrays = _random(_TEST_VLM_TABLE, seed=3)
  flat, _ = iw.convert(arrays, "paligemma", cfg)
  got = flat["img/pos_embedding"]
  assert got.shape == (1, 16, 32)
  want = scipy.ndimage.zoom(arrays["img/pos_embedding"].reshape(2, 2, 32), (2, 2, 1), order=1)
  np.testing.assert_allclose(got, want.reshape(1, 16, 32), rtol=1e-6)
  np.testing.assert_allclose(got.reshape(4, 4, 32)[0, 0], arrays["img/pos_embedding"][0, 0],
                             rtol=1e-6)  # corners are kept


def test_vit_to_vit_st_is_renaming_plus_pe_t():
  """Image ViT params -> ViT-st: with PE_t = 0 and one frame, ViT-st equals the image ViT."""
  img_cfg = dataclasses.replace(variants.get_config("test-de").img, temporal=False, num_frames=1)
  st_cfg = dataclasses.replace(img_cfg, temporal=True)
  img_params = _random_params(img_cfg)
  st_params = iw.vit_to_vit_st(img_params, 1, jax.random.PRNGKey(1))
  assert set(st_params) == set(img_params) | {"temporal_pos_embedding"}
  assert st_params["temporal_pos_embedding"].shape == (1, 1, 32)
  assert float(np.std(st_params["temporal_pos_embedding"])) > 0
  frames = jax.random.randint(jax.random.PRNGKey(2), (3, 1, 16, 16, 3), 0, 256).astype(jnp.uint8)
  zero_t = {**st_params, "temporal_pos_embedding": np.zeros((1, 1, 32), np.float32)}
  st_out = jax.jit(vit_lib.ViT(st_cfg).apply)({"params": zero_t}, frames)
  img_out = jax.jit(vit_lib.ViT(img_cfg).apply)({"params": img_params}, frames)[:, 0]
  np.testing.assert_allclose(np.asarray(st_out), np.asarray(img_out), atol=1e-6)
  st_cfg4 = dataclasses.replace(st_cfg, num_frames=4)
  st4 = iw.vit_to_vit_st(img_params, 4, jax.random.PRNGKey(1))
  assert jax.tree_util.tree_map(np.shape, nn.unbox(variants.abstract_params(st_cfg4))) == \
      jax.tree_util.tree_map(np.shape, st4)


def test_cli_writes_orbax_checkpoint_the_trainer_restores(tmp_path):
  table = {**bv_vit("img/", 32, 2, 64, 2, 8, 4, scanned=False, map_head=True, head=32),
           **bv_text("txt/", 256, 32, 2, 64, 2, 8, 32), "t": (1,), "b": (1,)}
  arrays = _random(table, seed=4)
  src = str(tmp_path / "siglip.npz")
  _write_npz(src, arrays, prefix="params/", bf16_name="t")
  workdir = str(tmp_path / "run")
  iw.main([f"--src={src}", "--kind=siglip", "--variant=test-de", f"--workdir={workdir}"])

  ckpt = os.path.join(workdir, "checkpoints")
  manager = ocp.CheckpointManager(ckpt, item_handlers={
      "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})
  assert manager.all_steps() == [0]
  restored = manager.restore(0, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                        meta=ocp.args.JsonRestore()))
  manager.close()
  meta = dict(restored["meta"])
  assert meta == {"kind": "import", "source": os.path.abspath(src), "variant": "test-de",
                  "import_kind": "siglip", "overrides": {}}
  state = restored["state"]
  assert int(state["step"]) == 0
  np.testing.assert_array_equal(
      np.asarray(state["params"]["img"]["Transformer"]["encoderblock"]["LayerNorm_0"]["scale"]),
      np.stack([arrays[f"img/Transformer/encoderblock_{i}/LayerNorm_0/scale"] for i in range(2)]))
  assert state["params"]["img"]["temporal_pos_embedding"].shape == (1, 2, 32)

  # The trainer's init_from path (viit_jax.checkpoints) loads it into a fresh tree.
  cfg = variants.get_config("test-de")
  fresh = _random_params(cfg, seed=9)
  loaded, report = checkpoints.load_params_into(fresh, workdir)
  assert not report.kept and not report.unused_source
  np.testing.assert_array_equal(np.asarray(loaded["t"]),
                                arrays["t"].astype(ml_dtypes.bfloat16).astype(np.float32))
  np.testing.assert_array_equal(np.asarray(loaded["txt"]["head"]["kernel"]),
                                arrays["txt/head/kernel"])

  with pytest.raises(FileExistsError):
    iw.main([f"--src={src}", "--kind=siglip", "--variant=test-de", f"--workdir={workdir}"])


def test_wrong_kind_for_variant_is_an_error():
  with pytest.raises(ValueError, match="kind=paligemma needs a VLM"):
    iw.convert({}, "paligemma", variants.get_config("test-de"))
  with pytest.raises(ValueError, match="unknown import kind"):
    iw.convert({}, "clip", variants.get_config("test"))

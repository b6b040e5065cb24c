"""Parameter counts of the named variants (jax.eval_shape, nothing allocated) and the variants CLI."""
import flax.linen as nn
import jax
import pytest

from viit_jax.models import variants

# docs/checkpoints.md, "Parameter counts (exact)".
DOCUMENTED = {
    "paligemma-3b-224": 2_923_335_408,
    "paligemma-3b-448": 2_924_220_144,
    "paligemma-3b-896": 2_927_759_088,
    "paligemma2-3b-224": 3_032_094_960,
    "paligemma2-10b-224": 9_662_409_456,
    "gemma-2b": 2_506_172_416,
    "gemma2-2b": 2_614_341_888,
    "vit-so400m14": 412_442_352,  # So400m/14 trunk without MAP head, 224
    "siglip-b16": 203_155_970,  # two-tower 224, text len 64, V 32000
    "siglip-so400m14": 877_360_306,  # two-tower 224, text len 16
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_parameter_count_matches_checkpoints_md(name):
  assert variants.count_params(variants.get_config(name)) == DOCUMENTED[name]


def test_every_variant_has_logical_names_on_every_param():
  allowed = {"batch", "frames", "length", "embed", "mlp", "heads", "kv", "vocab", "layers", None}
  for name in ("test", "test-de", "demo", "demo-de", "vit-st-b16", "gemma2-2b"):
    tree = variants.abstract_params(variants.get_config(name))
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves), name
    for x in leaves:
      assert len(x.names) == x.value.ndim and set(x.names) <= allowed, (name, x.names)
  scanned = variants.abstract_params(variants.get_config("test"))
  assert scanned["llm"]["layers"]["mlp"]["linear"].names == ("layers", "mlp", "embed")


def test_small_variants_and_overrides():
  demo = variants.get_config("demo", {"llm.vocab_size": 1000})
  assert demo.img.num_frames == 8 and demo.img.image_size == 32 and demo.img.patch_size == 8
  assert 0.5e6 < variants.count_params(demo) < 3e6
  assert variants.count_params(variants.get_config("test")) < 1e5
  assert variants.get_config("siglip-b16-video").img.temporal
  with pytest.raises(KeyError, match="llm.vocab"):
    variants.get_config("test", {"llm.vocab": 3})
  with pytest.raises(KeyError, match="unknown model variant"):
    variants.get_config("nope")
  with pytest.raises(ValueError, match="head_features"):
    variants.get_config("test", {"llm.width": 64})  # the projection must match the LM width
  both = variants.get_config("test", {"llm.width": 64, "img.head_features": 64})
  assert both.llm.width == both.img.head_features == 64


def test_list_cli_prints_params_and_flops(capsys):
  variants.main(["--list", "--only=test,demo,siglip-b16,paligemma-3b-224"])
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 5
  row = {line.split()[0]: line.split() for line in lines[1:]}
  assert row["paligemma-3b-224"][2] == "2,923,335,408"
  assert row["siglip-b16"][2] == "203,155,970"
  gflops = {k: float(v[3]) for k, v in row.items()}
  assert 0 < gflops["test"] < gflops["demo"] < gflops["siglip-b16"] < gflops["paligemma-3b-224"]
  # PaliGemma-3B at 224: ~2 x params FLOPs per token over 256 + 64 tokens (ViT on 256 tokens).
  assert 1000 < gflops["paligemma-3b-224"] < 2500

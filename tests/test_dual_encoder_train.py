"""The dual-encoder trainer: caption sources, checkpoint + exact resume, ViT-st init, global-batch loss.

The `test-de` variant (ViT-st 2 frames x 16 px, text length 8) on the `test` demo world; runs go
through `viit_jax.train_dual_encoder.train`, i.e. the shared `loop.run` with real orbax checkpoints.
VIIT and frame-caption sources read a small auto-label output written with viit_jax.autolabel's own
writers (units + manifest), with K captions per clip. `data.process_split=indexed` (data/indexed.py):
resume decodes nothing before its step, processes decode disjoint rows that make the global batch,
clips without caption are rejected deterministically.
"""
import collections
import csv
import json
import math
import os
import pathlib
import re
import shutil
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import dual_encoder_demo
from data import caption_tasks
from data import indexed
from data import rejects as rj
from data import preprocessors as pp
from data import registry
from data import tfds_builders as tb
from viit_jax import caption_sets
from viit_jax import checkpoints
from viit_jax import import_weights
from viit_jax import loop
from viit_jax import runtime
from viit_jax import sharding
from viit_jax import train_dual_encoder as tde
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants

K = 3  # Captions per clip in the synthetic auto-label outputs.


def _de_model_config(config, vocab_size: int) -> de_lib.DualEncoderConfig:
  """The dual encoder the trainer builds for `config` and a tokenizer of `vocab_size` ids."""
  d, de = config.data, config.dual_encoder
  return runtime.model_config(
      config.model, de_lib.DualEncoderConfig, num_frames=d.num_frames, res=d.res,
      text_len=d.text_len, vocab_size=vocab_size,
      extra={"t_init": float(de.log_temperature_init), "b_init": float(de.bias_init)})


def _config(world, **kw):
  args = {"data.world_dir": world, "model.variant": "test-de", "model.dtype": "float32",
          "model.scan": "false", "data.res": 16, "data.num_frames": 2, "data.text_len": 8,
          "train.batch_size": 8, "train.log_every": 1, "train.checkpoint_every": 2,
          "train.eval_every": 0, "train.eval_batches": 1, "train.total_steps": 2,
          "optim.warmup_steps": 1, "optim.lr": 3e-3, "init_from": "''",
          "init_required": "false"}
  args.update(kw)
  return dual_encoder_demo.get_config(",".join(f"{k}={v}" for k, v in args.items()))


def _flat(tree) -> dict[str, np.ndarray]:
  return {"/".join(k): np.asarray(jax.device_get(v))
          for k, v in traverse_util.flatten_dict(tree).items()}


def _trains_two_steps(config, workdir: pathlib.Path) -> None:
  """Trains `config` for its 2 steps: a finite loss logged at each, the step-2 checkpoint saved."""
  result = loop.train(config, str(workdir), tde.build_task, log=lambda s: None)
  rows = _train_rows(workdir)
  assert [r["step"] for r in rows] == [1, 2]
  assert all(math.isfinite(r["train/loss"]) for r in rows)
  assert all(0 < r["train/mfu"] < 1 for r in rows)
  assert result.step == 2
  assert (pathlib.Path(checkpoints.checkpoint_dir(workdir)) / "2").is_dir()


def _train_rows(workdir) -> list[dict]:
  rows = [json.loads(l) for l in open(os.path.join(workdir, loop.METRICS_FILE))]
  return [r for r in rows if "train/loss" in r]


def _captions(mode: str, alt_text: str) -> list[str]:
  """K captions per clip that differ in their first word (texts are cut to 8 tokens)."""
  if mode == "viit":
    return [f"{w} {alt_text}" for w in ("first", "then", "after")[:K]]
  return [f"{w}; {alt_text}" for w in ("left", "right", "up")[:K]]


def _write_autolabel(out: pathlib.Path, world: pathlib.Path, mode: str) -> dict[str, list[str]]:
  """A finished auto-label version over the world's pool, in viit_jax.autolabel's format."""
  with open(world / "webvid" / "results_pool.csv") as f:
    pool = list(csv.DictReader(f))
  rows = []
  for i, r in enumerate(pool):
    caps = _captions(mode, r["name"])
    row = {"index": i, "clip_id": r["videoid"], "path": r["contentUrl"], "segment": None,
           "alt_text": r["name"], "captions": caps, "mean_logprobs": [-1.0] * K,
           "num_tokens": [5] * K}
    if mode == "frame_captioner":
      row["frame_captions"] = [c.split("; ") for c in caps]
    rows.append(row)
  units = caption_sets.Units(out)
  units.write(0, rows, [], {"unit": 0, "clips": len(rows)})
  settings = {"version": out.name, "mode": mode,
              "corpus": {"format": "demo", "video_root": str(world / "webvid"),
                         "num_clips": len(rows), "num_units": 1}}
  assert caption_sets.finalize(units, 1, settings, rj.Rejects("pool")) is not None
  return {r["clip_id"]: r["captions"] for r in rows}


@pytest.fixture(scope="module")
def autolabel_dirs(demo_world, tmp_path_factory):
  root = tmp_path_factory.mktemp("autolabel")
  captions = {"viit": _write_autolabel(root / "v1", demo_world, "viit"),
              "frame_captions": _write_autolabel(root / "frames", demo_world, "frame_captioner")}
  return {"viit": root / "v1", "frame_captions": root / "frames", "captions": captions}


def test_alt_text_checkpoints_and_resumes_exactly(demo_world, tmp_path):
  """4 steps with checkpoints at 2 and 4; dropping step 4 and rerunning resumes at 2 and ends on
  the same parameters (data order, caption draws and crops are functions of the step). The first
  run also logs MFU and writes a profile of steps 2-3."""
  config = _config(demo_world, **{"train.total_steps": 4, "dual_encoder.caption_source": "alt_text",
                                  "train.profile_steps": "2:3"})
  work = tmp_path / "de"
  first_logs = []
  first = loop.train(config, str(work), tde.build_task, log=first_logs.append)
  assert first.source == "fresh initialisation"
  assert any("model FLOPs per step" in line and "measured 1024^2" in line for line in first_logs)
  assert any(re.search(r"\| MFU \d+\.\d% \|", line) for line in first_logs), first_logs
  assert list((work / "profile").rglob("*.xplane.pb")), "no profiler trace of steps 2-3"
  assert any("profile of steps 2-3 written" in line for line in first_logs)
  # Then the trace's slowest XLA ops and the model code they came from (viit_jax.op_profile).
  ops = next(line for line in first_logs if line.startswith("ops: "))
  top, sources = ops.split("slowest sources (layers summed):\n")
  assert re.search(r"slowest ops:\n +\d+\.\d+ ms +\d+\.\d% ", top), ops
  assert any(not l.endswith("(made by XLA)") for l in sources.splitlines()), ops
  ckpt_dir = pathlib.Path(checkpoints.checkpoint_dir(work))
  assert sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) == [2, 4]
  rows = _train_rows(work)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert all(math.isfinite(r["train/loss"]) for r in rows)
  assert all(0 < r["train/mfu"] < 1 for r in rows)
  # InfoNCE of a near-random model on 8 pairs is close to log(8).
  assert abs(rows[0]["train/loss"] - math.log(8)) < 0.5
  evals = [json.loads(l) for l in open(work / loop.METRICS_FILE)]
  evals = [r for r in evals if "eval/retrieval/t2v/R@1" in r]
  assert evals and evals[-1]["step"] == 4 and evals[-1]["eval/retrieval/num_texts"] == 8
  params_first = _flat(first.state["params"])

  shutil.rmtree(ckpt_dir / "4")
  logs = []
  second = loop.train(config, str(work), tde.build_task, log=logs.append)
  assert second.source.startswith("resumed from own checkpoint step 2"), second.source
  params_second = _flat(second.state["params"])
  assert params_first.keys() == params_second.keys()
  for k in params_first:
    np.testing.assert_allclose(params_second[k], params_first[k], rtol=1e-6, atol=1e-7, err_msg=k)
  again = _train_rows(work)[-2:]
  for a, b in zip(again, rows[2:]):
    assert a["step"] == b["step"]
    assert abs(a["train/loss"] - b["train/loss"]) < 1e-5


@pytest.mark.parametrize("source", ["smit", "viit", "frame_captions", "alt_text:1+viit:1"])
def test_caption_sources_train(source, demo_world, autolabel_dirs, tmp_path):
  config = _config(demo_world, **{
      "dual_encoder.caption_source": source, "data.eval_task": "''",
      "dual_encoder.viit_captions_dir": autolabel_dirs["viit"],
      "dual_encoder.frame_captions_dir": autolabel_dirs["frame_captions"],
      "dual_encoder.loss": "sigmoid" if source == "smit" else "softmax",
      # The paper's two recipes: AdamW (the demo config's) and SGD with momentum + cosine.
      "optim.name": "sgd" if source == "frame_captions" else "adamw", "optim.momentum": 0.9})
  _trains_two_steps(config, tmp_path / "de")


def test_autolabel_batches_draw_each_clips_captions(demo_world, autolabel_dirs):
  """Every text of a VIIT batch is one of the clip captions (token-exact), several of the K
  captions get drawn, and batch s is the same when the stream starts at s (resume)."""
  config = _config(demo_world, **{"dual_encoder.caption_source": "viit",
                                  "dual_encoder.viit_captions_dir": autolabel_dirs["viit"]})
  vocab = registry.register_for_training(config.data)
  path = vocab.sentencepiece_model_file
  sources = caption_tasks.caption_sources(config, path)
  assert [(s.name, s.captions_field) for s in sources] == [("viit", "captions")]
  all_caps = [c for caps in autolabel_dirs["captions"]["viit"].values() for c in caps]
  ids = {tuple(t): c for t, c in zip(pp.text_tokens(vocab, all_caps, 8).tolist(), all_caps)}
  data_fn = tde.make_data_fn(config, vocab, sources)
  it = data_fn(0)
  batches = [next(it) for _ in range(4)]
  drawn = set()
  for b in batches:
    assert b["frames"].shape == (8, 2, 16, 16, 3) and b["frames"].dtype == np.uint8
    assert b["tokens"].shape == (8, 8)
    for row in b["tokens"].tolist():
      assert tuple(row) in ids, row
      drawn.add(ids[tuple(row)].split(" ", 1)[0])
  assert len(drawn) >= 2  # Not always caption 0.
  resumed = next(data_fn(3))
  np.testing.assert_array_equal(resumed["frames"], batches[3]["frames"])
  np.testing.assert_array_equal(resumed["tokens"], batches[3]["tokens"])


def test_stills_source_gives_static_clips_of_image_captions(demo_world):
  """The stills source (image CLIP pre-training, or images mixed into video-text training): each
  image becomes T equal frames, and every text is one of the stills' captions (token-exact)."""
  config = _config(demo_world, **{"dual_encoder.caption_source": "stills"})
  vocab = registry.register_for_training(config.data)
  path = vocab.sentencepiece_model_file
  sources = caption_tasks.caption_sources(config, path)
  assert [(s.name, s.key_field, s.captions_field) for s in sources] == [
      ("stills", "image_id", "references")]
  with open(demo_world / "stills" / "captions_train.json") as f:
    caps = [a["caption"] for a in json.load(f)["annotations"]]
  ids = {tuple(t) for t in pp.text_tokens(vocab, caps, 8).tolist()}
  batch = next(tde.make_data_fn(config, vocab, sources)(0))
  assert batch["frames"].shape == (8, 2, 16, 16, 3) and batch["frames"].dtype == np.uint8
  np.testing.assert_array_equal(batch["frames"][:, 0], batch["frames"][:, 1])
  assert batch["frames"].std() > 0  # Not a blank canvas.
  assert all(tuple(row) in ids for row in batch["tokens"].tolist())


def test_vit_st_init_from_image_vit_checkpoint(demo_world, tmp_path):
  """init_from a VLM workdir: ViT-st's img/ trunk = the image ViT's (renaming by the assignment
  map, i.e. vit_to_vit_st), PE_t new; the MAP head, head, text tower, t, b fresh."""
  vlm_cfg = variants.get_config("test", {"img.scan": False, "llm.scan": False})
  vlm_params = nn.unbox(variants.init_fn(vlm_cfg)(jax.random.PRNGKey(7))["params"])
  ck = checkpoints.Checkpointer(tmp_path / "vlm", save_every=1, keep=1, async_save=False)
  ck.save(3, {"step": jnp.int32(3), "params": vlm_params}, data={"step": 3},
          meta={"experiment": "demo_phase1", "variant": "test", "config": {}})
  ck.close()
  config = _config(demo_world, **{"init_from": tmp_path / "vlm", "init_required": "true",
                                  "train.total_steps": 0, "data.eval_task": "''"})
  result = loop.train(config, str(tmp_path / "de"), tde.build_task, log=lambda s: None)
  assert "init_from" in result.source and "loaded" in result.source
  got = _flat(result.state["params"]["img"])
  image_vit = {k: v for k, v in vlm_params["img"].items() if k != "head"}
  expected = _flat(import_weights.vit_to_vit_st(image_vit, 2, jax.random.PRNGKey(0)))
  fresh = {k for k in got if k.startswith(("MAPHead_0/", "head/"))}
  assert set(got) == set(expected) | fresh and fresh
  for k, v in expected.items():
    if k != "temporal_pos_embedding":
      np.testing.assert_array_equal(got[k], v, err_msg=k)
  pe_t = got["temporal_pos_embedding"]
  assert pe_t.shape == expected["temporal_pos_embedding"].shape == (1, 2, 32)
  assert 0.08 < pe_t.std() < 0.35  # N(0, 1/D), D = 32: std 0.18.
  # The text tower is not the VLM's: same init as a fresh dual encoder of this seed.
  fresh_de = _flat(nn.unbox(variants.init_fn(_de_model_config(config, 244))(
      jax.random.PRNGKey(config.seed))["params"]))
  for k, v in _flat(result.state["params"]["txt"]).items():
    np.testing.assert_allclose(v, fresh_de["txt/" + k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("loss", de_lib.LOSSES)
def test_global_batch_loss_8_devices_equals_1_device(loss):
  """jit over a batch sharded on data=8 scores each example against all 16 of the global batch:
  the loss and gradients equal the single-device ones on the same batch (and differ from the mean
  of per-shard losses, which is what local-only negatives would give)."""
  cfg = variants.get_config("test-de", {"img.dtype": "float32", "txt.dtype": "float32",
                                       "img.scan": False, "txt.scan": False})
  model = de_lib.DualEncoder(cfg)
  params = nn.unbox(variants.init_fn(cfg)(jax.random.PRNGKey(0))["params"])
  params["b"] = jnp.zeros_like(params["b"])  # SigLIP's -10 would hide the negatives' share.
  rng = np.random.default_rng(0)
  batch = {"frames": rng.integers(0, 256, (16, 2, 16, 16, 3), dtype=np.uint8),
           "tokens": rng.integers(2, 256, (16, 8)).astype(np.int32)}
  batch["tokens"][:, -1] = 1

  def loss_and_grad(p, b):
    def f(p):
      total, weight, _ = de_lib.batch_loss(p, b, None, model=model, loss=loss)
      return total / weight
    return jax.value_and_grad(f)(p)

  out = {}
  for n in (1, 8):
    mesh = sharding.make_mesh({"data": n, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:n])
    with sharding.use_mesh(mesh):
      g_batch = sharding.host_local_to_global(batch, mesh)
      assert len(g_batch["frames"].sharding.device_set) == n
      p = jax.device_put(params, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
      value, grads = jax.jit(loss_and_grad)(p, g_batch)
      out[n] = (float(value), _flat(grads))
  assert abs(out[8][0] - out[1][0]) < 1e-5, (out[8][0], out[1][0])
  for k, g in out[1][1].items():
    np.testing.assert_allclose(out[8][1][k], g, atol=1e-5, rtol=1e-4, err_msg=k)
  shard_loss = jax.jit(lambda p, b: loss_and_grad(p, b)[0])
  local = np.mean([float(shard_loss(params, {k: v[i:i + 2] for k, v in batch.items()}))
                   for i in range(0, 16, 2)])
  assert abs(local - out[1][0]) > 1e-2


def test_paper_setting_config_builds_the_siglip_video_model():
  """configs/dual_encoder_videocc.py: ViT-st B/16 (4 x 224 px) + SigLIP text tower; its parameter
  count is SigLIP B/16's (docs/checkpoints.md) plus PE_t [4, 768] (shapes only, nothing allocated)."""
  from configs import dual_encoder_videocc
  config = dual_encoder_videocc.get_config(
      "dual_encoder.viit_captions_dir=/data/plus/v1,data.vocab_path=/ckpt/spm.model")
  assert (config.optim.name, config.optim.weight_decay, config.train.batch_size) == (
      "adamw", 0.01, 1024)
  assert (config.dual_encoder.scale_jitter_min, config.dual_encoder.scale_jitter_max) == (
      0.9, 1.33)
  cfg = _de_model_config(config, 32_000)
  assert cfg.img.temporal and cfg.img.num_frames == 4 and cfg.img.image_size == 224
  assert cfg.txt.seq_len == 64
  assert variants.count_params(cfg) == 203_155_970 + 4 * 768
  assert config.data.process_split == "indexed"  # each host decodes only its rows (pod scale)


# ------------------------------------------------------------------------------------------------
# data.process_split=indexed.


@pytest.fixture
def decode_calls(monkeypatch) -> dict[int, list[tuple[str, int]]]:
  """Every IndexedItems.decode call, (task, item) grouped by the IndexedItems object: each data_fn
  call builds its own, so a test tells runs apart even while an abandoned run's tf.data threads
  keep filling their buffers."""
  calls: dict[int, list[tuple[str, int]]] = collections.defaultdict(list)
  decode = indexed.IndexedItems.decode

  def counting(self, i, seed):
    calls[id(self)].append((self.name, i))
    return decode(self, i, seed)

  monkeypatch.setattr(indexed.IndexedItems, "decode", counting)
  return calls


def _indexed_run(config, steps: int, start: int, calls, *, process_index: int = 0,
                 process_count: int = 1) -> tuple[list[dict], list[tuple[str, int]]]:
  """`steps` batches of make_data_fn(process_index of process_count) from `start`, and the decode
  calls this run made (counted once the read-ahead has settled)."""
  vocab = registry.register_for_training(config.data)
  sources = caption_tasks.caption_sources(config, vocab.sentencepiece_model_file)
  before = set(calls)
  it = tde.make_data_fn(config, vocab, sources, process_index=process_index,
                        process_count=process_count)(start)
  batches = [next(it) for _ in range(steps)]
  time.sleep(1.0)  # Let the abandoned iterator's read-ahead fill its bounded buffers.
  return batches, [c for k in calls if k not in before for c in calls[k]]


def _first_candidates(stream: indexed.Stream, positions) -> list[tuple[str, int]]:
  """(task name, item) of each global position's first candidate."""
  out = []
  for k in positions:
    t, i = next(stream.order.candidates(k))
    out.append((stream.tasks[t].name, i))
  return out


def test_indexed_resume_decodes_only_from_its_step(demo_world, decode_calls):
  """A mixture (alt_text:1+smit:1, 24 + 24 clips, batch 8): resuming at step 50 (epoch ~16) gives
  the batches 50, 51 of a run from step 0 and decodes only the clips of positions 400, 401, ...
  (the batches taken plus the bounded read-ahead), not the 400 examples before them."""
  n = 50
  kw = {"dual_encoder.caption_source": "alt_text:1+smit:1", "data.process_split": "indexed"}
  # The reference run caches decoded clips (the demo config's default; examples are a function of
  # (seed, item), so the cache changes none); the resumed one does not, so it counts every decode.
  full, _ = _indexed_run(_config(demo_world, **kw), n + 2, 0, decode_calls)
  config = _config(demo_world, **kw, **{"data.cache_decoded": "false"})
  resumed, calls = _indexed_run(config, 2, n, decode_calls)
  for got, want in zip(resumed, full[n:]):
    for k in tde.BATCH_KEYS:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  b = 8
  # 2 batches taken + read-ahead (tf.data's prefetch / parallel map, the stream's 2 batches).
  assert 2 * b <= len(calls) <= 8 * b, len(calls)
  stream = tde.caption_stream(config, caption_tasks.caption_sources(config, registry.register_for_training(
      config.data).sentencepiece_model_file), process_index=0, process_count=1)
  # The decodes are exactly the clips of positions n * B, n * B + 1, ... (no clip is rejected).
  want = _first_candidates(stream, range(n * b, n * b + len(calls)))
  assert collections.Counter(calls) == collections.Counter(want)


def test_indexed_processes_decode_disjoint_rows_of_the_global_batch(demo_world, decode_calls):
  """The stills (60 images, batch 4, 3 steps): processes 0 and 1 of 2 give rows whose
  concatenation is the 1-process batch (draws keyed by clip and step, not by process), each
  decodes only the clips of its own positions, and none decodes a clip of the other's (all inside
  the first epoch)."""
  config = _config(demo_world, **{"dual_encoder.caption_source": "stills",
                                  "data.process_split": "indexed", "train.batch_size": 4})
  steps = 3
  one, _ = _indexed_run(config, steps, 0, decode_calls)
  runs = [_indexed_run(config, steps, 0, decode_calls, process_index=p, process_count=2)
          for p in range(2)]
  for s in range(steps):
    assert runs[0][0][s]["frames"].shape == (2, 2, 16, 16, 3)
    for k in tde.BATCH_KEYS:
      np.testing.assert_array_equal(
          np.concatenate([runs[0][0][s][k], runs[1][0][s][k]]), one[s][k], err_msg=f"{s} {k}")
  np.testing.assert_array_equal(one[0]["frames"][:, 0], one[0]["frames"][:, 1])  # static clips
  vocab = registry.register_for_training(config.data)
  sources = caption_tasks.caption_sources(config, vocab.sentencepiece_model_file)
  decoded = []
  for p, (_, calls) in enumerate(runs):
    stream = tde.caption_stream(config, sources, process_index=p, process_count=2)
    mine = [k for s in range(30) for k in stream.positions(s)]
    assert max(mine[:len(calls)]) < len(stream.tasks[0])  # all read inside the first epoch
    assert 2 * steps <= len(calls) <= 30 and len(set(calls)) == len(calls), calls
    assert collections.Counter(calls) == collections.Counter(
        _first_candidates(stream, mine[:len(calls)]))
    decoded.append(set(calls))
  assert not decoded[0] & decoded[1]


def test_indexed_clips_without_caption_are_rejected_deterministically(demo_world, decode_calls):
  """Pool clips with a blank alt-text: never decoded, counted once each as no_caption in the
  task's rejects, their positions filled by the next candidate; 2 processes' rows still make the
  1-process stream."""
  blank = {1, 4, 7, 10, 13, 16, 19, 22}
  sampling = tb.Sampling(2, 1.0, 16, "uniform")

  def items(rejects: rj.Rejects) -> tde.CaptionItems:
    def items_fn():
      for j, item in enumerate(tb.webvid_items(demo_world / "webvid", "results_pool.csv",
                                               rejects)):
        fields = {**item.fields, "alt_text": "  " if j in blank else item.fields["alt_text"]}
        yield tb.ClipItem(item.key, item.path, fields)

    source = caption_tasks.CaptionSource("alt_text", "demo_pool", "train", "clip_id", "references", 1.0,
                               "alt_text")
    return tde.CaptionItems(indexed.IndexedItems("pool", items_fn, sampling, rejects), source, 2)

  def keys(process_index: int, process_count: int, n: int) -> tuple[list[str], indexed.Stream]:
    stream = indexed.Stream([items(rj.Rejects("pool"))], [1.0], seed=0, global_batch=4,
                            process_index=process_index, process_count=process_count)
    it = stream.examples(0)
    return [next(it)[1]["key"] for _ in range(n)], stream

  one, stream = keys(0, 1, 24)  # One epoch of 24 positions.
  calls = [i for c in decode_calls.values() for _, i in c]
  assert not blank & set(calls)  # A clip without caption costs no decode.
  names = {f"alt_text:{item.key}" for j, item in enumerate(stream.tasks[0].inner.items)
           if j in blank}
  assert not names & set(one) and len(one) == 24
  rejects = stream.tasks[0].rejects
  hit = {stream.tasks[0].describe(i) for _, i in _first_candidates(stream, range(24))
         if i in blank}
  assert hit and rejects.counts == {tde.NO_CAPTION: len(hit)}, rejects.counts
  assert stream.stats.substituted >= len(hit)
  halves = [keys(p, 2, 12)[0] for p in range(2)]
  assert [k for s in range(6) for k in halves[0][2 * s:2 * s + 2] + halves[1][2 * s:2 * s + 2]
          ] == one


def test_indexed_training_run(demo_world, autolabel_dirs, tmp_path):
  """A short run of a mixture with an auto-label source through data.process_split=indexed."""
  config = _config(demo_world, **{
      "dual_encoder.caption_source": "alt_text:1+viit:1", "data.process_split": "indexed",
      "data.eval_task": "''", "data.decode_workers": 2,
      "dual_encoder.viit_captions_dir": autolabel_dirs["viit"]})
  _trains_two_steps(config, tmp_path / "de")

"""The demo pipeline (`make demo`): every phase's size on the built-in demo world.

Run (from the repository root; what `make demo` runs):
  python -m viit_jax.pipeline --config=configs/demo_pipeline.py:seed=0 --workdir=runs/demo
The reduced run of the same pipeline (test-preset world, a few steps per phase, tiny evaluation;
tests/test_pipeline.py):
  python -m viit_jax.pipeline --config=configs/demo_pipeline.py:preset=test --workdir=/tmp/p
(`quick=true` is the same as `preset=test`.)

Arguments override fields, e.g. `seed=1,phase2.steps=500,phase2.args='optim.lr=2e-3'`. Each
phase's `args` are extra `key=value` overrides handed verbatim to that entry point's own config
(quote them when they hold commas); the pipeline itself sets the world, the seed, the step counts,
batch sizes and the workdirs that chain the phases (viit_jax/pipeline.py).
"""
import ml_collections

from viit_jax import config_lib

PRESETS = ("demo", "test")


def _demo() -> ml_collections.ConfigDict:
  """Every field with its `make demo` value (sized for <= 20 minutes on 2 free CPU cores)."""
  c = ml_collections.ConfigDict()
  c.preset = "demo"  # demo | test (the reduced run); picks the defaults below.
  c.seed = 0  # The world, every trainer, synthesis and sampling.
  c.python = ""  # Interpreter for the phases; '' = the pipeline's own.
  c.compile_cache = ".jax_cache"  # Persistent JAX compile cache for every phase ('' = off).
  # Phases run at once, each as soon as the phases it reads are done (viit_jax/demo/phases.py);
  # 1 = one after another. Results do not depend on it (docs/speed.md, "Two phases at a time").
  c.jobs = 2

  c.world = ml_collections.ConfigDict()
  c.world.preset = "demo"  # data.demo_world preset.
  # '' = generate the world into <workdir>/world (seeded); else an existing world directory to use
  # as it is (no world phase; its own seed and preset apply).
  c.world.dir = ""

  # The image CLIP the dual encoders start from (0 steps = none; then init_from_phase must name a
  # VLM phase). 500 steps = 16 epochs of the 2,000 stills:
  # docs/demo_results.md#image-clip-500-steps.
  c.image_clip = ml_collections.ConfigDict()
  c.image_clip.steps = 500
  c.image_clip.batch_size = 64
  c.image_clip.args = ""  # Extra overrides of configs/dual_encoder_demo.py.

  # Steps and global batch of the VLM phases; why phase 2 runs 600 steps:
  # docs/demo_results.md#phase-2-steps.
  for name, steps, batch in (("phase0", 600, 32), ("phase1", 300, 16), ("phase2", 600, 16)):
    c[name] = ml_collections.ConfigDict()
    c[name].steps = steps
    c[name].batch_size = batch
    c[name].args = ""  # Extra overrides of configs/demo_<name>.py.

  c.synthesize = ml_collections.ConfigDict()
  c.synthesize.args = ""  # Extra overrides of configs/synthesize_demo.py.

  c.autolabel = ml_collections.ConfigDict()
  c.autolabel.limit = 0  # Pool clips to caption (0 = all).
  # Captions per clip and nucleus mass, for both captioners (the paper: nucleus sampling, several
  # captions per clip): docs/demo_results.md#auto-labeling-captions-per-clip-and-nucleus-mass.
  c.autolabel.num_samples = 4
  c.autolabel.top_p = 0.9
  c.autolabel.batch_size = 32
  c.autolabel.args = ""  # Extra overrides of configs/autolabel_demo.py (both modes).
  c.autolabel.frame_args = ""  # ... of the frame-captioner run only.

  c.dual_encoder = ml_collections.ConfigDict()
  # 150 steps = 8 epochs of the 1,200-clip pool: docs/demo_results.md#dual-encoders-150-steps.
  c.dual_encoder.steps = 150
  c.dual_encoder.batch_size = 64
  # Where both towers start: image_clip (the paper's), or phase0 / phase1 (a VLM's image encoder
  # for the video tower only; the text tower then starts from scratch).
  c.dual_encoder.init_from_phase = "image_clip"
  c.dual_encoder.args = ""  # Extra overrides of configs/dual_encoder_demo.py.

  # Caption filtering (beyond the paper, viit_jax.filter_captions): de_viit keeps each clip's
  # top_k VIIT captions with cosine >= min_score, and a dual encoder trains on them (top_k=0 and
  # min_score=-1: no filtering phases).
  c.filter = ml_collections.ConfigDict()
  c.filter.top_k = 2
  c.filter.min_score = -1.0
  c.filter.args = ""  # Extra overrides of configs/filter_captions.py.

  c.evaluate = ml_collections.ConfigDict()
  c.evaluate.num_frames = 8  # VLMs are evaluated on 8 frames (the image model too).
  c.evaluate.max_examples = 0  # Held-out examples per VLM benchmark (0 = all).
  # Dual-encoder benchmarks: the 1k-A-style pairs, every sentence of the same clips (the full
  # protocol), Kinetics-style zero-shot classification.
  c.evaluate.de_tasks = "msrvtt_retrieval+msrvtt_full_retrieval+kinetics_zero_shot"
  c.evaluate.de_max_examples = 0  # Per dual-encoder benchmark (0 = all).
  c.evaluate.batch_size = 32
  # pycocoevalcap scores (METEOR, which starts a JVM with a paraphrase table, is left out).
  c.evaluate.caption_metrics = "('BLEU-4', 'ROUGE-L', 'CIDEr')"
  c.evaluate.args = ""  # Extra overrides of configs/evaluate_demo.py.
  return c


def _test(c: ml_collections.ConfigDict) -> None:
  """The reduced run: test-preset world, a few steps per phase, a tiny evaluation."""
  c.preset = "test"
  c.world.preset = "test"
  for name in ("phase0", "phase1", "phase2"):
    c[name].steps = 4
    c[name].batch_size = 8
    c[name].args = ("train.log_every=2,train.checkpoint_every=2,train.eval_every=0,"
                    "train.eval_batches=1,train.decode_samples=1,train.max_decode_len=8,"
                    "train.eval_metric_examples=4")
  c.autolabel.limit = 16
  c.autolabel.num_samples = 2
  c.autolabel.batch_size = 8
  c.autolabel.args = "unit_size=8,decode.max_decode_len=8"
  c.image_clip.steps = 4
  c.image_clip.batch_size = 8
  c.image_clip.args = "train.log_every=2,train.eval_every=0,train.eval_batches=1"
  c.dual_encoder.steps = 4
  c.dual_encoder.batch_size = 8
  c.dual_encoder.args = "train.log_every=2,train.eval_every=0,train.eval_batches=1"
  c.filter.top_k = 1
  c.evaluate.max_examples = 8
  c.evaluate.de_max_examples = 16
  c.evaluate.batch_size = 8


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  overrides = config_lib.parse_arg(arg)
  preset = overrides.pop("preset", "demo")
  quick = overrides.pop("quick", "false").lower() in ("1", "true", "yes", "y", "on")
  if quick:
    preset = "test"
  if preset not in PRESETS:
    raise config_lib.ConfigError(f"preset must be one of {PRESETS}, got {preset!r}")
  c = _demo()
  if preset == "test":
    _test(c)
  c.lock()
  c = config_lib.apply_overrides(c, overrides)
  if c.jobs < 1:
    raise config_lib.ConfigError(f"jobs must be >= 1, got {c.jobs}")
  return c

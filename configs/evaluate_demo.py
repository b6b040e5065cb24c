"""Phase 5: zero-shot evaluation of a VLM or dual-encoder checkpoint on the demo world's test sets.

Every task is a seqio Task with its metric_fns, run by seqio.Evaluator (viit_jax/evaluate.py).
`kind=vlm` (greedy decoding):
  msrvtt_caption  MSR-VTT captioning: CIDEr(-D), BLEU-4, METEOR, ROUGE-L (pycocoevalcap)
  msrvtt_qa       MSR-VTT-QA exact match (the world's msrvtt/MSRVTT-QA/test_qa.json)
  anet_caption    ActivityNet Captions CIDEr, one caption per segment (activitynet/val_1.json)
  anet_qa         ActivityNet-QA exact match (activitynet/test_{q,a}.json)
  nextqa_oe       NExT-OE WUPS@0 / WUPS@0.9 overall, per type and per group (official algorithm)
  smit_caption    S-MiT CIDEr (the paper's ablation metric; smit/val.csv)
`kind=dual_encoder`:
  msrvtt_retrieval   1k-A text->video and video->text R@1/5/10, MedR, MeanR (`eval.tie_policy`)
  msrvtt_full_retrieval  the same over every sentence of the test clips (the full protocol)
  vatex_retrieval    the same over VATEX clips, every English caption a query
  kinetics_zero_shot zero-shot classification top-1 / top-5 (prompt templates)

Run (from the repository root):
  python -m viit_jax.evaluate \
      --config=configs/evaluate_demo.py:kind=vlm,checkpoint=runs/demo/phase2 \
      --workdir=runs/demo/eval_phase2
  python -m viit_jax.evaluate \
      --config=configs/evaluate_demo.py:kind=vlm,checkpoint=runs/demo/phase0,data.num_frames=8 \
      --workdir=runs/demo/eval_phase0_8f      # the image model on 8 frames
  python -m viit_jax.evaluate --config=configs/evaluate_demo.py:kind=dual_encoder,\
checkpoint=runs/demo/de_viit --workdir=runs/demo/eval_de_viit
Writes <workdir>/metrics.json, <workdir>/metrics.md and <workdir>/predictions/<task>.jsonl.
"""
import ml_collections

from viit_jax import config_lib


def base_config() -> ml_collections.ConfigDict:
  """Every evaluation field with its default (not locked; get_config locks)."""
  c = ml_collections.ConfigDict()
  c.experiment = "evaluate"
  c.kind = "vlm"  # vlm | dual_encoder
  c.checkpoint = ""  # A trainer workdir (its latest checkpoint, or checkpoint_step) or an import.
  c.checkpoint_step = -1

  # Model: '' / 0 = as recorded in the checkpoint's meta (an import without a config needs them).
  c.model = ml_collections.ConfigDict()
  c.model.variant = ""
  c.model.vocab_size = 0
  c.model.dtype = ""  # Compute dtype; '' = the checkpoint's model.dtype.

  # Mesh over this process's devices (each process runs the model on its share; process 0 writes).
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1
  c.mesh.fsdp = 1
  c.mesh.tensor = 1

  # Data: 0 / '' = the checkpoint's (num_frames: e.g. an image model evaluated on 8 frames).
  c.data = ml_collections.ConfigDict()
  c.data.source = "demo"  # demo | real (public formats in data.dirs)
  c.data.world_dir = "runs/demo/world"
  c.data.vocab_path = ""  # '' = the checkpoint's, else <world_dir>/spm/demo.model (demo).
  c.data.dirs = ml_collections.ConfigDict()
  for name in ("msrvtt", "nextqa", "activitynet", "vatex", "smit", "kinetics"):
    c.data.dirs[name] = ""
  c.data.tfds_data_dir = ""
  c.data.num_frames = 0
  c.data.fps = 0.0
  c.data.res = 0
  c.data.text_len = 0  # VLM: prompt length; dual encoder: text tower length (its pos. embedding).
  c.data.decode_workers = 1

  c.eval = ml_collections.ConfigDict()
  c.eval.tasks = ""  # '+'-joined names; '' = every task of the kind (see the module docstring).
  c.eval.max_examples = 0  # Per task, the first N examples (0 = all).
  c.eval.batch_size = 16  # Rows per batch (a multiple of this process's devices).
  c.eval.max_decode_len = 24
  c.eval.seed = 0
  c.eval.caption_split = "test"
  c.eval.qa_split = "test"
  c.eval.retrieval_split = "test"
  c.eval.anet_caption_split = "val_1"
  c.eval.anet_qa_split = "test"
  c.eval.vatex_split = "test"
  c.eval.smit_split = "val"
  c.eval.kinetics_split = "test"
  # Keep decoded eval clips in host memory between seqio.Evaluator's passes (False: decode again
  # on each pass, for sets whose frames do not fit in memory, e.g. Kinetics-600 val).
  c.eval.memory_cache = True
  c.eval.caption_metrics = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
  # expected (random tie-breaking, the expectation) | optimistic | pessimistic; "average" = expected
  # (the old name). viit_jax/metrics/retrieval.py.
  c.eval.tie_policy = "expected"
  c.eval.zero_shot_templates = ()  # () = viit_jax.metrics.classification.DEFAULT_TEMPLATES
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base_config()
  c.experiment = "evaluate_demo"
  c.checkpoint = "runs/demo/phase2"
  # The demo's "Kinetics" classes are motions of shapes ('moving left', 'growing', ...): templates
  # in the words of its captions instead of CLIP's "a video of a person {}".
  c.eval.zero_shot_templates = ("a video of a shape {}.", "a shape {}.", "an object {}.",
                                "a video of {}.")
  return config_lib.finalize(c, arg)

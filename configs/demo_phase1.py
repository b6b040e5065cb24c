"""Demo phase 1: visual adaptation on S-MiT-style spoken captions; the LM is frozen.

8 frames at 2 fps (the whole 4 s demo clip), 32 px; initialised from phase 0's workdir. Only `img/`
parameters train (no gradient computation and no optimizer state for `llm/`).

Run (from the repository root, after demo_phase0):
  python -m viit_jax.train --config=configs/demo_phase1.py --workdir=runs/demo/phase1
"""
import ml_collections

from configs import base
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base.get_config()
  c.experiment = "demo_phase1"
  c.model.variant = "demo"
  c.data.task = "demo_smit_caption"
  c.data.eval_task = "demo_smit_caption"
  c.data.eval_split = "val"
  c.data.num_frames = 8
  c.data.fps = 2.0
  c.data.res = 32
  c.data.cache_decoded = True  # The demo world fits in memory: decode each clip once.
  c.data.text_len = 48
  c.train.batch_size = 16
  c.train.total_steps = 300
  c.train.log_every = 25
  c.train.checkpoint_every = 100
  c.train.eval_every = 100
  c.train.eval_batches = 4
  c.train.eval_metric_examples = 16  # CIDEr / WUPS of the eval task at each eval.
  # The paper's peak LR. Higher rates pull the ViT away from what the frozen LM reads:
  # docs/demo_results.md#phase-1-learning-rate.
  c.optim.lr = 1e-4
  c.optim.warmup_steps = 30
  c.optim.freeze = "llm/.*"
  c.init_from = "runs/demo/phase0"
  c.init_required = True
  return config_lib.finalize(c, arg)

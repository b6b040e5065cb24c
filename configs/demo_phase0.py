"""Demo phase 0: image-text pre-training on the demo world's stills (T=1), the WebLI stand-in.

The demo has no public image-language base model, so phase 0 trains the `demo` VLM from scratch on
COCO-format stills captions; phases 1 and 2 then adapt it to video as the paper adapts PaLI-3.
Deviation from the paper's fine-tuning recipe: from-scratch training of a tiny model needs a larger
peak LR (3e-3) than the paper's 1e-4 (docs/demo_results.md#phase-0-learning-rate-3e-3).

Run (from the repository root):
  python -m data.demo_world --out=runs/demo/world --preset=demo
  python -m viit_jax.train --config=configs/demo_phase0.py --workdir=runs/demo/phase0
Arguments override fields, e.g. `configs/demo_phase0.py:train.total_steps=50,data.world_dir=/tmp/w`.
"""
import ml_collections

from configs import base
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base.get_config()
  c.experiment = "demo_phase0"
  c.model.variant = "demo"
  c.data.task = "demo_stills_caption"
  c.data.eval_task = "demo_stills_caption"
  c.data.eval_split = "val"
  c.data.num_frames = 1
  c.data.res = 32
  c.data.cache_decoded = True  # The demo world fits in memory: decode each clip once.
  c.data.text_len = 32
  c.train.batch_size = 32
  c.train.total_steps = 600
  c.train.log_every = 25
  c.train.checkpoint_every = 200
  c.train.eval_every = 200
  c.train.eval_batches = 4
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 50
  return config_lib.finalize(c, arg)

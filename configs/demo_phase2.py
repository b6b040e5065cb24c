"""Demo phase 2: video instruction tuning (VIIT) on the synthesized mixture; vision is frozen.

Trains on `demo_viit_mix` (VidLN reasoning QA + S-MiT captions + VidLN short QA), registered from
the instruction-synthesis output in `data.viit_dir`; initialised from phase 1's workdir. Only `llm/`
parameters train. The held-out loss and greedy samples are on the demo NExT-QA (open-ended) val set.

Run (from the repository root, after demo_phase1 and the instruction synthesis):
  python -m viit_jax.synthesize --config=configs/synthesize_demo.py:world_dir=runs/demo/world \
      --workdir=runs/demo/viit
  python -m viit_jax.train --config=configs/demo_phase2.py --workdir=runs/demo/phase2
"""
import ml_collections

from configs import base
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base.get_config()
  c.experiment = "demo_phase2"
  c.model.variant = "demo"
  c.data.viit_dir = "runs/demo/viit"
  c.data.task = "demo_viit_mix"
  # Captions are 60% of the mixture, reasoning QA 20%, short QA 20% (the paper gives no rates):
  # docs/demo_results.md#phase-2-mixture-rates.
  c.data.viit_rates.captions = 3.0
  c.data.eval_task = "demo_nextqa_oe"
  c.data.eval_split = "val"
  c.data.num_frames = 8
  c.data.fps = 2.0
  c.data.res = 32
  c.data.cache_decoded = True  # The demo world fits in memory: decode each clip once.
  c.data.text_len = 64
  c.train.batch_size = 16
  c.train.total_steps = 600  # docs/demo_results.md#phase-2-steps
  c.train.log_every = 25
  c.train.checkpoint_every = 100
  c.train.eval_every = 100
  c.train.eval_batches = 4
  c.train.eval_metric_examples = 16  # CIDEr / WUPS of the eval task at each eval.
  # Peak LR, tuned on the demo's seeds 0-2: docs/demo_results.md#phase-2-learning-rate.
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 30
  c.optim.freeze = "img/.*"
  c.init_from = "runs/demo/phase1"
  c.init_required = True
  return config_lib.finalize(c, arg)

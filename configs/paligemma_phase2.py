"""Paper setting, phase 2 (video instruction tuning): vision frozen, LM trained on the VIIT mix.

The paper (docs/paper.md, "Stage 2"): VidLN reasoning QA + S-MiT captions + VidLN short QA; batch
256, 10K steps (~2.6 epochs, ~1M examples), same Adafactor recipe (peak LR 1e-4, 1K warm-up,
inverse-sqrt); 8 frames at 2 fps, 224 px; initialised from phase 1's workdir.

Run (after paligemma_phase1 and the instruction synthesis on VidLN):
  python -m viit_jax.train --config=configs/paligemma_phase2.py:data.viit_dir=/data/viit,\
data.dirs.smit=/data/smit,data.dirs.nextqa=/data/nextqa,\
data.vocab_path=/ckpt/paligemma_tokenizer.model --workdir=runs/paligemma/phase2
"""
import ml_collections

from configs import paligemma_phase1
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = paligemma_phase1.get_config()
  c.experiment = "paligemma_phase2"
  c.data.task = "viit_mix"
  c.data.eval_task = "nextqa_oe"
  c.data.eval_split = "val"
  c.train.batch_size = 256
  c.train.total_steps = 10_000
  c.train.checkpoint_every = 500
  c.train.eval_every = 1000
  c.optim.freeze = "img/.*"
  # Batch 256 x 2,112 tokens: full remat (3.8 GiB per v5e chip; 'dots' needs 14.6 of 16 GiB).
  c.model.remat_policy = "full"
  c.init_from = "runs/paligemma/phase1"
  return config_lib.finalize(c, arg)

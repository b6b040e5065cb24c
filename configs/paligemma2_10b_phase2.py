"""Phase 2 (video instruction tuning) with PaliGemma 2 10B: the paper's stage 2 on a larger LM.

Same recipe as configs/paligemma_phase2.py (batch 256, 10K steps, vision frozen, LM trained) with
Gemma 2 9B as the LM (`paligemma2-10b-224`: SigLIP So400m/14 + Gemma 2 9B, 9.66 B parameters).
Its train step fits a v5p-256 (128 chips of 95 GiB) or a v6e-256 (256 chips of 32 GiB) with
pure FSDP over the slice; docs/plan.md has what `python -m viit_jax.plan` measured:

  python -m viit_jax.plan --config=configs/paligemma2_10b_phase2.py --topology=v6e-256

Run (after a phase 1 with the same variant):
  python -m viit_jax.train --config=configs/paligemma2_10b_phase2.py:data.viit_dir=/data/viit,\
data.dirs.smit=/data/smit,data.dirs.nextqa=/data/nextqa,\
data.vocab_path=/ckpt/paligemma_tokenizer.model,init_from=runs/paligemma2_10b/phase1 \
      --workdir=runs/paligemma2_10b/phase2
"""
import ml_collections

from configs import paligemma_phase2
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = paligemma_phase2.get_config()
  c.experiment = "paligemma2_10b_phase2"
  c.model.variant = "paligemma2-10b-224"
  c.mesh.fsdp = -1  # Pure FSDP: batch 256 over 128 (v5p-256) or 256 (v6e-256) chips.
  c.mesh.tensor = 1
  c.init_from = "runs/paligemma2_10b/phase1"
  return config_lib.finalize(c, arg)

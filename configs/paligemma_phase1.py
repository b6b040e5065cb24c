"""Paper setting, phase 1 (visual adaptation): PaliGemma-3B on S-MiT, LM frozen.

The paper's recipe (PaLI-3's; docs/paper.md, "Stage 1"): 8 frames at 2 fps, 224 px; Adafactor
(beta1 = 0, decay 0.8), linear warm-up 1K steps then inverse-sqrt decay, peak LR 1e-4; batch 64;
40K steps (~5 epochs of S-MiT). Initialised from the public PaliGemma checkpoint (big_vision
`pt_224.npz`; layout in docs/checkpoints.md), imported once into our checkpoint layout; frames go
through the image tower one by one and the 8 x 256 visual tokens are the LM's prefix.

Run (needs S-MiT in its public layout, the PaliGemma tokenizer and weights; a TPU slice):
  python -m viit_jax.import_weights --src=/ckpt/pt_224.npz --kind=paligemma \
      --variant=paligemma-3b-224 --workdir=runs/paligemma/import
  python -m viit_jax.train --config=configs/paligemma_phase1.py:data.dirs.smit=/data/smit,\
data.vocab_path=/ckpt/paligemma_tokenizer.model --workdir=runs/paligemma/phase1
(`init_from=/ckpt/pt_224.npz` also works: an .npz whose names already match is read directly.)
"""
import ml_collections

from configs import base
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base.get_config()
  c.experiment = "paligemma_phase1"
  c.model.variant = "paligemma-3b-224"
  c.model.dtype = "bfloat16"
  # Save every matmul output, recompute the rest: 8.2 GiB per v5e chip at batch 64 (full remat:
  # 3.6 GiB, but a third more FLOPs; none: 18.1 GiB, does not fit). docs/plan.md.
  c.model.remat_policy = "dots"
  c.data.source = "real"
  c.data.world_dir = ""
  c.data.task = "smit_caption"
  c.data.eval_task = "smit_caption"
  c.data.eval_split = "val"
  c.data.num_frames = 8
  c.data.fps = 2.0
  c.data.res = 224
  c.data.text_len = 64
  # Each host decodes only its rows of the global batch, by index; a restart reads nothing
  # before its step (data/indexed.py). Phase 2 inherits it (its VIIT tasks are one example per
  # item too).
  c.data.process_split = "indexed"
  c.data.decode_workers = 8
  c.train.batch_size = 64
  # The batch is sharded over data x fsdp, which must divide 64 on a 128-chip slice: FSDP over 64
  # chips and 2-way tensor parallelism (docs/plan.md).
  c.mesh.fsdp = 64
  c.mesh.tensor = 2
  c.train.total_steps = 40_000
  c.train.log_every = 50
  c.train.checkpoint_every = 1000
  c.train.eval_every = 2000
  c.train.eval_batches = 8
  c.train.eval_metric_examples = 256  # CIDEr / WUPS of the eval task at each eval.
  c.train.max_decode_len = 32
  c.optim.name = "adafactor"
  c.optim.lr = 1e-4
  c.optim.schedule = "rsqrt"
  c.optim.warmup_steps = 1000
  c.optim.freeze = "llm/.*"
  c.init_from = "runs/paligemma/import"
  c.init_required = True
  return config_lib.finalize(c, arg)

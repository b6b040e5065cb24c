"""Demo phase 4: the video-text dual encoder (ViT-st + text tower) on the demo world's captions.

The video tower is ViT-st (joint space-time attention over 4 frames at 1 fps, i.e. the whole 4 s
clip, 32 px). As in the paper it starts from an image CLIP: this trainer run on the stills
(`caption_source=stills, data.num_frames=1`, both towers from scratch; `make demo`'s image_clip
phase), loaded with `init_assignment_map=IMAGE_CLIP_TO_DUAL_ENCODER` (everything but the new
temporal position embedding PE_t). The default map (VLM_TO_DUAL_ENCODER) instead takes the `img/`
trunk of a demo VLM checkpoint (phase 0 or 1: the image encoder) by renaming; PE_t, the MAP pooling
head, the output head, the text tower, the temperature and the bias then start from scratch.
Loss: symmetric InfoNCE over the global batch with a learnable temperature (`dual_encoder.loss=
sigmoid` for SigLIP's). Recipe: the paper's AdamW (0.9, 0.999), weight decay 0.01, cosine; scale
jitter (0.9, 1.33) then crop to 32 px; one of a clip's K captions drawn per step.

Caption sources (`caption_source=`, shorthand of `dual_encoder.caption_source`):
  alt_text        the pool's alt-text (WebVid `name`), 1 per clip
  smit            S-MiT spoken captions, 1 per clip
  viit            captions of the adapted VLM (viit_jax.autolabel, mode=viit), K per clip
  frame_captions  the image captioner on frames (viit_jax.autolabel, mode=frame_captioner)
  stills          the COCO-style stills' captions, each image a static clip of T equal frames
                  (an image CLIP: `caption_source=stills,data.num_frames=1,init_from=''`,
                  `init_required=false`; a video DE then starts from it with
                  `init_assignment_map="(('img/temporal_pos_embedding', None),)"`, PE_t fresh)
  a mixture       e.g. `caption_source=alt_text:1+viit:1` (per-example sampling rates)

Run (from the repository root, after demo_phase1 and, for viit / frame_captions, auto-labeling):
  python -m viit_jax.train_dual_encoder --config=configs/dual_encoder_demo.py:caption_source=viit \
      --workdir=runs/demo/de_viit
  python -m viit_jax.train_dual_encoder \
      --config=configs/dual_encoder_demo.py:caption_source=alt_text --workdir=runs/demo/de_alt_text
Arguments override fields, e.g. `...:caption_source=smit,train.total_steps=50,init_from=''`
(`init_required=false,init_from=''` trains the video tower from scratch).
"""
import math

import ml_collections

from configs import base
from viit_jax import config_lib

# VLM checkpoint (phase 0/1/2, `img/` = per-frame ViT with a projection head) -> dual encoder.
# Rules are full-matched against the dual encoder's parameter names; the first match gives the
# source name (None: keep the fresh initialisation); names no rule matches load by the same name,
# i.e. img/embedding/*, img/pos_embedding (PE_s) and img/Transformer/* come from the VLM.
VLM_TO_DUAL_ENCODER = (
    ("img/temporal_pos_embedding", None),  # ViT-st's new PE_t
    ("img/MAPHead_0/.*", None),  # the VLM has no pooling head
    ("img/head/.*", None),  # the VLM's head projects to the LM width
    ("txt/.*", None),
    ("t", None),
    ("b", None),
)

# An image CLIP (this trainer with caption_source=stills, data.num_frames=1) -> a video dual
# encoder: every parameter by the same name but ViT-st's temporal position embedding PE_t (T=1
# there).
IMAGE_CLIP_TO_DUAL_ENCODER = (("img/temporal_pos_embedding", None),)

SHORTHANDS = {"caption_source": "dual_encoder.caption_source"}


def add_dual_encoder_section(c: ml_collections.ConfigDict) -> None:
  """Declares the `dual_encoder` section (every field with its default) on an unlocked config.

  (To move into configs/base.py; see the trainer's module docstring.)
  """
  with c.unlocked():
    c.dual_encoder = ml_collections.ConfigDict()
    d = c.dual_encoder
    # `name[:rate]` parts joined by '+', names among alt_text | smit | viit | frame_captions |
    # stills.
    d.caption_source = "alt_text"
    d.viit_captions_dir = "runs/autolabel/v1"  # viit_jax.autolabel output (mode=viit).
    d.frame_captions_dir = "runs/autolabel/frames"  # viit_jax.autolabel output (frame_captioner).
    d.pool = "webvid"  # data.source=real: whose alt-text: webvid | internvid.
    d.loss = "softmax"  # softmax (InfoNCE, both directions) | sigmoid (SigLIP)
    d.log_temperature_init = math.log(10.0)  # t; logits = z_v . z_t * exp(t) (+ b)
    d.bias_init = -10.0  # b (sigmoid loss only)
    d.scale_jitter_min = 0.9  # Resize frames by s ~ U(min, max), then crop (or pad) to data.res.
    d.scale_jitter_max = 1.33


def finalize(c: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """config_lib.finalize with the `caption_source=` shorthand."""
  overrides = config_lib.parse_arg(arg)
  for short, full in SHORTHANDS.items():
    if short in overrides:
      if full in overrides:
        raise config_lib.ConfigError(f"{short} and {full} both given in {arg!r}")
      overrides[full] = overrides.pop(short)
  c.lock()
  return config_lib.apply_overrides(c, overrides)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base.get_config()
  add_dual_encoder_section(c)
  c.experiment = "dual_encoder_demo"
  c.model.variant = "demo-de"
  c.data.task = ""  # Unused: dual_encoder.caption_source picks the training tasks.
  c.data.eval_task = "demo_msrvtt_retrieval"  # In-training eval: 1k-A-style retrieval R@K.
  c.data.eval_split = "test"
  c.data.num_frames = 4
  # 1 fps: the 4 frames span the whole 4 s demo clip (2 fps would see its middle 2 s):
  # docs/demo_results.md#dual-encoders-4-frames-at-1-fps.
  c.data.fps = 1.0
  c.data.res = 32
  c.data.cache_decoded = True  # The demo world fits in memory: decode each clip once.
  c.data.text_len = 32
  c.train.batch_size = 64
  c.train.total_steps = 600
  c.train.log_every = 25
  c.train.checkpoint_every = 200
  c.train.eval_every = 200
  c.train.eval_batches = 4  # Retrieval over the first 4 x batch_size pairs of the eval task.
  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 50
  c.optim.weight_decay = 0.01
  c.init_from = "runs/demo/phase1"
  c.init_required = True
  c.init_assignment_map = VLM_TO_DUAL_ENCODER
  return finalize(c, arg)

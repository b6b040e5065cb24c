"""Auto-labeling a real corpus (the paper's VideoCC+ / InternVid+) with an adapted PaliGemma.

WebVid (CSV; videos downloaded e.g. with video2dataset as videos/<page_dir>/<videoid>.mp4):
  python -m viit_jax.autolabel --config=configs/autolabel_webvid.py:\
init_from=runs/phase2_paligemma,corpus.root=/data/webvid,\
vocab_path=/data/paligemma_tokenizer.model \
      --workdir=/data/webvid_plus
InternVid-10M-FLT (JSONL; full YouTube videos cut to each line's segment):
  python -m viit_jax.autolabel --config=configs/autolabel_webvid.py:\
init_from=runs/phase2_paligemma,corpus.format=internvid,corpus.root=/data/internvid,\
vocab_path=/data/paligemma_tokenizer.model --workdir=/data/internvid_plus
On a TPU pod slice every host runs the same command (launch/ sets the jax.distributed variables);
host h decodes work units u with u % num_hosts == h on its own chips; restarts skip finished units.
"""
import ml_collections

from configs import autolabel_demo
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = autolabel_demo.base_config()
  c.experiment = "autolabel_webvid"
  c.corpus.format = "webvid"
  c.unit_size = 1024
  c.batch_size = 64  # Per host: 16 clips (64 samples) per chip on a v5e host of 4 chips.
  c.data.num_frames = 8  # The paper: 8 frames at 2 fps, 224 px.
  c.data.fps = 2.0
  c.data.res = 224
  c.data.decode_workers = 16
  c.model.variant = "paligemma-3b-224"  # What phase 2 trained (the checkpoint must agree).
  c.model.dtype = "bfloat16"
  # bfloat16 weights, sharded over the host's chips (FSDP; the batch too): float32 replicated
  # would put 11.7 GB of weights on each 16 GiB v5e chip before any KV cache (docs/plan.md).
  c.model.param_dtype = "bfloat16"
  c.mesh.data = 1
  c.mesh.fsdp = -1
  c.decode.sampler = "nucleus"
  c.decode.num_samples = 4
  c.decode.max_decode_len = 64
  c.decode.top_p = 0.9
  return config_lib.finalize(c, arg)

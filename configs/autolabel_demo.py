"""Auto-labeling (phase 3) of the demo world's unlabeled pool with the adapted VLM.

`base_config()` here is the locked base of every auto-labeling run: it declares every field with its
default (configs/autolabel_webvid.py builds on it).

Run (after phase 2 trained runs/phase2 on the world in runs/demo/world):
  python -m viit_jax.autolabel \
      --config=configs/autolabel_demo.py:init_from=runs/phase2,corpus.world_dir=runs/demo/world \
      --workdir=runs/autolabel
  # -> runs/autolabel/v1/{settings.json, manifest.json, units/unit-*.{tfrecord,jsonl,...}}
The paper's baseline (an image captioner on frames; point init_from at the phase-0 image model):
  python -m viit_jax.autolabel --config=configs/autolabel_demo.py:mode=frame_captioner,\
init_from=runs/phase0,corpus.world_dir=runs/demo/world,version=frames --workdir=runs/autolabel
Two processes on one machine (each takes every other work unit):
  python launch/local.py --num_processes=2 --devices_per_process=1 -- python -m viit_jax.autolabel \
      --config=configs/autolabel_demo.py:init_from=runs/phase2,corpus.world_dir=runs/demo/world \
      --workdir=runs/autolabel
"""
import ml_collections

from viit_jax import config_lib


def base_config() -> ml_collections.ConfigDict:
  """Every auto-labeling field with its default (not locked; get_config locks)."""
  c = ml_collections.ConfigDict()
  c.experiment = "autolabel"
  # viit: caption each clip with the video model (T frames at once).
  # frame_captioner: the paper's baseline: caption frame_captioner.num_frames frames one by one
  # with the image model (T=1) and join the frame captions.
  c.mode = "viit"
  c.init_from = ""  # Trainer workdir (its latest checkpoint, or init_step) or a .npz; required.
  c.init_step = -1
  c.init_assignment_map = ()  # ((regex, source name), ...) for init_from, t5x-style.
  c.version = "v1"  # Output: <workdir>/<version>/, bound to its settings (see settings.json).
  c.seed = 0  # Sampling seed: sample k of clip i uses fold_in(seed, i, k) (any device count).
  c.prompt = "Generate the alt-text:"  # The captioning prompt the VLM was trained with.
  c.unit_size = 256  # Clips per work unit (written atomically; a restart skips finished units).
  # Independent jobs on one version (e.g. single-host TPU v5e slices, which serve inference on one
  # host only): job s of n takes units u with u % n == s (its processes split them further); the
  # job that finishes the last unit writes the manifest.
  c.shard_index = 0
  c.num_shards = 1
  c.batch_size = 32  # Clips per decode batch on one process (a multiple of its device count).
  c.log_every_s = 10.0  # Progress line at most this often (and after every unit).
  # Circuit breaker: when more than this share of the clips of the latest units (at least
  # breaker_min_clips clips) is rejected (missing, corrupt, ...), the job stops with
  # EXIT_BACKEND_FAILED before writing the unit: the video store is down or the root is wrong.
  # 1.0 never stops.
  c.max_unit_reject_rate = 0.9
  c.breaker_min_clips = 64

  # The unlabeled corpus, read in file order.
  c.corpus = ml_collections.ConfigDict()
  c.corpus.format = "demo"  # demo (the demo world's pool) | webvid (CSV) | internvid (JSONL)
  c.corpus.world_dir = ""  # demo: the world (pool at <world_dir>/webvid/results_pool.csv).
  c.corpus.root = ""  # webvid / internvid: the data set root.
  c.corpus.file = ""  # CSV / JSONL under root; '' = results_2M_train.csv / InternVid-10M-FLT.jsonl
  c.corpus.path_template = ""  # Media path under root; '' = the format's default (data/readers/)
  c.corpus.internvid_full_videos = True  # Files are whole videos: cut [start, end) of each line.
  c.corpus.limit = 0  # Only the first N clips (0 = all).

  # Frames given to the VLM (data/video.py's sampling rule, centred window).
  c.data = ml_collections.ConfigDict()
  c.data.num_frames = 8
  c.data.fps = 2.0
  c.data.res = 0  # 0 = the checkpoint's data.res.
  c.data.decode_workers = 2  # PyAV decoding threads (video decoding overlaps the model).
  # A clip still decoding after this long is abandoned and rejected as decode_timeout (a read
  # stuck in the kernel; data.video's own per-clip limit covers stalls between packets).
  c.data.decode_time_limit_s = 300.0

  # mode=frame_captioner: k frames spread over the clip, captioned one by one, joined.
  c.frame_captioner = ml_collections.ConfigDict()
  c.frame_captioner.num_frames = 4
  c.frame_captioner.fps = 1.0
  c.frame_captioner.separator = "; "  # Joins the (deduplicated) frame captions.

  # Model: '' / 0 = as recorded in the checkpoint's meta (a .npz needs them set).
  c.model = ml_collections.ConfigDict()
  c.model.variant = ""
  c.model.vocab_size = 0
  c.model.dtype = ""  # Compute dtype, e.g. bfloat16; '' = the checkpoint's model.dtype.
  # Weights as held on the devices: '' = as trained (float32); bfloat16 halves them (inference).
  c.model.param_dtype = ""
  c.vocab_path = ""  # SentencePiece model; '' = <world_dir>/spm/demo.model (demo corpus only).

  # Decoding (viit_jax/decoding.py). The paper: nucleus sampling, several captions per clip.
  c.decode = ml_collections.ConfigDict()
  c.decode.sampler = "nucleus"  # greedy | temperature | nucleus | top_k | beam
  c.decode.num_samples = 4  # K captions per clip (beam: the K best, K <= beam_size).
  c.decode.max_decode_len = 32
  c.decode.temperature = 1.0
  c.decode.top_p = 0.9
  c.decode.top_k = 0
  c.decode.beam_size = 4
  c.decode.length_penalty = 1.0

  # Mesh over each process's own devices (processes decode disjoint work units).
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base_config()
  c.experiment = "autolabel_demo"
  return config_lib.finalize(c, arg)

"""The locked base config: every field of every VLM / dual-encoder training run, with its default.

Experiment files start from `get_config()` here, set what they change, and finish with
`config_lib.finalize(config, arg)`; the config is locked, so setting a field the base does not
declare is an error naming it, in experiment files and on the command line alike.

Run (the base itself is a valid, tiny experiment on the demo world's stills):
  python -m viit_jax.train --config=configs/base.py:train.total_steps=2 --workdir=runs/base
"""
import ml_collections

from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The base config, locked, with `key=value` overrides from `arg` applied."""
  c = ml_collections.ConfigDict()
  # A workdir remembers the experiment (and config) that created it; another one is refused.
  c.experiment = "base"
  c.seed = 0  # Init RNG and data order (the data order is a function of (seed, step)).

  # Model: a named variant from viit_jax/models/variants.py; compute dtype vs master-weight dtype.
  c.model = ml_collections.ConfigDict()
  c.model.variant = "test"
  c.model.dtype = "bfloat16"  # Activations / matmul inputs (mixed precision).
  c.model.param_dtype = "float32"  # Master weights and optimizer state (always float32).
  c.model.remat_policy = "none"  # none | full | dots | dots_no_batch | nothing_saveable
  # Scanned layer stacks (big_vision's PaliGemma layout); False compiles faster.
  c.model.scan = True
  c.model.vocab_size = 0  # 0 = the variant's; must cover the tokenizer's ids.

  # Device mesh: one size per axis; -1 absorbs the remaining devices. Default: pure FSDP.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = 1
  c.mesh.fsdp = -1
  c.mesh.tensor = 1
  # Multislice (the job's devices on several TPU slices joined by the data-center network, DCN):
  # the axis that spans the slices. Its size (global, as above) is split as num_slices x per-slice
  # and must be a multiple of the number of slices (pure FSDP on 2 slices: mesh.data=2); every
  # other axis stays inside a slice. Unused on one slice.
  c.mesh.dcn_axis = "data"

  # Data: seqio task / mixture names, registered on import of data.tasks for `world_dir`.
  c.data = ml_collections.ConfigDict()
  c.data.source = "demo"  # demo (the demo world) | real (public data sets in data.dirs)
  c.data.world_dir = "runs/demo/world"  # Demo world root (python -m data.demo_world --out=...).
  c.data.vocab_path = ""  # SentencePiece model; '' = <world_dir>/spm/demo.model (demo only).
  c.data.dirs = ml_collections.ConfigDict()  # data.source=real: roots in their public formats.
  for name in ("coco", "smit", "webvid", "internvid", "msrvtt", "nextqa", "kinetics"):
    c.data.dirs[name] = ""
  c.data.tfds_data_dir = ""  # data.source=real: prepared TFDS shards ('' = decode mp4 directly).
  c.data.viit_dir = ""  # Output of viit_jax.synthesize: registers the VIIT tasks and mixture.
  # Relative seqio mixing rates of the phase-2 mixture (data.viit_tasks): reasoning QA per kind,
  # S-MiT captions, short QA. The paper gives none (its Table 6: without the captions phase 2
  # loses captioning, without the short QA it loses NExT-OE WUPS).
  c.data.viit_rates = ml_collections.ConfigDict(
      {"temporal": 0.5, "causal": 0.5, "captions": 1.0, "shortqa": 1.0})
  c.data.task = "demo_stills_caption"  # seqio task or mixture to train on.
  c.data.train_split = "train"
  c.data.eval_task = "demo_stills_caption"  # '' = no held-out loss / samples.
  c.data.eval_split = "val"
  c.data.num_frames = 1  # T frames per example (1 = still images).
  c.data.fps = 2.0  # Frame sampling rate for videos.
  c.data.res = 16  # Square frame size in pixels (the model's image_size).
  c.data.text_len = 32  # Token length L of [BOS prefix \n suffix EOS] (visual tokens excluded).
  c.data.shuffle_buffer = 64  # Examples hold decoded frames: keep it small.
  c.data.decode_workers = 1  # Parallel PyAV decoders per task.
  # process_split=indexed: a clip still decoding after this long is abandoned and rejected as
  # decode_timeout (the input's watchdog; data.video's own limit covers stalls between packets).
  c.data.decode_time_limit_s = 300.0
  # Keep decoded clips in host memory after a split's first pass (PyAV path; data that fits in
  # memory only, e.g. the demo world: a repeated stream then decodes each clip once).
  c.data.cache_decoded = False
  # indexed: each process decodes only its rows of each global batch, by index (order a function
  # of (seed, step); resume reads nothing before the step; one example per item); slice: every
  # process reads the global stream and keeps its rows (order independent of the process count);
  # shard: each process reads its 1/P of the data.
  c.data.process_split = "slice"
  # Tasks read from prepared ArrayRecord shards instead of their media files: "task=dir,..."
  # (dirs built by python -m data.prepared; same task names, random windows kept).
  c.data.prepared = ""

  # Training loop.
  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 8  # Global batch (all processes, all micro-batches).
  c.train.micro_batches = 1  # Gradient accumulation: batch_size / micro_batches per pass.
  c.train.total_steps = 100
  c.train.log_every = 10  # Progress line + metrics every N steps.
  c.train.checkpoint_every = 50
  c.train.keep_checkpoints = 3
  c.train.async_checkpoints = True
  c.train.eval_every = 50  # 0 = only at the end.
  # MFU's peak per chip in TFLOP/s; 0 = the chip's published bf16 peak (TPU, GPU) or, on a CPU, a
  # matmul measured at start-up (viit_jax/flops.py).
  c.train.peak_tflops = 0.0
  c.train.profile_steps = ""  # "a:b": a jax.profiler trace of steps a..b in <workdir>/profile.
  c.train.eval_at_start = False  # Also evaluate the initial state (a phase's starting point).
  c.train.eval_batches = 2  # Held-out batches for the eval loss.
  c.train.decode_samples = 4  # Greedy-decoded examples logged at each eval.
  # VLM trainer: the first N examples of data.eval_task decoded greedily at each eval and scored
  # by the task's seqio metric_fns (CIDEr for captions, WUPS for NExT-OE); 0 = off.
  c.train.eval_metric_examples = 0
  c.train.max_decode_len = 16

  # Optimizer (viit_jax/optim.py). Defaults: the paper's (PaLI-3's) Adafactor recipe.
  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adafactor"  # adafactor | adamw | sgd
  c.optim.lr = 1e-4  # Peak learning rate.
  c.optim.schedule = "rsqrt"  # rsqrt | cosine | constant (after linear warm-up)
  c.optim.warmup_steps = 1000
  c.optim.cosine_end_fraction = 0.0
  c.optim.adafactor_decay_rate = 0.8  # beta2_t = 1 - t^-0.8
  c.optim.adafactor_param_scale = False  # T5-style relative step sizes off: the LR is absolute.
  c.optim.adafactor_clipping = 1.0  # Update RMS clipping threshold (0 = off).
  c.optim.adafactor_min_dim_to_factor = 128
  c.optim.b1 = 0.9  # adamw
  c.optim.b2 = 0.999  # adamw
  c.optim.eps = 1e-8  # adamw
  c.optim.momentum = 0.9  # sgd
  c.optim.weight_decay = 0.0
  c.optim.grad_clip_norm = 0.0  # Global-norm clipping before the optimizer (0 = off).
  c.optim.freeze = ""  # Regex full-matched against param paths; '' trains everything.

  # Initial parameters when the workdir has no checkpoint of its own.
  c.init_from = ""  # '' (scratch) | another workdir | a .npz of public weights.
  c.init_required = False  # True: a run with no checkpoint of its own and no init_from is an error.
  c.init_step = -1  # Step of the init_from workdir's checkpoint; -1 = latest.
  c.init_assignment_map = ()  # ((regex, replacement or None), ...), t5x-style.

  return config_lib.finalize(c, arg)

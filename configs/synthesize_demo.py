"""Video instruction data synthesis on the demo world with the offline `rules` back-end.

`base_config()` here is the locked base of every synthesis run: it declares every field with its
default (configs/synthesize_openai.py builds on it).

Run:
  python -m data.demo_world --out=/tmp/world --preset=demo --seed=0
  python -m viit_jax.synthesize --config=configs/synthesize_demo.py:world_dir=/tmp/world \
      --workdir=/tmp/viit_data
  # -> /tmp/viit_data/v1/{manifest.json, units/unit-*.{tfrecord,jsonl,rejects.jsonl,meta.json}}
"""
import ml_collections

from viit_jax import config_lib


def base_config() -> ml_collections.ConfigDict:
  """Every synthesis field with its default (not locked; get_config locks)."""
  c = ml_collections.ConfigDict()
  # Input: VidLN-format JSONL (data/readers/). '' = <world_dir>/vidln/train.jsonl. Video paths
  # are relative to the file's directory.
  c.world_dir = ""
  c.narratives = ""
  # '' = each line's video_path; else e.g. "{dataset_id}/{video_id}.mp4".
  c.video_path_template = ""
  c.check_video_files = True  # Reject lines whose video is missing (synthesis itself reads text).
  c.kinds = ("temporal", "causal", "shortqa")  # One prompt per (clip, kind).
  c.seed = 0  # Few-shot draws (per clip and kind) and the rules back-end's choices.

  # Output: <workdir>/<version>/ ; a version is bound to its settings (backend, model, templates,
  # seed, input): running the same version with other settings is refused.
  c.version = "v1"
  c.unit_size = 64  # Clips per work unit (each unit is written atomically; restart skips it).
  c.num_shards = 1  # Several processes may share a version: process k does units i % n == k.
  c.shard_index = 0
  c.retry_backend_errors = True  # On restart, redo units whose prompts failed at the back-end.
  # Share of a unit's prompts that may fail at the back-end; above it the job stops (exit 4, the
  # unit and the manifest unwritten): the server is down or refuses the requests.
  c.max_backend_error_rate = 0.9

  c.backend = "rules"  # rules | openai | local

  # Reply validation (viit_jax/synthesis/validate.py).
  c.validate = ml_collections.ConfigDict()
  c.validate.min_question_words = 3
  c.validate.max_question_words = 40
  c.validate.max_answer_words = 60
  c.validate.shortqa_max_answer_words = 2  # The paper: fewer than three words.
  c.validate.copy_min_words = 10  # A verbatim narrative span this long as answer = copy.

  # OpenAI-compatible chat-completions server (vLLM, llama.cpp server, hosted APIs).
  c.openai = ml_collections.ConfigDict()
  c.openai.base_url = "http://127.0.0.1:8000/v1"  # .../chat/completions is appended.
  c.openai.model = ""  # The served model's name (required for backend=openai).
  c.openai.api_key_env = ""  # Name of the env var holding the key; '' = send no key.
  c.openai.concurrency = 8  # Requests in flight.
  c.openai.timeout_s = 60.0  # Per socket read (connect, first byte of the reply, each read).
  # Per request attempt, all of it (connect, headers, body): a server that drips bytes never trips
  # the per-read timeout; past this the attempt fails as deadline_exceeded (retried).
  c.openai.request_deadline_s = 120.0
  c.openai.max_retries = 5  # On 429, 5xx, timeouts, deadlines, connection errors.
  c.openai.backoff_base_s = 1.0  # Backoff before retry k: base * 2^k, jittered in [x/2, x].
  c.openai.backoff_max_s = 60.0
  c.openai.retry_after_max_s = 300.0  # Cap on a server's Retry-After.
  c.openai.requests_per_second = 0.0  # Token-bucket rate limit; 0 = none.
  c.openai.burst = 8  # Token-bucket size.
  c.openai.temperature = 0.7
  c.openai.top_p = 0.95
  c.openai.max_tokens = 256

  # Our Gemma decoder (viit_jax/synthesis/local_gemma.py), text-only, nucleus sampling.
  c.local = ml_collections.ConfigDict()
  c.local.variant = "gemma-2b"  # A Gemma variant, or a VLM variant (its LM is used).
  c.local.checkpoint = ""  # Orbax workdir (trainer / import_weights output) or .npz.
  c.local.step = -1  # Checkpoint step of a workdir; -1 = latest.
  c.local.param_prefix = "llm/"  # Where the LM sits in the checkpoint ('' for a bare Gemma).
  c.local.vocab = ""  # The checkpoint's SentencePiece model.
  c.local.stop_piece = "<end_of_turn>"  # Sampling stops here (EOS if the tokenizer lacks it).
  c.local.temperature = 0.7
  c.local.top_p = 0.95
  c.local.max_decode_len = 128
  c.local.max_prompt_len = 1024  # Longer prompts are rejected (backend_prompt_too_long).
  c.local.batch_size = 8
  c.local.seed = 0
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base_config()
  c.backend = "rules"
  c.unit_size = 16
  return config_lib.finalize(c, arg)

"""Video instruction data synthesis through an OpenAI-compatible chat-completions server.

Serve an instruction-tuned LLM (the paper used PaLM 2), e.g. with vLLM:
  vllm serve google/gemma-2-9b-it --port 8000
then:
  python -m viit_jax.synthesize \
      --config=configs/synthesize_openai.py:narratives=/data/vidln/train.jsonl \
      --workdir=/data/viit_synth
A hosted API: `openai.base_url=https://api.example.com/v1,openai.api_key_env=MY_API_KEY,
openai.requests_per_second=5`. Each request attempt has a socket timeout per read
(`openai.timeout_s`) and a total deadline (`openai.request_deadline_s`); failed attempts are
retried `openai.max_retries` times after exponential back-off (`openai.backoff_base_s`, doubling
up to `openai.backoff_max_s`; each logged at --verbosity=0). Killing and rerunning the same
command resumes: finished units are skipped and every reply already received is read from
<workdir>/cache/replies.jsonl.
"""
import ml_collections

from configs import synthesize_demo
from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = synthesize_demo.base_config()
  c.backend = "openai"
  c.openai.model = "google/gemma-2-9b-it"
  c.unit_size = 256
  return config_lib.finalize(c, arg)

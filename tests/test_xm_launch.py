"""launch/xm_launch.py: local sweeps through a real XManager local experiment, GKE/Vertex dry runs,
restarts on preemption and secrets (a Vertex container's Secret Manager fetch against a local fake)."""
import base64
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest
import yaml

from launch import local
from launch.gke import schema

REPO = pathlib.Path(__file__).resolve().parents[1]
XM_LAUNCH = REPO / "launch" / "xm_launch.py"

_CONFIG = '''
import ml_collections
from viit_jax import config_lib

def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.lr = 0.1
  c.steps = 2
  c.name = "x"
  c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1, "dcn_axis": "data"})
  c.train = ml_collections.ConfigDict({"batch_size": 8})
  c.openai = ml_collections.ConfigDict({"api_key_env": ""})  # As in configs/synthesize_demo.py.
  return config_lib.finalize(c, arg)

def sweep():
  return [{"lr": 0.5}, {"lr": 0.25, "steps": 3, "name": "a,b"}]
'''

# A stand-in entry point with the same command-line contract as viit_jax's entry points.
_ENTRY = '''
import importlib.util, json, os, sys
from absl import app, flags
_CONFIG = flags.DEFINE_string("config", None, "")
_WORKDIR = flags.DEFINE_string("workdir", None, "")
_TAG = flags.DEFINE_string("tag", "", "")

def main(argv):
  path, _, arg = _CONFIG.value.partition(":")
  spec = importlib.util.spec_from_file_location("cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  os.makedirs(_WORKDIR.value, exist_ok=True)
  pid = os.environ.get("VIIT_PROCESS_ID", "-")
  with open(os.path.join(_WORKDIR.value, f"done_{pid}.json"), "w") as f:
    json.dump({"config": config.to_dict(), "tag": _TAG.value,
               "num_processes": os.environ.get("VIIT_NUM_PROCESSES"),
               "xla_flags": os.environ.get("XLA_FLAGS", "")}, f)
  print("entry done", config.lr, flush=True)
  if os.environ.get("FAIL_LR") == str(config.lr):
    sys.exit(5)

app.run(main)
'''


@pytest.fixture()
def project(tmp_path):
  (tmp_path / "pkg").mkdir()
  (tmp_path / "pkg" / "__init__.py").write_text("")
  (tmp_path / "pkg" / "entry.py").write_text(_ENTRY)
  (tmp_path / "cfg.py").write_text(_CONFIG)
  db = tmp_path / "xm_db.yaml"
  db.write_text(f"sql_connector: sqlite\nsql_connection_settings:\n  backend: sqlite\n"
                f"  db_name: {tmp_path / 'xm.sqlite3'}\n")
  return tmp_path


def _xm_launch(project, *args, env_extra=None, timeout=120):
  env = dict(os.environ, PYTHONPATH=str(project))
  env.update(env_extra or {})
  return subprocess.run([sys.executable, str(XM_LAUNCH), *args], capture_output=True, text=True,
                        cwd=str(REPO), env=env, timeout=timeout)


def test_local_sweep_runs_each_point_as_an_xm_work_unit(project):
  workdir = project / "runs"
  proc = _xm_launch(project, "--executor=local", "--entry=pkg.entry",
                    f"--config={project / 'cfg.py'}:steps=7", f"--workdir={workdir}",
                    "--num_processes=2", "--devices_per_process=2",
                    f"--xm_db_yaml_config_path={project / 'xm_db.yaml'}", "--", "--tag=hello")
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out
  assert "2/2 work unit(s) succeeded" in out
  assert "mesh           {'data': 1, 'fsdp': 4, 'tensor': 1}" in out
  index = json.loads((workdir / "sweep.json").read_text())
  assert [p["overrides"] for p in index] == [{"lr": 0.5}, {"lr": 0.25, "steps": 3, "name": "a,b"}]
  for point, lr, steps, name in ((index[0], 0.5, 7, "x"), (index[1], 0.25, 3, "a,b")):
    for pid in ("0", "1"):  # Both processes of the work unit, started by launch/local.py.
      done = json.loads((pathlib.Path(point["workdir"]) / f"done_{pid}.json").read_text())
      assert done["config"]["lr"] == lr and done["config"]["steps"] == steps
      assert done["config"]["name"] == name and done["tag"] == "hello"
      assert done["num_processes"] == "2"
      assert "--xla_force_host_platform_device_count=2" in done["xla_flags"]
  assert pathlib.Path(index[1]["workdir"]).name == "01_lr=0.25_steps=3_name=a-b"
  # The experiment and its two work units are in XManager's own (sqlite) metadata store.
  import sqlite3
  with sqlite3.connect(project / "xm.sqlite3") as db:
    assert db.execute("SELECT COUNT(*) FROM work_unit").fetchone()[0] == 2


def test_local_sweep_reports_a_failed_point_and_exits_nonzero(project):
  proc = _xm_launch(project, "--executor=local", "--entry=pkg.entry", f"--config={project}/cfg.py",
                    f"--workdir={project / 'runs'}",
                    f"--xm_db_yaml_config_path={project / 'xm_db.yaml'}",
                    env_extra={"FAIL_LR": "0.5"})
  out = proc.stdout + proc.stderr
  assert proc.returncode == 1, out
  assert "FAILED" in out and "1/2 work unit(s) succeeded" in out
  # The failing first point did not stop the second one.
  assert (project / "runs" / "01_lr=0.25_steps=3_name=a-b" / "done_-.json").exists()


def test_bad_sweep_key_fails_before_anything_runs(project):
  (project / "cfg.py").write_text(_CONFIG.replace('{"lr": 0.5}', '{"lrr": 0.5}'))
  proc = _xm_launch(project, "--executor=local", "--entry=pkg.entry", f"--config={project}/cfg.py",
                    f"--workdir={project / 'runs'}",
                    f"--xm_db_yaml_config_path={project / 'xm_db.yaml'}")
  assert proc.returncode == 2 and "lrr" in proc.stderr, proc.stdout + proc.stderr
  assert not (project / "runs").exists()


def test_gke_dry_run_writes_one_valid_jobset_per_sweep_point(project):
  spec_dir = project / "specs"
  proc = _xm_launch(project, "--executor=gke", "--slice=v5litepod-16", "--num_slices=2",
                    "--image=img:1", "--entry=train", f"--config={project}/cfg.py:mesh.data=2",
                    "--workdir=gs://bucket/sweep", "--dry_run", f"--spec_dir={spec_dir}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "ICI          (1, 16, 1)" in proc.stdout and "DCN          (2, 1, 1)" in proc.stdout
  files = sorted(spec_dir.iterdir())
  assert [f.name for f in files] == ["jobset_00.yaml", "jobset_01.yaml"]
  names, commands = [], []
  for f in files:
    docs = list(yaml.safe_load_all(f.read_text()))
    schema.validate(docs)
    js = next(d for d in docs if d["kind"] == "JobSet")
    names.append(js["metadata"]["name"])
    pod = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    commands.append(pod["containers"][0]["command"][2].splitlines()[-1])
  assert names == ["viit-train-0", "viit-train-1"]
  assert commands[0].endswith(f"--config={project}/cfg.py:mesh.data=2,lr=0.5 "
                              "--workdir=gs://bucket/sweep/00_lr=0.5")
  assert "lr=0.25,steps=3,name=" in commands[1]
  # Preempted JobSets restart by default, without using up the budget for other failures.
  docs = list(yaml.safe_load_all(files[0].read_text()))
  js = next(d for d in docs if d["kind"] == "JobSet")
  assert js["spec"]["failurePolicy"]["maxRestarts"] == 10
  assert js["spec"]["failurePolicy"]["rules"][0] == {
      "name": "preemption", "action": "RestartJobSetAndIgnoreMaxRestarts",
      "onJobFailureReasons": ["PodFailurePolicy"]}
  job = js["spec"]["replicatedJobs"][0]["template"]["spec"]
  assert job["backoffLimit"] == 0
  assert job["podFailurePolicy"]["rules"][1]["onExitCodes"]["values"] == [42]
  assert job["template"]["spec"]["terminationGracePeriodSeconds"] == 120
  # Pure FSDP over 2 slices is refused with the fix in the message.
  bad = _xm_launch(project, "--executor=gke", "--slice=v5litepod-16", "--num_slices=2",
                   "--image=img:1", f"--config={project}/cfg.py", "--workdir=gs://bucket/sweep",
                   "--dry_run")
  assert bad.returncode == 2 and "mesh.data=2" in bad.stderr


def test_gke_api_key_of_the_config_must_come_from_a_secret(project):
  """config.openai.api_key_env names the variable the synthesis back-end reads its key from: the
  JobSet must fill it from a Kubernetes Secret; a plain --env of a key is refused."""
  args = ["--executor=gke", "--slice=v5litepod-256", "--num_slices=2", "--image=img:1",
          "--entry=synthesize", "--workdir=gs://bucket/synth", "--dry_run", "--nosweep",
          f"--config={project}/cfg.py:mesh.data=2,openai.api_key_env=OPENAI_API_KEY"]
  missing = _xm_launch(project, *args)
  assert missing.returncode == 2, missing.stdout + missing.stderr
  assert "reads credentials from env ['OPENAI_API_KEY']" in missing.stderr
  assert "--secret_env" in missing.stderr
  plain = _xm_launch(project, *args, "--env=OPENAI_API_KEY=sk-live-123",
                     "--secret_env=OTHER_TOKEN=s:k")
  assert plain.returncode == 2 and "OPENAI_API_KEY looks like a secret" in plain.stderr
  assert "sk-live-123" not in plain.stdout + plain.stderr
  spec_dir = project / "specs"
  ok = _xm_launch(project, *args, "--secret_env=OPENAI_API_KEY=llm-api:key", "--max_restarts=5",
                  f"--spec_dir={spec_dir}")
  assert ok.returncode == 0, ok.stdout + ok.stderr
  assert "DCN          (2, 1, 1)  across slices (mesh.dcn_axis=data)" in ok.stdout
  docs = list(yaml.safe_load_all((spec_dir / "jobset_00.yaml").read_text()))
  schema.validate(docs)
  js = next(d for d in docs if d["kind"] == "JobSet")
  assert js["spec"]["failurePolicy"]["maxRestarts"] == 5
  [c] = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"]
  assert {"name": "OPENAI_API_KEY",
          "valueFrom": {"secretKeyRef": {"name": "llm-api", "key": "key"}}} in c["env"]
  assert "openai.api_key_env=OPENAI_API_KEY" in c["command"][2]
  # A --dcn_axis that disagrees with the config's mesh.dcn_axis is refused: the job uses the config.
  other = _xm_launch(project, *args, "--secret_env=OPENAI_API_KEY=llm-api:key",
                     "--dcn_axis=fsdp")
  assert other.returncode == 2 and "disagrees" in other.stderr


def test_vertex_dry_run_builds_tpu_custom_jobs(project):
  from google.cloud import aiplatform_v1 as aip
  spec_dir = project / "specs"
  proc = _xm_launch(project, "--executor=vertex", "--slice=v5litepod-16", "--image=img:1",
                    "--entry=train", f"--config={project}/cfg.py", "--workdir=gs://bucket/v",
                    "--dry_run", f"--spec_dir={spec_dir}", "--nosweep")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  text = (spec_dir / "custom_job_00.json").read_text()
  job = aip.CustomJob.from_json(text)  # The Vertex API's own message type parses it.
  [pool] = job.job_spec.worker_pool_specs
  assert pool.machine_spec.machine_type == "ct5lp-hightpu-4t"
  assert pool.machine_spec.tpu_topology == "4x4" and pool.replica_count == 1
  assert list(pool.container_spec.command) == [
      "python", "-m", "viit_jax.train", f"--config={project}/cfg.py", "--workdir=gs://bucket/v"]
  assert job.job_spec.base_output_directory.output_uri_prefix == "gs://bucket/v"
  # A restarted worker (preemption, maintenance) restarts the job; it resumes from the workdir.
  assert job.job_spec.scheduling.restart_job_on_worker_restart
  assert '"restartJobOnWorkerRestart": true' in text
  assert job.job_spec.scheduling.strategy == aip.Scheduling.Strategy.STRATEGY_UNSPECIFIED
  spot = _xm_launch(project, "--executor=vertex", "--slice=v5litepod-16", "--image=img:1",
                    f"--config={project}/cfg.py", "--workdir=gs://bucket/v", "--dry_run",
                    "--nosweep", "--vertex_strategy=SPOT", "--vertex_timeout_h=48",
                    "--env=LIBTPU_INIT_ARGS=--x=1", f"--spec_dir={spec_dir}")
  assert spot.returncode == 0, spot.stdout + spot.stderr
  job = aip.CustomJob.from_json((spec_dir / "custom_job_00.json").read_text())
  assert job.job_spec.scheduling.strategy == aip.Scheduling.Strategy.SPOT
  assert job.job_spec.scheduling.timeout.total_seconds() == 48 * 3600
  env = {e.name: e.value for e in job.job_spec.worker_pool_specs[0].container_spec.env}
  assert env == {"LIBTPU_INIT_ARGS": "--x=1", "VIIT_COORDINATOR_ADDRESS": "auto"}
  v5p = _xm_launch(project, "--executor=vertex", "--slice=v5p-128", "--image=img:1",
                   f"--config={project}/cfg.py", "--workdir=gs://bucket/v", "--dry_run")
  assert v5p.returncode == 2 and "--executor=gke" in v5p.stderr


class _FakeGoogle(http.server.BaseHTTPRequestHandler):
  """The metadata server's token endpoint and Secret Manager's `versions/*:access`, on 127.0.0.1."""
  secrets = {"projects/p/secrets/llm-api/versions/latest": "sk-test-123"}

  def do_GET(self):  # noqa: N802 - http.server's name
    token_path = "/computeMetadata/v1/instance/service-accounts/default/token"
    if self.path == token_path and self.headers.get("Metadata-Flavor") == "Google":
      return self._json(200, {"access_token": "tok-1", "expires_in": 3599, "token_type": "Bearer"})
    name = self.path.removeprefix("/v1/").removesuffix(":access")
    if self.headers.get("Authorization") != "Bearer tok-1":
      return self._json(401, {"error": {"code": 401}})
    if self.path.endswith(":access") and name in self.secrets:
      data = base64.b64encode(self.secrets[name].encode()).decode()
      return self._json(200, {"name": name, "payload": {"data": data}})
    return self._json(404, {"error": {"code": 404, "status": "NOT_FOUND"}})

  def _json(self, code, body):
    raw = json.dumps(body).encode()
    self.send_response(code)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(raw)))
    self.end_headers()
    self.wfile.write(raw)

  def log_message(self, *args):
    pass


def test_vertex_secret_env_is_fetched_from_secret_manager_by_the_container(project, tmp_path):
  """Vertex env holds plain values only: the key's Secret Manager version goes in the spec and the
  container's `bash -c` prologue fetches it. Run that prologue as written against a local fake of
  the metadata server and Secret Manager (the two endpoints are overridable by env)."""
  from google.cloud import aiplatform_v1 as aip
  spec_dir = project / "specs"
  base = ["--executor=vertex", "--slice=v5litepod-16", "--image=img:1", "--entry=synthesize",
          f"--config={project}/cfg.py:openai.api_key_env=OPENAI_API_KEY",
          "--workdir=gs://bucket/v", "--dry_run", "--nosweep", f"--spec_dir={spec_dir}"]
  missing = _xm_launch(project, *base)
  assert missing.returncode == 2 and "OPENAI_API_KEY" in missing.stderr
  plain = _xm_launch(project, *base, "--env=OPENAI_API_KEY=sk-live-1")
  assert plain.returncode == 2 and "looks like a secret" in plain.stderr
  no_project = _xm_launch(project, *base, "--secret_env=OPENAI_API_KEY=llm-api")
  assert no_project.returncode == 2 and "--project" in no_project.stderr
  proc = _xm_launch(project, *base, "--project=p", "--secret_env=OPENAI_API_KEY=llm-api")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  job = aip.CustomJob.from_json((spec_dir / "custom_job_00.json").read_text())
  container = job.job_spec.worker_pool_specs[0].container_spec
  assert "OPENAI_API_KEY" not in {e.name for e in container.env}
  bash, flag, script = container.command
  assert (bash, flag) == ("bash", "-c")
  assert "projects/p/secrets/llm-api/versions/latest" in script
  assert script.rstrip().splitlines()[-1] == (
      "exec python -m viit_jax.synthesize "
      f"--config={project}/cfg.py:openai.api_key_env=OPENAI_API_KEY --workdir=gs://bucket/v")

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGoogle)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    bindir = tmp_path / "bin"  # The image's `python`.
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    host = f"127.0.0.1:{server.server_address[1]}"
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
               GCE_METADATA_HOST=host, VIIT_SECRET_MANAGER_ENDPOINT=f"http://{host}")
    probe = "exec python -c 'import os; print(\"KEY=\" + os.environ[\"OPENAI_API_KEY\"])'"
    run = script.rstrip().rsplit("\n", 1)[0] + "\n" + probe + "\n"
    out = subprocess.run(["bash", "-c", run], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "KEY=sk-test-123"
    # A secret the job cannot read stops the container before the entry point starts.
    gone = run.replace("versions/latest", "versions/7")
    out = subprocess.run(["bash", "-c", gone], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "KEY=" not in out.stdout and "404" in out.stderr
  finally:
    server.shutdown()


_TRAIN_SWEEP_CONFIG = '''
"""Tiny phase-0 training on the test demo world, swept over two seeds."""
from configs import demo_phase0


def get_config(arg=None):
  return demo_phase0.get_config(arg)


def sweep():
  return [{"seed": 0}, {"seed": 1}]
'''


def test_two_point_local_sweep_of_a_tiny_training(project, demo_world):
  """The acceptance run: `xm_launch.py --executor=local` trains viit_jax.train twice (a seed sweep
  from the config file's sweep()), each a real XManager work unit writing its own workdir."""
  cfg = project / "phase0_sweep.py"
  cfg.write_text(_TRAIN_SWEEP_CONFIG)
  tiny = ",".join([
      f"data.world_dir={demo_world}", "model.variant=test", "train.total_steps=2",
      "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=2", "data.eval_task=",
      "train.decode_samples=0"])
  workdir = project / "sweep"
  proc = _xm_launch(project, "--executor=local", "--entry=train", f"--config={cfg}:{tiny}",
                    f"--workdir={workdir}", f"--xm_db_yaml_config_path={project / 'xm_db.yaml'}",
                    env_extra={"XLA_FLAGS": local.xla_flags(os.environ["XLA_FLAGS"], 2)},
                    timeout=400)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out[-6000:]
  assert "2/2 work unit(s) succeeded" in out
  losses = []
  for i, seed in enumerate((0, 1)):
    run = workdir / f"{i:02d}_seed={seed}"
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == seed and config["train"]["total_steps"] == 2
    assert config["data"]["world_dir"] == str(demo_world)
    assert "2 devices, mesh {'data': 1, 'fsdp': 2, 'tensor': 1}" in out
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2]
    losses.append(train_rows[-1]["train/loss"])
  assert losses[0] != losses[1]  # Different seeds: different init and data order.

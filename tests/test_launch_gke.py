"""TPU topology math, JobSet manifests validated against the Kubernetes API models and a JobSet schema,
and a local rehearsal of the pods' jax.distributed wiring (the pod script run by bash on 127.0.0.1)."""
import copy
import json
import math
import os
import pathlib
import subprocess
import sys
import types

import pytest
import yaml

from launch import local, tpu_topology
from launch.gke import jobset, schema

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKDIR = "gs://viit-bucket/runs/phase0"
MESH = {"data": 1, "fsdp": -1, "tensor": 1}


# ---------------------------------------------------------------------------------- topology math
@pytest.mark.parametrize("name,chips,cores,hosts,per_host,topology,label,machine", [
    ("v4-8", 4, 8, 1, 4, "2x2x1", "tpu-v4-podslice", "ct4p-hightpu-4t"),
    ("v4-32", 16, 32, 4, 4, "2x2x4", "tpu-v4-podslice", "ct4p-hightpu-4t"),
    ("v4-4096", 2048, 4096, 512, 4, "8x16x16", "tpu-v4-podslice", "ct4p-hightpu-4t"),
    ("v5p-8", 4, 8, 1, 4, "2x2x1", "tpu-v5p-slice", "ct5p-hightpu-4t"),
    ("v5p-128", 64, 128, 16, 4, "4x4x4", "tpu-v5p-slice", "ct5p-hightpu-4t"),
    ("v5p-12288", 6144, 12288, 1536, 4, "16x16x24", "tpu-v5p-slice", "ct5p-hightpu-4t"),
    ("v5litepod-1", 1, 1, 1, 1, "1x1", "tpu-v5-lite-podslice", "ct5lp-hightpu-1t"),
    ("v5litepod-8", 8, 8, 1, 8, "2x4", "tpu-v5-lite-podslice", "ct5lp-hightpu-8t"),
    ("v5litepod-16", 16, 16, 4, 4, "4x4", "tpu-v5-lite-podslice", "ct5lp-hightpu-4t"),
    ("v5litepod-128", 128, 128, 32, 4, "8x16", "tpu-v5-lite-podslice", "ct5lp-hightpu-4t"),
    ("v5litepod-256", 256, 256, 64, 4, "16x16", "tpu-v5-lite-podslice", "ct5lp-hightpu-4t"),
    ("v6e-4", 4, 4, 1, 4, "2x2", "tpu-v6e-slice", "ct6e-standard-4t"),
    ("v6e-256", 256, 256, 64, 4, "16x16", "tpu-v6e-slice", "ct6e-standard-4t"),
])
def test_slice_facts(name, chips, cores, hosts, per_host, topology, label, machine):
  t = tpu_topology.parse_slice(name)
  assert (t.chips, t.cores, t.hosts, t.chips_per_host, t.topology) == (
      chips, cores, hosts, per_host, topology)
  assert (t.gke_accelerator, t.machine_type) == (label, machine)
  assert t.hosts * t.chips_per_host == t.chips == t.devices
  dims = [int(d) for d in t.topology.split("x")]
  assert math.prod(dims) == t.chips


@pytest.mark.parametrize("name", ["v5p-7", "v5litepod-12", "v5litepod-512", "v4-4", "v7-8", "v5e-16",
                                  "v5p-16384", "tpu"])
def test_bad_slice_names_are_errors(name):
  with pytest.raises(ValueError):
    tpu_topology.parse_slice(name)


def test_unlisted_v5p_size_gets_cube_like_topology():
  t = tpu_topology.parse_slice("v5p-384")  # 192 chips: dims all multiples of 4, closest to a cube.
  assert t.topology == "4x4x12" and t.hosts == 48


def test_mesh_resolution_and_errors():
  assert tpu_topology.resolve_axes(MESH, 16) == {"data": 1, "fsdp": 16, "tensor": 1}
  assert tpu_topology.resolve_axes({"data": 2, "fsdp": -1, "tensor": 4}, 64) == {
      "data": 2, "fsdp": 8, "tensor": 4}
  assert tpu_topology.resolve_axes({"data": 4, "fsdp": 4, "tensor": 4}, 64)["fsdp"] == 4
  for bad in ({"data": -1, "fsdp": -1}, {"data": 3, "fsdp": -1}, {"data": 0, "fsdp": -1},
              {"data": 4, "fsdp": 2}):
    with pytest.raises(ValueError):
      tpu_topology.resolve_axes(bad, 16)


def test_multislice_plan_puts_data_on_dcn_and_matches_jax_hybrid_mesh():
  from jax.experimental import mesh_utils
  p = tpu_topology.plan("v5litepod-16", {"data": 2, "fsdp": -1, "tensor": 1}, num_slices=2,
                       batch_size=64)
  assert p.num_processes == 8 and p.num_devices == 32
  assert p.mesh.ici_shape == (1, 16, 1) and p.mesh.dcn_shape == (2, 1, 1)
  assert p.mesh.shape == (2, 16, 1)
  text = str(p)
  assert "v5litepod-16" in text and "(2, 16, 1)" in text and "8 per host" in text
  # The shapes are what jax's hybrid mesh takes: device descriptors of 2 slices x 16 chips (no TPU
  # here, so plain objects with the attributes mesh_utils reads), data axis = slice index.
  devices = [types.SimpleNamespace(id=i, slice_index=i // 16, process_index=i // 4,
                                   platform="cpu", device_kind="fake", coords=None,
                                   core_on_chip=0) for i in range(32)]
  mesh = mesh_utils.create_hybrid_device_mesh(p.mesh.ici_shape, p.mesh.dcn_shape, devices)
  assert mesh.shape == p.mesh.shape
  for s in range(2):
    assert {d.slice_index for d in mesh[s].ravel()} == {s}
  with pytest.raises(ValueError, match="not a mesh axis"):
    tpu_topology.plan("v5litepod-16", MESH, num_slices=2, dcn_axis="pipeline")
  # Pure FSDP (data=1) cannot put slices on the data axis: a clear error that says what to set.
  with pytest.raises(ValueError, match="mesh.data=2 with mesh.fsdp=-1"):
    tpu_topology.plan("v5litepod-16", MESH, num_slices=2)
  # data=-1 absorbs the slices too: 4 slices x 16 chips with fsdp=16 -> data 4 over DCN.
  p4 = tpu_topology.plan("v5litepod-16", {"data": -1, "fsdp": 16, "tensor": 1}, num_slices=4)
  assert p4.mesh.ici_shape == (1, 16, 1) and p4.mesh.dcn_shape == (4, 1, 1)


def test_plan_from_the_base_config_mesh():
  from configs import base
  config = base.get_config()
  p = tpu_topology.plan("v5p-128", dict(config.mesh), batch_size=config.train.batch_size * 8)
  assert p.mesh.mesh == {"data": 1, "fsdp": 64, "tensor": 1}
  assert p.num_processes == 16 and not p.warnings()
  bad = tpu_topology.plan("v5p-128", dict(config.mesh), batch_size=24)
  assert any("not divisible by 16 processes" in w for w in bad.warnings())
  # The config's mesh.dcn_axis picks the axis across slices; a --dcn_axis that disagrees is refused.
  multi = tpu_topology.plan("v5litepod-256", dict(base.get_config("mesh.data=2").mesh), 2)
  assert multi.mesh.dcn_shape == (2, 1, 1) and multi.mesh.ici_shape == (1, 256, 1)
  assert "(mesh.dcn_axis=data)" in str(multi)
  on_fsdp = tpu_topology.plan("v5litepod-256", dict(base.get_config("mesh.dcn_axis=fsdp").mesh), 2)
  assert on_fsdp.mesh.dcn == {"data": 1, "fsdp": 2, "tensor": 1}
  with pytest.raises(ValueError, match="disagrees with the config's mesh.dcn_axis='data'"):
    tpu_topology.plan("v5litepod-256", dict(config.mesh), 2, dcn_axis="fsdp")
  assert tpu_topology.parse_mesh_arg("data=2,fsdp=-1,tensor=1,dcn_axis=data") == {
      "data": 2, "fsdp": -1, "tensor": 1, "dcn_axis": "data"}
  assert tpu_topology.parse_slice("v5litepod-256").topology_name == "v5e:16x16"
  assert tpu_topology.parse_slice("v5p-128").topology_name == "v5p:4x4x4"


# ---------------------------------------------------------------------------------- manifests
def _docs(slice_name, num_slices=1, **kw):
  cmd = jobset.entry_command("train", "configs/demo_phase0.py:train.total_steps=10", WORKDIR)
  return jobset.build(name="viit-phase0", slice_name=slice_name, num_slices=num_slices,
                      image="us-docker.pkg.dev/proj/repo/viit:test", command=cmd, workdir=WORKDIR,
                      service_account="viit-ksa", **kw)


def _env(container):
  return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("slice_name,num_slices,hosts,per_host,topology,label", [
    ("v5litepod-16", 1, 4, 4, "4x4", "tpu-v5-lite-podslice"),
    ("v5litepod-256", 1, 64, 4, "16x16", "tpu-v5-lite-podslice"),
    ("v5p-128", 1, 16, 4, "4x4x4", "tpu-v5p-slice"),
    ("v5litepod-16", 2, 4, 4, "4x4", "tpu-v5-lite-podslice"),
])
def test_manifest_validates_and_carries_the_slice(slice_name, num_slices, hosts, per_host,
                                                  topology, label):
  docs = _docs(slice_name, num_slices)
  schema.validate(docs)
  # What `kubectl apply -f` reads is the YAML: it round-trips and validates the same.
  loaded = list(yaml.safe_load_all(jobset.to_yaml(docs)))
  assert loaded == docs
  schema.validate(loaded)

  service, js = jobset.find(docs, "Service"), jobset.find(docs, "JobSet")
  assert js["apiVersion"] == "jobset.x-k8s.io/v1alpha2"
  assert service["spec"]["clusterIP"] == "None"
  assert service["spec"]["selector"] == {"jobset.sigs.k8s.io/jobset-name": "viit-phase0"}
  assert js["spec"]["network"] == {"enableDNSHostnames": True, "subdomain": "viit-phase0",
                                   "publishNotReadyAddresses": True}
  [rj] = js["spec"]["replicatedJobs"]
  assert rj["replicas"] == num_slices
  job = rj["template"]["spec"]
  assert job["parallelism"] == job["completions"] == hosts
  assert job["completionMode"] == "Indexed" and job["backoffLimit"] == 0
  pod = job["template"]["spec"]
  assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": label,
                                 "cloud.google.com/gke-tpu-topology": topology}
  assert pod["serviceAccountName"] == "viit-ksa"
  [c] = pod["containers"]
  assert c["resources"]["limits"] == {"google.com/tpu": str(per_host)}
  env = _env(c)
  assert env["VIIT_COORDINATOR_ADDRESS"] == "viit-phase0-slice-0-0.viit-phase0:8476"
  assert env["VIIT_NUM_PROCESSES"] == str(hosts * num_slices)
  assert env["VIIT_HOSTS_PER_SLICE"] == str(hosts)
  assert "jobset.sigs.k8s.io/job-index" in env["JOBSET_JOB_INDEX"]["fieldRef"]["fieldPath"]
  assert ("MEGASCALE_NUM_SLICES" in env) == (num_slices > 1)
  if num_slices > 1:
    assert env["MEGASCALE_NUM_SLICES"] == str(num_slices)
    assert env["MEGASCALE_COORDINATOR_ADDRESS"] == "viit-phase0-slice-0-0.viit-phase0"
  assert c["command"][:2] == ["bash", "-c"]
  assert c["command"][2].rstrip().endswith(
      "exec python -m viit_jax.train "
      f"--config=configs/demo_phase0.py:train.total_steps=10 --workdir={WORKDIR}")


def _pod_spec(docs):
  return jobset.find(docs, "JobSet")["spec"]["replicatedJobs"][0]["template"]["spec"][
      "template"]["spec"]


@pytest.mark.parametrize("mutate,where", [
    (lambda d: _pod_spec(d).__setitem__("nodeSelecter", {"a": "b"}), "nodeSelecter"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["replicatedJobs"][0]["template"]["spec"]
     .__setitem__("parallelism", "4"), "parallelism"),
    (lambda d: _pod_spec(d)["containers"][0].pop("name"), "name"),
    (lambda d: _pod_spec(d)["containers"][0]["resources"].__setitem__("limit", {}), "limit"),
    (lambda d: jobset.find(d, "JobSet")["spec"].__setitem__("replicatedJob", []), "replicatedJob"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["replicatedJobs"][0].__setitem__("replicas", 0),
     "replicas"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["network"].__setitem__("enableDnsHostnames", True),
     "enableDnsHostnames"),
    (lambda d: jobset.find(d, "JobSet").__setitem__("apiVersion", "jobset.x-k8s.io/v1"),
     "apiVersion"),
    (lambda d: jobset.find(d, "Service")["spec"].__setitem__("clusterIp", "None"), "clusterIp"),
    (lambda d: jobset.find(d, "Service")["spec"]["ports"][0].__setitem__("port", "http"), "port"),
])
def test_validation_rejects_what_the_api_would(mutate, where):
  docs = _docs("v5litepod-16", 2)
  schema.validate(copy.deepcopy(docs))  # Valid before the mutation.
  mutate(docs)
  with pytest.raises(schema.ManifestError, match=where):
    schema.validate(docs)


def _job_spec(docs):
  return jobset.find(docs, "JobSet")["spec"]["replicatedJobs"][0]["template"]["spec"]


def test_preempted_exit_code_is_the_entry_points():
  from viit_jax import runtime
  assert jobset.PREEMPTED_EXIT_CODE == runtime.EXIT_PREEMPTED == 42


def test_multislice_v5e_256_jobset_restarts_on_preemption_and_reads_the_key_from_a_secret():
  """2 x v5litepod-256 of the OpenAI-compatible synthesis back-end's job: valid, preemption restarts
  for free (other failures up to maxRestarts), the API key only as a secretKeyRef."""
  workdir = "gs://viit-bucket/runs/synth"
  cmd = jobset.entry_command("synthesize", "configs/synthesize_openai.py:"
                             "openai.api_key_env=OPENAI_API_KEY", workdir)
  docs = jobset.build(name="viit-synth", slice_name="v5litepod-256", num_slices=2,
                      image="img:1", command=cmd, workdir=workdir, service_account="viit-ksa",
                      secret_env={"OPENAI_API_KEY": jobset.SecretKeyRef("llm-api", "key")})
  schema.validate(docs)
  loaded = list(yaml.safe_load_all(jobset.to_yaml(docs)))
  assert loaded == docs
  schema.validate(loaded)
  js = jobset.find(docs, "JobSet")
  assert js["spec"]["failurePolicy"] == {"maxRestarts": 10, "rules": [
      {"name": "preemption", "action": "RestartJobSetAndIgnoreMaxRestarts",
       "onJobFailureReasons": ["PodFailurePolicy"]},
      {"name": "otherFailures", "action": "RestartJobSet"}]}
  [rj] = js["spec"]["replicatedJobs"]
  assert rj["replicas"] == 2
  job = _job_spec(docs)
  assert job["backoffLimit"] == 0 and job["parallelism"] == job["completions"] == 64
  assert job["podFailurePolicy"] == {"rules": [
      {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
      {"action": "FailJob", "onExitCodes": {"containerName": "viit", "operator": "In",
                                            "values": [42]}}]}
  pod = _pod_spec(docs)
  assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] == 120
  [c] = pod["containers"]
  assert c["name"] == "viit"
  [key] = [e for e in c["env"] if e["name"] == "OPENAI_API_KEY"]
  assert key == {"name": "OPENAI_API_KEY",
                 "valueFrom": {"secretKeyRef": {"name": "llm-api", "key": "key"}}}
  env = _env(c)
  assert env["VIIT_NUM_PROCESSES"] == "128" and env["MEGASCALE_NUM_SLICES"] == "2"
  # Restart budget and grace period are parameters.
  custom = _docs("v5litepod-16", max_restarts=3, termination_grace_s=300)
  schema.validate(custom)
  assert jobset.find(custom, "JobSet")["spec"]["failurePolicy"]["maxRestarts"] == 3
  assert _pod_spec(custom)["terminationGracePeriodSeconds"] == 300


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MY_APIKEY", "HF_TOKEN", "DB_PASSWORD",
                                  "CLIENT_SECRET", "secret_value"])
def test_plain_env_that_looks_like_a_secret_is_refused(name):
  with pytest.raises(ValueError, match=f"env {name} looks like a secret.*--secret_env"):
    _docs("v5litepod-16", env={name: "sk-123"})


def test_secret_env_parsing_and_conflicts():
  assert jobset.parse_secret_env(["A_API_KEY=llm-api:key", "HF_TOKEN=hf.tokens:tok_1"]) == {
      "A_API_KEY": jobset.SecretKeyRef("llm-api", "key"),
      "HF_TOKEN": jobset.SecretKeyRef("hf.tokens", "tok_1")}
  for bad in ("A_API_KEY", "A_API_KEY=llm-api", "A_API_KEY=:key", "=s:k", "K=Bad_Name:key",
              "K=s:bad/key"):
    with pytest.raises(ValueError):
      jobset.parse_secret_env([bad])
  assert jobset.parse_env(["LIBTPU_INIT_ARGS=--a=1"]) == {"LIBTPU_INIT_ARGS": "--a=1"}
  with pytest.raises(ValueError, match="KEY=VALUE"):
    jobset.parse_env(["NOVALUE"])
  docs = _docs("v5litepod-16", env={"TOKENIZERS_PARALLELISM": "false"})  # Not a credential.
  schema.validate(docs)
  with pytest.raises(ValueError, match="both as a plain value and from a secret"):
    _docs("v5litepod-16", env={"X": "1"}, secret_env={"X": jobset.SecretKeyRef("s", "k")})
  with pytest.raises(ValueError, match="set by the launcher"):
    _docs("v5litepod-16", secret_env={"VIIT_PROCESS_ID": jobset.SecretKeyRef("s", "k")})


@pytest.mark.parametrize("mutate,where", [
    (lambda d: _job_spec(d)["podFailurePolicy"]["rules"][1]["onExitCodes"].__setitem__(
        "values", [0, 42]), "0 \\(success\\)"),
    (lambda d: _job_spec(d)["podFailurePolicy"]["rules"][1]["onExitCodes"].__setitem__(
        "values", [42, 1]), "unique and sorted"),
    (lambda d: _job_spec(d)["podFailurePolicy"]["rules"][1]["onExitCodes"].__setitem__(
        "containerName", "main"), "'main' is not a container"),
    (lambda d: _job_spec(d)["podFailurePolicy"]["rules"][0].__setitem__(
        "onExitCodes", {"operator": "In", "values": [1]}), "exactly one of"),
    (lambda d: _job_spec(d)["podFailurePolicy"]["rules"][0]["onPodConditions"][0].__setitem__(
        "status", "Yes"), "'Yes' is not one of"),
    (lambda d: _job_spec(d)["podFailurePolicy"]["rules"][0].__setitem__("action", "Restart"),
     "'Restart' is not one of"),
    (lambda d: _pod_spec(d).__setitem__("restartPolicy", "OnFailure"), "restartPolicy Never"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["failurePolicy"]["rules"][0].__setitem__(
        "onJobFailureReasons", ["Preempted"]), "onJobFailureReasons"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["failurePolicy"]["rules"][1].__setitem__(
        "name", "preemption"), "not unique"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["failurePolicy"]["rules"][1].__setitem__(
        "name", "other-failures"), "rules/1/name"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["failurePolicy"]["rules"][0].__setitem__(
        "targetReplicatedJobs", ["workers"]), "'workers' is not a replicated job"),
    (lambda d: jobset.find(d, "JobSet")["spec"]["failurePolicy"]["rules"][0].__setitem__(
        "action", "Restart"), "action"),
    (lambda d: _pod_spec(d)["containers"][0]["env"].append(
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "keys": "k"}}}),
     "V1SecretKeySelector"),
])
def test_validation_rejects_bad_failure_policies_and_secret_refs(mutate, where):
  docs = _docs("v5litepod-16", 2)
  schema.validate(copy.deepcopy(docs))
  mutate(docs)
  with pytest.raises(schema.ManifestError, match=where):
    schema.validate(docs)


def test_build_refuses_bad_inputs():
  with pytest.raises(ValueError, match="GCS"):
    jobset.build(name="x", slice_name="v5litepod-16", num_slices=1, image="i",
                 command=jobset.entry_command("train", "c.py", "/tmp/w"), workdir="/tmp/w")
  with pytest.raises(ValueError, match="DNS label"):
    _docs_named("Viit_Run")
  with pytest.raises(ValueError, match="63"):
    _docs_named("v" * 60)
  with pytest.raises(ValueError, match="set by the launcher"):
    _docs("v5litepod-16", env={"VIIT_PROCESS_ID": "3"})


def _docs_named(name):
  cmd = jobset.entry_command("train", "c.py", WORKDIR)
  return jobset.build(name=name, slice_name="v5litepod-16", num_slices=1, image="i", command=cmd,
                      workdir=WORKDIR)


def test_cli_writes_valid_yaml():
  proc = subprocess.run(
      [sys.executable, "-m", "launch.gke.jobset", "--slice=v5p-128", "--num_slices=2",
       "--image=img:1", "--entry=train", "--config=configs/demo_phase0.py",
       f"--workdir={WORKDIR}", "--validate", "--env=LIBTPU_INIT_ARGS=--xla_tpu_x=1",
       "--secret_env=MY_API_KEY=llm-api:key", "--max_restarts=4", "--termination_grace_s=90"],
      capture_output=True, text=True, cwd=str(REPO), timeout=60)
  assert proc.returncode == 0, proc.stderr
  docs = list(yaml.safe_load_all(proc.stdout))
  assert [d["kind"] for d in docs] == ["Service", "JobSet"]
  schema.validate(docs)
  env = _env(_pod_spec(docs)["containers"][0])
  assert env["VIIT_NUM_PROCESSES"] == "32" and env["LIBTPU_INIT_ARGS"] == "--xla_tpu_x=1"
  assert env["MY_API_KEY"] == {"secretKeyRef": {"name": "llm-api", "key": "key"}}
  assert jobset.find(docs, "JobSet")["spec"]["failurePolicy"]["maxRestarts"] == 4
  assert _pod_spec(docs)["terminationGracePeriodSeconds"] == 90
  assert "MY_API_KEY" in proc.stdout and "value: sk-" not in proc.stdout
  plain = subprocess.run([sys.executable, "-m", "launch.gke.jobset", "--slice=v5p-128",
                          "--image=i", "--config=c", f"--workdir={WORKDIR}",
                          "--env=MY_API_KEY=sk-123"],
                         capture_output=True, text=True, cwd=str(REPO), timeout=60)
  assert plain.returncode == 2 and "looks like a secret" in plain.stderr
  assert "sk-123" not in plain.stdout
  bad = subprocess.run([sys.executable, "-m", "launch.gke.jobset", "--slice=v5p-7", "--image=i",
                        "--config=c", f"--workdir={WORKDIR}"],
                       capture_output=True, text=True, cwd=str(REPO), timeout=60)
  assert bad.returncode == 2 and "v5p-7" in bad.stderr


# ---------------------------------------------------------------------------------- pod rehearsal
_POD_PROGRAM = r"""
import json, os, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(os.environ["VIIT_COORDINATOR_ADDRESS"],
                           int(os.environ["VIIT_NUM_PROCESSES"]), int(os.environ["VIIT_PROCESS_ID"]))
from jax.experimental import multihost_utils
import numpy as np
ids = multihost_utils.process_allgather(np.array([jax.process_index()], np.int32))
print("POD " + json.dumps({"pid": jax.process_index(), "count": jax.process_count(),
      "slice": os.environ["MEGASCALE_SLICE_ID"], "argv": sys.argv[1:],
      "ids": np.asarray(ids).ravel().tolist()}), flush=True)
jax.distributed.shutdown()
"""


def test_pod_script_wires_jax_distributed_across_slices_and_hosts(tmp_path):
  """Runs every pod of a 2-slice v5p-16 JobSet (2 slices x 2 hosts) as a local process: the env is
  taken from the manifest (fieldRefs resolved the way JobSet/Kubernetes fill them in), the container
  command is run by bash as written, only the coordinator host is swapped for 127.0.0.1."""
  cmd = [sys.executable, "-c", _POD_PROGRAM, "--config=configs/demo_phase0.py",
         f"--workdir={WORKDIR}"]
  docs = jobset.build(name="rehearsal", slice_name="v5p-16", num_slices=2, image="i", command=cmd,
                      workdir=WORKDIR)
  schema.validate(docs)
  js = jobset.find(docs, "JobSet")
  [rj] = js["spec"]["replicatedJobs"]
  [container] = rj["template"]["spec"]["template"]["spec"]["containers"]
  port = local.free_port()
  procs = []
  for slice_index in range(rj["replicas"]):
    for host in range(rj["template"]["spec"]["completions"]):
      annotations = {"jobset.sigs.k8s.io/job-index": str(slice_index),
                     "batch.kubernetes.io/job-completion-index": str(host)}
      env = {k: v for k, v in os.environ.items() if not k.startswith(("VIIT_", "MEGASCALE_"))}
      env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=local.xla_flags(os.environ["XLA_FLAGS"], 1))
      for e in container["env"]:
        if "value" in e:
          env[e["name"]] = e["value"]
        else:
          path = e["valueFrom"]["fieldRef"]["fieldPath"]
          env[e["name"]] = annotations[path.split("['")[1].rstrip("']")]
      host_name = env["VIIT_COORDINATOR_ADDRESS"].rsplit(":", 1)[0]
      assert host_name == "rehearsal-slice-0-0.rehearsal"
      env["VIIT_COORDINATOR_ADDRESS"] = f"127.0.0.1:{port}"
      procs.append(subprocess.Popen(container["command"], env=env, cwd=str(tmp_path),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=120)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(outs)
  pods = [json.loads(l.split("POD ", 1)[1]) for o in outs for l in o.splitlines()
          if l.startswith("POD ")]
  assert sorted(p["pid"] for p in pods) == [0, 1, 2, 3]
  assert all(p["count"] == 4 and p["ids"] == [0, 1, 2, 3] for p in pods)
  # Process ids are slice-major: slice s holds processes 2s, 2s+1.
  assert {(p["pid"], p["slice"]) for p in pods} == {(0, "0"), (1, "0"), (2, "1"), (3, "1")}
  assert all(p["argv"] == ["--config=configs/demo_phase0.py", f"--workdir={WORKDIR}"] for p in pods)
  assert "[viit] process 3/4 coordinator 127.0.0.1" in "".join(outs)


def test_dockerfile_copies_what_the_repository_has():
  """No Docker engine here: check the Dockerfile's inputs exist and the pod command fits the image."""
  dockerfile = REPO / "launch" / "gke" / "Dockerfile"
  lines = [l.strip() for l in dockerfile.read_text().splitlines()
           if l.strip() and not l.strip().startswith("#")]
  assert lines[0].startswith("FROM python:3.11")
  copies = [l.split()[1:-1] for l in lines if l.startswith("COPY ")]
  assert copies, "no COPY lines"
  for sources in copies:
    for src in sources:
      assert (REPO / src).exists(), f"Dockerfile copies {src}, which the repository lacks"
  assert any("jax[tpu]" in l for l in lines)
  assert "WORKDIR /app" in lines
  # What the pods run: the entry points, their configs (relative to /app) and the data code.
  for package in ("viit_jax", "configs", "data", "launch"):
    assert [package] in copies, package
  assert (REPO / "launch" / "gke" / "Dockerfile.dockerignore").exists()

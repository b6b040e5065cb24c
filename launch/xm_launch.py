"""XManager launcher: any viit_jax entry point + config, here or on Cloud TPU, with sweeps.

  # Here, one work unit per sweep point, each N local processes (launch/local.py) if asked:
  python launch/xm_launch.py --executor=local --entry=train \\
      --config=configs/demo_phase0.py:train.total_steps=20 --workdir=runs/sweep \\
      [--num_processes=2 --devices_per_process=2] [--parallel]

  # GKE (JobSet per sweep point, see launch/gke/jobset.py); --dry_run prints/writes manifests only:
  python launch/xm_launch.py --executor=gke --slice=v5litepod-16 --num_slices=1 --image=IMAGE \\
      --entry=train --config=configs/<x>.py --workdir=gs://BUCKET/runs/x [--dry_run]

  # Vertex AI custom job per sweep point (TPU v5e / v6e slices):
  python launch/xm_launch.py --executor=vertex --slice=v5litepod-16 --image=IMAGE \\
      --project=PROJECT --region=us-central1 --config=... --workdir=gs://BUCKET/runs/x [--dry_run]

Restarts and secrets (gke, vertex): preempted jobs restart by default and resume from the workdir's
checkpoint (GKE: a JobSet failure policy that restarts on preemption without using up
--max_restarts, see launch/gke/jobset.py; Vertex: `scheduling.restartJobOnWorkerRestart`). API keys
never travel as plain values: `--env` refuses names like *_API_KEY, *_TOKEN, *SECRET*, *PASSWORD*;
`--secret_env NAME=REF` reads them from a Kubernetes Secret (gke, REF = secret:key) or Secret
Manager (vertex, REF = projects/P/secrets/S/versions/V, or S[:V] with --project). A config that
reads a key from the environment (any `*api_key_env` field, e.g. `config.openai.api_key_env` of
the OpenAI-compatible synthesis back-end) must get that variable through --secret_env.

Sweeps: if the config file defines `sweep() -> list[dict[str, value]]`, each dict is one work unit;
its `dotted.key: value` pairs are merged into the `:k=v` argument of `--config` (the same typed
overrides `get_config(arg)` applies, so a typo fails before anything starts), and each point gets its
own workdir `<workdir>/<NN>_<overrides>`. `--nosweep` runs the config once. Flags after `--` go to the
entry point unchanged. The launch plan (slice, hosts, processes, the config mesh on ICI/DCN) is
printed before anything is launched.

Executors:
  local   an XManager experiment (`xm_local`, sqlite metadata in ~/.xmanager unless
          --xm_db_yaml_config_path) whose work units are `xm.Binary` jobs of this Python
          interpreter: no Docker, no Bazel. Work units run one after another unless --parallel.
  gke     a JobSet manifest per point (+ its headless Service), applied with the `kubernetes`
          client (CustomObjectsApi) unless --dry_run. XManager's own Kubernetes executor is not used:
          it builds single-pod Jobs without TPU slice node selectors, `google.com/tpu` requests or
          multi-host wiring.
  vertex  a Vertex AI CustomJob per point (`google.cloud.aiplatform_v1` types, which XManager's
          Vertex support uses too), submitted with JobServiceClient unless --dry_run. XManager
          0.8's Vertex executor only knows TPU v2/v3, so the TPU machine spec is built here.
          A CustomJob's container env holds plain values only, so secrets are fetched from Secret
          Manager by the container itself: its command becomes `bash -c` that reads each
          --secret_env with the job's service account (metadata-server token, Secret Manager
          `versions/*:access`) into its variable, then execs the entry point.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib.util
import json
import os
import pathlib
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

if __package__ in (None, ""):  # Run as `python launch/xm_launch.py`: make the repo importable.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from launch import tpu_topology  # noqa: E402
from launch.gke import jobset  # noqa: E402

try:  # Defines XManager's own flags (--xm_db_yaml_config_path, ...) before absl parses argv.
  from xmanager import xm_flags  # noqa: E402,F401
except ImportError:  # pragma: no cover - the [launch] extra is not installed: gke/vertex dry runs.
  xm_flags = None

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCAL_PY = REPO / "launch" / "local.py"

_EXECUTOR = flags.DEFINE_enum("executor", "local", ["local", "gke", "vertex"], "Where to run.")
_ENTRY = flags.DEFINE_string("entry", "train", "viit_jax.<entry> module (or a dotted module path).")
_CONFIG = flags.DEFINE_string("config", None, "configs/<x>.py[:key=value,...]", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (gs://... for gke/vertex).",
                               required=True)
_SWEEP = flags.DEFINE_bool("sweep", True, "Use the config file's sweep() if it has one.")
_TITLE = flags.DEFINE_string("title", None, "Experiment title (default: config file + entry).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "gke/vertex: build and print the job specs only.")
_SPEC_DIR = flags.DEFINE_string("spec_dir", None, "gke/vertex: also write each job spec here.")
# local
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "local: processes per work unit.")
_DEVICES = flags.DEFINE_integer("devices_per_process", None,
                                "local: fake CPU devices per process (sets JAX_PLATFORMS=cpu).")
_PARALLEL = flags.DEFINE_bool("parallel", False, "local: run all work units at once.")
# cloud
_SLICE = flags.DEFINE_string("slice", None, "gke/vertex: TPU slice, e.g. v5litepod-16, v5p-128.")
_NUM_SLICES = flags.DEFINE_integer("num_slices", 1, "gke: slices (Multislice over DCN).")
_DCN_AXIS = flags.DEFINE_string(
    "dcn_axis", None, "Mesh axis that spans slices (default: the config's mesh.dcn_axis, else "
    "data); must agree with the config, whose value the job uses.")
_IMAGE = flags.DEFINE_string("image", None, "gke/vertex: container image (launch/gke/Dockerfile).")
_NAME = flags.DEFINE_string("name", None, "gke: JobSet name prefix (default viit-<entry>).")
_NAMESPACE = flags.DEFINE_string("namespace", "default", "gke: Kubernetes namespace.")
_SERVICE_ACCOUNT = flags.DEFINE_string("service_account", None,
                                       "gke: Kubernetes SA; vertex: GCP service account email.")
_MAX_RESTARTS = flags.DEFINE_integer(
    "max_restarts", jobset.DEFAULT_MAX_RESTARTS,
    "gke: JobSet restarts after failures other than preemption (preemption restarts are free).")
_GRACE = flags.DEFINE_integer(
    "termination_grace_s", jobset.DEFAULT_TERMINATION_GRACE_S,
    "gke: pod terminationGracePeriodSeconds, SIGTERM -> SIGKILL: time to save and exit.")
_ENV = flags.DEFINE_multi_string("env", [], "gke/vertex: KEY=VALUE for the job; no credentials.")
_SECRET_ENV = flags.DEFINE_multi_string(
    "secret_env", [], "gke: NAME=secret:key (a Kubernetes Secret); vertex: "
    "NAME=projects/P/secrets/S/versions/V or NAME=S[:V] (Secret Manager, with --project).")
_VERTEX_STRATEGY = flags.DEFINE_enum(
    "vertex_strategy", None, ["STANDARD", "SPOT", "FLEX_START"],
    "vertex: scheduling.strategy (default: Vertex's, on-demand).")
_VERTEX_TIMEOUT_H = flags.DEFINE_float(
    "vertex_timeout_h", None, "vertex: scheduling.timeout in hours (default: Vertex's, 7 days).")
_PROJECT = flags.DEFINE_string("project", None, "vertex: GCP project.")
_REGION = flags.DEFINE_string("region", "us-central1", "vertex: region.")


# ------------------------------------------------------------------------------------ config + sweep
@dataclasses.dataclass(frozen=True)
class ConfigSpec:
  """`--config=<path>:<arg>` split, and the loaded module."""
  path: str
  arg: str
  module: Any

  def with_arg(self, arg: str) -> str:
    return f"{self.path}:{arg}" if arg else self.path


def load_config_spec(spec: str) -> ConfigSpec:
  """Imports the config file of `configs/<x>.py[:arg]`; FileNotFoundError if it is missing."""
  path, _, arg = spec.partition(":")
  file = pathlib.Path(path)
  if not file.is_file():
    raise FileNotFoundError(f"Config file {path!r} not found (relative to {os.getcwd()})")
  name = "viit_launch_config_" + re.sub(r"\W", "_", str(file.resolve()))
  module_spec = importlib.util.spec_from_file_location(name, file)
  assert module_spec is not None and module_spec.loader is not None
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(arg)")
  return ConfigSpec(path=path, arg=arg, module=module)


def format_value(value: Any) -> str:
  """A sweep value as `get_config`'s `key=value` syntax reads it back."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (int, float)):
    return repr(value)
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  if isinstance(value, str):
    if any(c in value for c in ",()[]{}'\""):
      if "'" in value and '"' in value:
        raise ValueError(f"Sweep value {value!r} has both quote characters")
      return repr(value)
    return value
  raise ValueError(f"Sweep value {value!r} of type {type(value).__name__} is not int, float, bool, "
                   "str, tuple or list")


def merge_arg(base_arg: str, overrides: Mapping[str, Any]) -> str:
  """`base_arg` (`k=v,...`) with `overrides` replacing or adding keys, order kept."""
  from viit_jax import config_lib
  merged = config_lib.parse_arg(base_arg)
  for key, value in overrides.items():
    merged[key] = format_value(value)
  return ",".join(f"{k}={v}" for k, v in merged.items())


def _slug(overrides: Mapping[str, Any]) -> str:
  """`{'optim.lr': 0.001, 'x': 'a,b'}` -> `optim.lr=0.001_x=a-b` (a directory-name-safe summary)."""
  def clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")
  return "_".join(f"{clean(k)}={clean(str(v))}" for k, v in overrides.items())[:80]


@dataclasses.dataclass(frozen=True)
class SweepPoint:
  """One work unit: its overrides, the full `--config` value, its workdir."""
  index: int
  overrides: dict[str, Any]
  config: str
  workdir: str
  mesh: dict[str, int] | None  # Axis sizes of the config's mesh (None: the entry has no mesh).
  batch_size: int | None
  dcn_axis: str | None = None  # The config's mesh.dcn_axis, if it has one.
  secret_envs: tuple[str, ...] = ()  # Env vars the config reads credentials from.


def secret_env_names(config: Any) -> tuple[str, ...]:
  """Env var names a config reads credentials from: the values of its `*api_key_env` fields (e.g.
  config.openai.api_key_env of the OpenAI-compatible synthesis back-end); '' = none."""
  names: list[str] = []

  def walk(node: Mapping[str, Any]) -> None:
    for key, value in node.items():
      if isinstance(value, Mapping):
        walk(value)
      elif key.endswith("api_key_env") and isinstance(value, str) and value:
        names.append(value)

  walk(config.to_dict() if hasattr(config, "to_dict") else config)
  return tuple(dict.fromkeys(names))


def sweep_points(spec: ConfigSpec, workdir: str, use_sweep: bool) -> list[SweepPoint]:
  """The work units of a launch; every point's config is built (validated) here, before launch."""
  raw = spec.module.sweep() if use_sweep and hasattr(spec.module, "sweep") else [{}]
  if not raw or not all(isinstance(p, Mapping) for p in raw):
    raise ValueError(f"{spec.path}: sweep() must return a non-empty list of dicts, got {raw!r}")
  points = []
  for i, overrides in enumerate(raw):
    arg = merge_arg(spec.arg, overrides)
    config = spec.module.get_config(arg or None)  # Raises on unknown keys / bad values.
    # Entry points without a device mesh (e.g. synthesis) have no `mesh` section.
    mesh, dcn_axis = (tpu_topology.split_mesh_config(dict(config.mesh)) if "mesh" in config
                      else (None, None))
    batch = int(config.train.batch_size) if "train" in config and "batch_size" in config.train \
        else None
    sub = workdir if len(raw) == 1 else _join(workdir, f"{i:02d}_{_slug(overrides)}".rstrip("_"))
    points.append(SweepPoint(index=i, overrides=dict(overrides), config=spec.with_arg(arg),
                             workdir=sub, mesh=mesh, batch_size=batch, dcn_axis=dcn_axis,
                             secret_envs=secret_env_names(config)))
  return points


def _join(base: str, name: str) -> str:
  return f"{base.rstrip('/')}/{name}" if base.startswith("gs://") else os.path.join(base, name)


def entry_module(entry: str) -> str:
  """`train` -> `viit_jax.train`; a dotted path is used as is."""
  return entry if "." in entry else f"viit_jax.{entry}"


def entry_argv(python: str, entry: str, point: SweepPoint, extra: Sequence[str]) -> list[str]:
  return [python, "-m", entry_module(entry), f"--config={point.config}",
          f"--workdir={point.workdir}", *extra]


# ------------------------------------------------------------------------------------------ local
def local_command(point: SweepPoint, entry: str, extra: Sequence[str], num_processes: int,
                  devices_per_process: int | None) -> list[str]:
  """The argv of one local work unit (through launch/local.py when it needs several processes)."""
  cmd = entry_argv(sys.executable, entry, point, extra)
  if num_processes == 1 and devices_per_process is None:
    return cmd
  wrapper = [sys.executable, str(LOCAL_PY), f"--num_processes={num_processes}"]
  if devices_per_process is not None:
    wrapper.append(f"--devices_per_process={devices_per_process}")
  return [*wrapper, "--", *cmd]


def local_plan(point: SweepPoint, num_processes: int, devices_per_process: int | None) -> str:
  lines = [f"local          {num_processes} process(es) x "
           f"{devices_per_process or 'default'} device(s)"]
  if point.mesh is not None and devices_per_process is not None:
    resolved = tpu_topology.resolve_axes(point.mesh, num_processes * devices_per_process)
    lines.append(f"mesh           {resolved}")
  return "\n".join(lines)


async def run_local_experiment(points: Sequence[SweepPoint], title: str, entry: str,
                               extra: Sequence[str], num_processes: int,
                               devices_per_process: int | None, parallel: bool) -> int:
  """One xm_local experiment, one work unit per point; returns the number of failed units."""
  from xmanager import xm, xm_local  # The [launch] extra.

  env = {"PYTHONPATH": os.pathsep.join(
      [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
  failed = 0
  try:
    async with xm_local.create_experiment(experiment_title=title) as experiment:
      print(f"[xm_launch] experiment {experiment.experiment_id}: {title}", flush=True)
      units = []
      for point in points:
        cmd = local_command(point, entry, extra, num_processes, devices_per_process)
        [executable] = experiment.package([xm.binary(
            executor_spec=xm_local.LocalSpec(), path=cmd[0], args=cmd[1:], env_vars=env)])
        unit = await experiment.add(xm.Job(executable=executable, executor=xm_local.Local(),
                                           name=f"wu{point.index}"))
        print(f"[xm_launch] work unit {unit.work_unit_id}: {point.config} -> {point.workdir}",
              flush=True)
        if parallel:
          units.append((point, unit))
          continue
        failed += await _wait(point, unit)
      for point, unit in units:
        failed += await _wait(point, unit)
  except RuntimeError:
    # xm_local re-raises a failed local job when the experiment closes; it was reported above.
    if not failed:
      raise
  return failed


async def _wait(point: SweepPoint, unit: Any) -> int:
  from xmanager import xm
  try:
    await unit.wait_until_complete()
  except xm.ExperimentUnitError as e:
    print(f"[xm_launch] work unit {unit.work_unit_id} ({point.config}) FAILED: {e}", flush=True)
    return 1
  print(f"[xm_launch] work unit {unit.work_unit_id} done", flush=True)
  return 0


def write_sweep_index(points: Sequence[SweepPoint], workdir: str) -> None:
  """`<workdir>/sweep.json`: which work unit ran which config in which directory."""
  os.makedirs(workdir, exist_ok=True)
  index = [{"index": p.index, "overrides": p.overrides, "config": p.config, "workdir": p.workdir}
           for p in points]
  tmp = os.path.join(workdir, "sweep.json.tmp")
  with open(tmp, "w") as f:
    json.dump(index, f, indent=1, default=repr)
  os.replace(tmp, os.path.join(workdir, "sweep.json"))


# ------------------------------------------------------------------------------------------ cloud
_GKE_SECRET_HOW = "put it in a Kubernetes Secret and pass --secret_env NAME=<secret>:<key>"
_VERTEX_SECRET_HOW = ("put it in Secret Manager and pass --secret_env "
                      "NAME=projects/P/secrets/S/versions/V")


def check_secrets_given(points: Sequence[SweepPoint], given: Sequence[str], how: str) -> None:
  """Every credential env var a point's config reads must come from a secret (`given`)."""
  for point in points:
    missing = [n for n in point.secret_envs if n not in given]
    if missing:
      raise ValueError(f"{point.config} reads credentials from env {missing}: pass them from a "
                       f"secret, {how}")


def gke_manifests(points: Sequence[SweepPoint], *, entry: str, extra: Sequence[str],
                  slice_name: str, num_slices: int, image: str, name: str, namespace: str,
                  service_account: str | None, max_restarts: int = jobset.DEFAULT_MAX_RESTARTS,
                  env: Mapping[str, str] | None = None,
                  secret_env: Mapping[str, jobset.SecretKeyRef] | None = None,
                  termination_grace_s: int = jobset.DEFAULT_TERMINATION_GRACE_S,
                  ) -> list[list[dict[str, Any]]]:
  """One [Service, JobSet] manifest per sweep point; credentials only from Kubernetes Secrets."""
  jobset.check_plain_env(env or {}, _GKE_SECRET_HOW)
  check_secrets_given(points, list(secret_env or {}),
                      "e.g. --secret_env NAME=<kubernetes secret>:<key>")
  out = []
  for point in points:
    jobset_name = name if len(points) == 1 else f"{name}-{point.index}"
    command = entry_argv("python", entry, point, extra)
    out.append(jobset.build(name=jobset_name, slice_name=slice_name, num_slices=num_slices,
                            image=image, command=command, workdir=point.workdir,
                            namespace=namespace, service_account=service_account,
                            max_restarts=max_restarts, env=env, secret_env=secret_env,
                            termination_grace_s=termination_grace_s))
  return out


def apply_manifest(docs: Sequence[Mapping[str, Any]]) -> None:
  """Creates the Service and JobSet in the current kubectl context's cluster."""
  from kubernetes import client, config as k8s_config
  try:
    k8s_config.load_incluster_config()
  except k8s_config.ConfigException:
    k8s_config.load_kube_config()
  for doc in docs:
    namespace = doc["metadata"]["namespace"]
    if doc["kind"] == "Service":
      client.CoreV1Api().create_namespaced_service(namespace=namespace, body=doc)
    else:
      group, version = doc["apiVersion"].split("/")
      client.CustomObjectsApi().create_namespaced_custom_object(
          group=group, version=version, namespace=namespace, plural="jobsets", body=doc)
    print(f"[xm_launch] created {doc['kind']} {namespace}/{doc['metadata']['name']}", flush=True)


# TPU slices Vertex AI custom training offers (its docs: v2, v3, v5e, v6e); machine type + topology.
_VERTEX_GENERATIONS = ("v5e", "v6e")


_SECRET_VERSION = re.compile(r"^projects/[^/]+/secrets/[A-Za-z0-9_-]+/versions/[A-Za-z0-9_-]+$")
# Run by the container (python only, no extra packages): prints the payload of the Secret Manager
# secret version argv[1], read with the job's service account (token from the metadata server).
# GCE_METADATA_HOST is the metadata host override Google's auth libraries honour.
_FETCH_SECRET_PY = (  # Double quotes only: it sits in single quotes in the bash script.
    'import base64, json, os, sys, urllib.request as u\n'
    'host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")\n'
    'req = u.Request(f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token",'
    ' headers={"Metadata-Flavor": "Google"})\n'
    'token = json.load(u.urlopen(req, timeout=30))["access_token"]\n'
    'api = os.environ.get("VIIT_SECRET_MANAGER_ENDPOINT", "https://secretmanager.googleapis.com")\n'
    'req = u.Request(f"{api}/v1/{sys.argv[1]}:access",'
    ' headers={"Authorization": "Bearer " + token})\n'
    'data = json.load(u.urlopen(req, timeout=30))["payload"]["data"]\n'
    'sys.stdout.write(base64.b64decode(data).decode())\n')


def vertex_secret_version(ref: str, project: str | None) -> str:
  """`projects/P/secrets/S/versions/V` as is, or `S[:V]` (V defaults to latest) in `project`."""
  if ref.startswith("projects/"):
    if not _SECRET_VERSION.match(ref):
      raise ValueError(f"Secret Manager version {ref!r} is not projects/P/secrets/S/versions/V")
    return ref
  secret, _, version = ref.partition(":")
  if not project:
    raise ValueError(f"Secret {ref!r}: give --project or the full projects/P/secrets/S/versions/V")
  full = f"projects/{project}/secrets/{secret}/versions/{version or 'latest'}"
  if not _SECRET_VERSION.match(full):
    raise ValueError(f"Secret {ref!r} is not SECRET[:VERSION] (letters, digits, '-', '_')")
  return full


def parse_vertex_secret_env(items: Sequence[str], project: str | None) -> dict[str, str]:
  """`["NAME=REF", ...]` -> {NAME: Secret Manager version resource}."""
  out = {}
  for item in items:
    name, sep, ref = item.partition("=")
    if not sep or not name or not ref:
      raise ValueError(f"--secret_env {item!r} is not NAME=projects/P/secrets/S/versions/V or "
                       "NAME=SECRET[:VERSION]")
    out[name] = vertex_secret_version(ref, project)
  return out


def vertex_container_script(command: Sequence[str], secret_env: Mapping[str, str]) -> str:
  """The `bash -c` script of a Vertex container: each secret into its env var, then exec."""
  lines = ["set -eu"]
  for name, version in secret_env.items():
    # An assignment alone (no `export` on the same line) fails the script if the fetch fails.
    lines += [f"{name}=$(python -c {shlex.quote(_FETCH_SECRET_PY)} {shlex.quote(version)})",
              f"export {name}"]
  lines.append(f"exec {shlex.join(command)}")
  return "\n".join(lines) + "\n"


def vertex_custom_job(point: SweepPoint, *, entry: str, extra: Sequence[str], slice_name: str,
                      image: str, display_name: str, service_account: str | None,
                      env: Mapping[str, str] | None = None,
                      secret_env: Mapping[str, str] | None = None,
                      strategy: str | None = None,
                      timeout: datetime.timedelta | None = None) -> Any:
  """A `google.cloud.aiplatform_v1.CustomJob` running `point` on one TPU slice.

  Restarts on preemption: `scheduling.restartJobOnWorkerRestart` restarts the whole job when a
  worker restarts (a preempted or maintained TPU VM), and the entry point resumes from the
  workdir's checkpoint. `env` holds plain values (credential-like names refused); `secret_env`
  maps env names to Secret Manager versions (projects/P/secrets/S/versions/V) that the container
  reads at start with the job's service account (which needs roles/secretmanager.secretAccessor).
  """
  from google.cloud import aiplatform_v1 as aip  # Installed with xmanager (the [launch] extra).
  tpu = tpu_topology.parse_slice(slice_name)
  if tpu.generation not in _VERTEX_GENERATIONS:
    raise ValueError(f"{slice_name}: Vertex AI custom training offers TPU "
                     f"{'/'.join(_VERTEX_GENERATIONS)} slices here; run {tpu.generation} on GKE "
                     "(--executor=gke)")
  if not point.workdir.startswith("gs://"):
    raise ValueError(f"workdir {point.workdir!r} must be on GCS (gs://...)")
  env, secret_env = dict(env or {}), dict(secret_env or {})
  jobset.check_plain_env(env, _VERTEX_SECRET_HOW)
  launcher_env = {"VIIT_COORDINATOR_ADDRESS"}
  for name in (*env, *secret_env):
    if name in launcher_env:
      raise ValueError(f"env {name} is set by the launcher")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
      raise ValueError(f"env {name!r} is not a valid environment variable name")
  both = sorted(set(env) & set(secret_env))
  if both:
    raise ValueError(f"env {both} given both as a plain value and from a secret")
  env_vars = [aip.EnvVar(name=k, value=str(v)) for k, v in env.items()]
  if tpu.multi_host:
    # Cloud TPU VMs: jax.distributed.initialize() with no arguments finds its peers itself.
    env_vars.append(aip.EnvVar(name="VIIT_COORDINATOR_ADDRESS", value="auto"))
  command = entry_argv("python", entry, point, extra)
  if secret_env:
    command = ["bash", "-c", vertex_container_script(command, secret_env)]
  scheduling = aip.Scheduling(restart_job_on_worker_restart=True)
  if strategy:
    scheduling.strategy = aip.Scheduling.Strategy[strategy]
  if timeout is not None:
    scheduling.timeout = timeout
  return aip.CustomJob(
      display_name=display_name,
      job_spec=aip.CustomJobSpec(
          worker_pool_specs=[aip.WorkerPoolSpec(
              machine_spec=aip.MachineSpec(machine_type=tpu.machine_type,
                                           tpu_topology=tpu.topology),
              replica_count=1,
              container_spec=aip.ContainerSpec(image_uri=image, command=command, env=env_vars),
          )],
          scheduling=scheduling,
          base_output_directory=aip.GcsDestination(output_uri_prefix=point.workdir),
          service_account=service_account or "",
      ))


def submit_vertex(job: Any, project: str, region: str) -> str:
  from google.cloud import aiplatform_v1 as aip
  client = aip.JobServiceClient(client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"})
  created = client.create_custom_job(parent=f"projects/{project}/locations/{region}",
                                     custom_job=job)
  return created.name


# ------------------------------------------------------------------------------------------- main
def _write_spec(spec_dir: str | None, name: str, text: str) -> None:
  if spec_dir:
    os.makedirs(spec_dir, exist_ok=True)
    with open(os.path.join(spec_dir, name), "w") as f:
      f.write(text)


def main(argv: Sequence[str]) -> int:
  try:
    return launch(list(argv[1:]))
  except (ValueError, FileNotFoundError) as e:  # Bad config, sweep, slice or workdir: say which.
    print(f"error: {e}", file=sys.stderr)
    return 2


def launch(extra: list[str]) -> int:
  """Builds the work units from the flags and runs or submits them; returns the exit code."""
  spec = load_config_spec(_CONFIG.value)
  points = sweep_points(spec, _WORKDIR.value, _SWEEP.value)
  title = _TITLE.value or f"{pathlib.Path(spec.path).stem}:{_ENTRY.value}"
  print(f"[xm_launch] {len(points)} work unit(s) of {entry_module(_ENTRY.value)} "
        f"({_EXECUTOR.value})", flush=True)

  if _EXECUTOR.value == "local":
    print(local_plan(points[0], _NUM_PROCESSES.value, _DEVICES.value), flush=True)
    write_sweep_index(points, _WORKDIR.value)
    failed = asyncio.run(run_local_experiment(
        points, title, _ENTRY.value, extra, _NUM_PROCESSES.value, _DEVICES.value,
        _PARALLEL.value))
    print(f"[xm_launch] {len(points) - failed}/{len(points)} work unit(s) succeeded", flush=True)
    return 1 if failed else 0

  if not _SLICE.value or not _IMAGE.value:
    raise app.UsageError(f"--executor={_EXECUTOR.value} needs --slice and --image")
  for point in points:
    if point.mesh is not None:
      mesh = {**point.mesh, tpu_topology.DCN_AXIS_KEY: point.dcn_axis} if point.dcn_axis \
          else point.mesh
      print(tpu_topology.plan(_SLICE.value, mesh, _NUM_SLICES.value, _DCN_AXIS.value,
                              point.batch_size), flush=True)
      break
  else:
    tpu = tpu_topology.parse_slice(_SLICE.value)
    print(f"slice          {tpu.name}: {tpu.hosts} host(s) x {tpu.chips_per_host} chips "
          "(config has no mesh)", flush=True)
  name = _NAME.value or f"viit-{_ENTRY.value.replace('_', '-').replace('.', '-')}"
  env = jobset.parse_env(_ENV.value)

  if _EXECUTOR.value == "gke":
    manifests = gke_manifests(points, entry=_ENTRY.value, extra=extra, slice_name=_SLICE.value,
                              num_slices=_NUM_SLICES.value, image=_IMAGE.value, name=name,
                              namespace=_NAMESPACE.value,
                              service_account=_SERVICE_ACCOUNT.value,
                              max_restarts=_MAX_RESTARTS.value, env=env,
                              secret_env=jobset.parse_secret_env(_SECRET_ENV.value),
                              termination_grace_s=_GRACE.value)
    for point, docs in zip(points, manifests):
      text = jobset.to_yaml(docs)
      _write_spec(_SPEC_DIR.value, f"jobset_{point.index:02d}.yaml", text)
      if _DRY_RUN.value:
        sys.stdout.write(text + ("---\n" if point is not points[-1] else ""))
      else:
        apply_manifest(docs)
    return 0

  if _NUM_SLICES.value != 1:
    raise app.UsageError("--executor=vertex runs one slice per job; use gke for Multislice")
  if not _DRY_RUN.value and not _PROJECT.value:
    raise app.UsageError("--executor=vertex needs --project (or --dry_run)")
  from google.cloud import aiplatform_v1 as aip
  jobset.check_plain_env(env, _VERTEX_SECRET_HOW)
  secret_env = parse_vertex_secret_env(_SECRET_ENV.value, _PROJECT.value)
  check_secrets_given(points, list(secret_env),
                      "e.g. --secret_env NAME=projects/P/secrets/S/versions/latest")
  timeout = (datetime.timedelta(hours=_VERTEX_TIMEOUT_H.value)
             if _VERTEX_TIMEOUT_H.value is not None else None)
  for point in points:
    job = vertex_custom_job(point, entry=_ENTRY.value, extra=extra, slice_name=_SLICE.value,
                            image=_IMAGE.value, display_name=f"{name}-{point.index}",
                            service_account=_SERVICE_ACCOUNT.value, env=env,
                            secret_env=secret_env, strategy=_VERTEX_STRATEGY.value,
                            timeout=timeout)
    text = aip.CustomJob.to_json(job, use_integers_for_enums=False,
                                 always_print_fields_with_no_presence=False)
    _write_spec(_SPEC_DIR.value, f"custom_job_{point.index:02d}.json", text)
    if _DRY_RUN.value:
      print(text, flush=True)
    else:
      print(f"[xm_launch] submitted {submit_vertex(job, _PROJECT.value, _REGION.value)}",
            flush=True)
  return 0


if __name__ == "__main__":
  app.run(main)

"""Kubernetes JobSet manifests for viit_jax entry points on Cloud TPU slices in GKE.

One JobSet (apiVersion jobset.x-k8s.io/v1alpha2) runs one entry point on `num_slices` TPU slices:
one replicated Job per slice (`replicas` = number of slices), one pod per TPU host of the slice
(`parallelism` = `completions` = hosts, Indexed completion), each pod asking for all the chips of its
host (`google.com/tpu` = chips per host) on nodes labelled with the slice's accelerator and topology.
A headless Service (JobSet `network.enableDNSHostnames`) gives every pod a stable DNS name, and process 0
of the job, pod `<jobset>-<job>-0-0.<service>`, is the jax.distributed coordinator.

Each pod gets the environment `viit_jax.sharding.maybe_initialize_distributed()` reads:
  VIIT_COORDINATOR_ADDRESS  <jobset>-<job>-0-0.<service>:8476
  VIIT_NUM_PROCESSES        hosts x slices
  VIIT_PROCESS_ID           slice index (JobSet job-index annotation) x hosts + JOB_COMPLETION_INDEX,
                            computed by a `bash -c` prologue before `exec python -m viit_jax.<entry> ...`
and, for Multislice (num_slices > 1), the DCN settings libtpu reads:
  MEGASCALE_COORDINATOR_ADDRESS, MEGASCALE_NUM_SLICES, MEGASCALE_SLICE_ID, MEGASCALE_PORT.
The workdir is a GCS path (gs://...); pods reach it with the Kubernetes service account given by
--service_account (Workload Identity), checkpoints and metrics are written there by the entry point.

Restarts. Preemption (a TPU node reclaimed or drained for maintenance) restarts the whole JobSet
without using up its restart budget; any other failure restarts it at most `max_restarts` times
(default 10); every restart resumes from the workdir's latest checkpoint. Each Job has
`backoffLimit: 0` (any failed pod fails its Job) and a `podFailurePolicy` that marks the two kinds
of preemption `FailJob`, so Kubernetes gives the failed Job the reason `PodFailurePolicy`:
  - onPodConditions DisruptionTarget: the pod was evicted (node preemption, maintenance, drain);
  - onExitCodes In [PREEMPTED_EXIT_CODE = 42] of the `viit` container: the entry point got SIGTERM,
    saved a checkpoint and exited with the preemption code (viit_jax.runtime.EXIT_PREEMPTED).
The JobSet's `failurePolicy.rules` then restart on `PodFailurePolicy` with
`RestartJobSetAndIgnoreMaxRestarts`, and on anything else with `RestartJobSet` (counts towards
`maxRestarts`). Needs a JobSet controller >= v0.6 (failure policy rules) and Kubernetes >= 1.26
(podFailurePolicy). Pods get `terminationGracePeriodSeconds` (default 120 s) between SIGTERM and
SIGKILL to save that checkpoint.

Secrets. API keys never appear as plain values in the manifest: `secret_env` (--secret_env
NAME=secret:key) becomes `env: [{name: NAME, valueFrom: {secretKeyRef: {name: secret, key: key}}}]`,
read from a Kubernetes Secret in the JobSet's namespace, and a plain env whose name looks like a
secret (*_API_KEY, *_TOKEN, *SECRET*, *PASSWORD*) is refused.

  python -m launch.gke.jobset --slice=v5litepod-16 --num_slices=1 --image=IMAGE --entry=train \\
      --config=configs/demo_phase0.py --workdir=gs://BUCKET/runs/phase0 > jobset.yaml
  kubectl create secret generic llm-api --from-literal=key=...  # --secret_env KEY=llm-api:key
  kubectl apply -f jobset.yaml       # needs the JobSet controller installed in the cluster
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from launch import tpu_topology

API_VERSION = "jobset.x-k8s.io/v1alpha2"
COORDINATOR_PORT = 8476  # jax.distributed coordinator (the port JAX's own cluster detection uses).
MEGASCALE_PORT = 8080  # libtpu's DCN transport between slices.
JOB_INDEX_ANNOTATION = "jobset.sigs.k8s.io/job-index"  # Replicated-job index = slice index.
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"  # Host within the slice.
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
EXCLUSIVE_TOPOLOGY_ANNOTATION = "alpha.jobset.sigs.k8s.io/exclusive-topology"
NODE_POOL_LABEL = "cloud.google.com/gke-nodepool"
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
TPU_RESOURCE = "google.com/tpu"
CONTAINER_NAME = "viit"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# Environment variable names that carry credentials: never as a plain value in a manifest or spec.
_SECRET_LIKE = re.compile(r"(^|_)API_?KEY$|(^|_)TOKEN$|SECRET|PASSWORD|PASSWD", re.IGNORECASE)

# The exit code of an entry point that saved after SIGTERM (preemption); viit_jax.runtime defines
# the same value as EXIT_PREEMPTED, and the pod failure policy below treats it as preemption.
PREEMPTED_EXIT_CODE = 42
# Whole-JobSet restarts for failures other than preemption (a crash, an OOM, a bad node) before the
# JobSet fails: enough to ride out flaky hardware, few enough that a deterministic bug stops.
DEFAULT_MAX_RESTARTS = 10
# SIGTERM -> SIGKILL. On SIGTERM every process agrees on a step (one small collective), saves that
# step's checkpoint to the gs:// workdir (parameters + optimizer state, written by all hosts in
# parallel: tens of seconds for a few GB per host at GCS's per-VM throughput) and exits with
# PREEMPTED_EXIT_CODE; 120 s covers that with margin. Spot TPU VMs give pods only 15 s after a
# preemption notice unless the node pool extends it (GKE allows up to 120 s), so spot jobs also rely
# on the periodic checkpoints (train.checkpoint_every).
DEFAULT_TERMINATION_GRACE_S = 120
# The failure reason Kubernetes gives a Job failed by a podFailurePolicy FailJob rule.
POD_FAILURE_POLICY_REASON = "PodFailurePolicy"


@dataclasses.dataclass(frozen=True)
class SecretKeyRef:
  """One key of a Kubernetes Secret (in the JobSet's namespace): what `secretKeyRef` points at."""
  secret: str  # The Secret's name (a DNS subdomain).
  key: str  # The key inside the Secret's data.

  def __post_init__(self) -> None:
    if not _DNS_SUBDOMAIN.match(self.secret) or len(self.secret) > 253:
      raise ValueError(f"Secret name {self.secret!r} is not a DNS subdomain (lower-case letters, "
                       "digits, '-', '.')")
    if not _SECRET_KEY.match(self.key) or len(self.key) > 253:
      raise ValueError(f"Secret key {self.key!r} may hold only letters, digits, '-', '_', '.'")


def looks_secret(name: str) -> bool:
  """Whether env var `name` looks like it holds a credential (*_API_KEY, *_TOKEN, *SECRET*, ...)."""
  return bool(_SECRET_LIKE.search(name))


def check_plain_env(env: Mapping[str, str], how: str) -> None:
  """Refuses plain-value env vars whose names look like credentials; `how` says what to use instead.

  A plain value sits in clear text in the manifest, in `kubectl get -o yaml`, in the JobSet's
  history and in every log that prints the spec.
  """
  for name in env:
    if not _ENV_NAME.match(name):
      raise ValueError(f"env {name!r} is not a valid environment variable name")
    if looks_secret(name):
      raise ValueError(f"env {name} looks like a secret: a plain value would be stored in clear "
                       f"text in the job spec; {how}")


def parse_env(items: Sequence[str]) -> dict[str, str]:
  """`["KEY=VALUE", ...]` -> {KEY: VALUE}; ValueError on an item without `=`."""
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--env {item!r} is not KEY=VALUE")
    out[key] = value
  return out


def parse_secret_env(items: Sequence[str]) -> dict[str, SecretKeyRef]:
  """`["NAME=secret:key", ...]` -> {NAME: SecretKeyRef(secret, key)}."""
  out = {}
  for item in items:
    name, sep, ref = item.partition("=")
    secret, colon, key = ref.partition(":")
    if not sep or not colon or not name or not secret or not key:
      raise ValueError(f"--secret_env {item!r} is not NAME=secret:key (a key of a Kubernetes "
                       "Secret, e.g. MY_API_KEY=llm-api:key)")
    out[name] = SecretKeyRef(secret=secret, key=key)
  return out


def pod_failure_policy(container_name: str = CONTAINER_NAME,
                       preempted_exit_code: int = PREEMPTED_EXIT_CODE) -> dict[str, Any]:
  """batch/v1 PodFailurePolicy: preemption fails the Job at once with reason PodFailurePolicy."""
  return {"rules": [
      # Evicted: node preemption, TPU maintenance, drain, or preemption by a higher-priority pod.
      {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
      # The entry point saved a checkpoint after SIGTERM and exited with the preemption code.
      {"action": "FailJob", "onExitCodes": {"containerName": container_name, "operator": "In",
                                            "values": [preempted_exit_code]}},
  ]}


def failure_policy(max_restarts: int) -> dict[str, Any]:
  """JobSet FailurePolicy: restart on preemption for free, on other failures up to max_restarts."""
  return {"maxRestarts": max_restarts, "rules": [
      {"name": "preemption", "action": "RestartJobSetAndIgnoreMaxRestarts",
       "onJobFailureReasons": [POD_FAILURE_POLICY_REASON]},
      # What JobSet does when no rule matches, written out: restart, counting towards maxRestarts.
      {"name": "otherFailures", "action": "RestartJobSet"},
  ]}


def entry_command(entry: str, config: str, workdir: str,
                  extra_args: Sequence[str] = ()) -> list[str]:
  """`python -m viit_jax.<entry> --config=<config> --workdir=<workdir> <extra_args...>`."""
  if not re.fullmatch(r"[a-z_][a-z0-9_]*", entry):
    raise ValueError(f"Entry point {entry!r} is not a module name under viit_jax (e.g. train)")
  return ["python", "-m", f"viit_jax.{entry}", f"--config={config}", f"--workdir={workdir}",
          *extra_args]


def pod_hostname(jobset_name: str, job_name: str, job_index: int, pod_index: int) -> str:
  """The DNS hostname JobSet gives pod `pod_index` of replicated job `job_name`'s job `job_index`."""
  return f"{jobset_name}-{job_name}-{job_index}-{pod_index}"


def container_script(command: Sequence[str]) -> str:
  """The `bash -c` script of every pod: derive VIIT_PROCESS_ID, then exec `command`."""
  return ("set -eu\n"
          "export VIIT_PROCESS_ID=$(( JOBSET_JOB_INDEX * VIIT_HOSTS_PER_SLICE"
          " + JOB_COMPLETION_INDEX ))\n"
          'echo "[viit] process ${VIIT_PROCESS_ID}/${VIIT_NUM_PROCESSES}'
          ' coordinator ${VIIT_COORDINATOR_ADDRESS}"\n'
          f"exec {shlex.join(command)}\n")


def _annotation_env(name: str, annotation: str) -> dict[str, Any]:
  return {"name": name,
          "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{annotation}']"}}}


def build(*, name: str, slice_name: str, num_slices: int, image: str, command: Sequence[str],
          workdir: str, namespace: str = "default", job_name: str = "slice",
          max_restarts: int = DEFAULT_MAX_RESTARTS, backoff_limit: int = 0,
          service_account: str | None = None, env: Mapping[str, str] | None = None,
          secret_env: Mapping[str, SecretKeyRef] | None = None,
          priority_class: str | None = None, host_network: bool = False,
          image_pull_policy: str = "IfNotPresent",
          termination_grace_s: int = DEFAULT_TERMINATION_GRACE_S) -> list[dict[str, Any]]:
  """The JobSet and its headless Service (in apply order: Service, JobSet) as plain dicts.

  Args:
    name: JobSet name (DNS label; also the Service name and the prefix of every pod hostname).
    slice_name: TPU slice of each replicated job, e.g. "v5litepod-16" (see launch/tpu_topology.py).
    num_slices: slices (replicas of the replicated job); > 1 is Multislice over DCN.
    image: container image with the project installed (launch/gke/Dockerfile).
    command: argv of the entry point (see `entry_command`); run via `bash -c` after the prologue.
    workdir: gs:// path the entry point writes to (must be the `--workdir` in `command`).
    namespace: Kubernetes namespace.
    job_name: name of the replicated job.
    max_restarts: JobSet failurePolicy.maxRestarts: whole-JobSet restarts after failures other
      than preemption (preemption restarts do not count); the entry points resume from their
      workdir's latest checkpoint.
    backoff_limit: per-Job pod failures (other than preemption, which fails the Job at once)
      tolerated before the Job, and so the JobSet, fails; 0: one failed pod restarts the JobSet.
    service_account: Kubernetes service account of the pods (Workload Identity for GCS).
    env: extra plain environment for every pod (e.g. LIBTPU_INIT_ARGS); names that look like
      credentials are refused (use `secret_env`).
    secret_env: environment read from Kubernetes Secrets: NAME -> SecretKeyRef(secret, key), e.g.
      the API key of the OpenAI-compatible synthesis back-end (config.openai.api_key_env).
    priority_class: pod priorityClassName.
    host_network: run pods on the host network (lower DCN latency for Multislice).
    image_pull_policy: container imagePullPolicy.
    termination_grace_s: pod terminationGracePeriodSeconds: SIGTERM -> SIGKILL, the time the entry
      point has to save a checkpoint and exit (see DEFAULT_TERMINATION_GRACE_S).
  """
  tpu = tpu_topology.parse_slice(slice_name)
  if num_slices < 1:
    raise ValueError(f"num_slices must be >= 1, got {num_slices}")
  if not workdir.startswith("gs://"):
    raise ValueError(f"workdir {workdir!r} must be on GCS (gs://bucket/path): pods share no disk")
  if f"--workdir={workdir}" not in command:
    raise ValueError(f"command {list(command)} does not pass --workdir={workdir}")
  for label, value in (("JobSet name", name), ("job name", job_name)):
    if not _DNS_LABEL.match(value):
      raise ValueError(f"{label} {value!r} must be a DNS label: lower-case letters, digits, '-', "
                       "starting with a letter")
  last_host = pod_hostname(name, job_name, num_slices - 1, tpu.hosts - 1)
  if len(last_host) > 63:
    raise ValueError(f"Pod hostname {last_host!r} is longer than 63 characters: shorten the name")
  if max_restarts < 0 or backoff_limit < 0 or termination_grace_s < 0:
    raise ValueError("max_restarts, backoff_limit and termination_grace_s must be >= 0")

  service = name
  coordinator_host = f"{pod_hostname(name, job_name, 0, 0)}.{service}"
  num_processes = tpu.hosts * num_slices
  pod_env: list[dict[str, Any]] = [
      {"name": "VIIT_COORDINATOR_ADDRESS", "value": f"{coordinator_host}:{COORDINATOR_PORT}"},
      {"name": "VIIT_NUM_PROCESSES", "value": str(num_processes)},
      {"name": "VIIT_HOSTS_PER_SLICE", "value": str(tpu.hosts)},
      _annotation_env("JOBSET_JOB_INDEX", JOB_INDEX_ANNOTATION),
      _annotation_env("JOB_COMPLETION_INDEX", COMPLETION_INDEX_ANNOTATION),
  ]
  ports = [{"name": "coordinator", "containerPort": COORDINATOR_PORT}]
  if num_slices > 1:
    pod_env += [
        {"name": "MEGASCALE_COORDINATOR_ADDRESS", "value": coordinator_host},
        {"name": "MEGASCALE_NUM_SLICES", "value": str(num_slices)},
        _annotation_env("MEGASCALE_SLICE_ID", JOB_INDEX_ANNOTATION),
        {"name": "MEGASCALE_PORT", "value": str(MEGASCALE_PORT)},
    ]
    ports.append({"name": "megascale", "containerPort": MEGASCALE_PORT})
  reserved = {e["name"] for e in pod_env} | {"VIIT_PROCESS_ID"}
  env, secret_env = dict(env or {}), dict(secret_env or {})
  check_plain_env(env, "put it in a Kubernetes Secret and pass secret_env (--secret_env "
                  "NAME=secret:key)")
  for key in (*env, *secret_env):
    if key in reserved:
      raise ValueError(f"env {key} is set by the launcher")
    if not _ENV_NAME.match(key):
      raise ValueError(f"env {key!r} is not a valid environment variable name")
  both = sorted(set(env) & set(secret_env))
  if both:
    raise ValueError(f"env {both} given both as a plain value and from a secret")
  for key, value in env.items():
    pod_env.append({"name": key, "value": str(value)})
  for key, ref in secret_env.items():
    pod_env.append({"name": key,
                    "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}})

  labels = {"app.kubernetes.io/name": "viit-jax", "app.kubernetes.io/instance": name}
  container: dict[str, Any] = {
      "name": CONTAINER_NAME,
      "image": image,
      "imagePullPolicy": image_pull_policy,
      "command": ["bash", "-c", container_script(command)],
      "env": pod_env,
      "ports": ports,
      "resources": {"requests": {TPU_RESOURCE: str(tpu.chips_per_host)},
                    "limits": {TPU_RESOURCE: str(tpu.chips_per_host)}},
  }
  pod_spec: dict[str, Any] = {
      "restartPolicy": "Never",
      "terminationGracePeriodSeconds": termination_grace_s,
      "nodeSelector": {TPU_ACCELERATOR_LABEL: tpu.gke_accelerator,
                       TPU_TOPOLOGY_LABEL: tpu.topology},
      "containers": [container],
  }
  if service_account:
    pod_spec["serviceAccountName"] = service_account
  if priority_class:
    pod_spec["priorityClassName"] = priority_class
  if host_network:
    pod_spec["hostNetwork"] = True
    pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"

  jobset = {
      "apiVersion": API_VERSION,
      "kind": "JobSet",
      "metadata": {
          "name": name, "namespace": namespace, "labels": dict(labels),
          # One slice per node pool: each Job of the set lands on its own TPU node pool.
          "annotations": {EXCLUSIVE_TOPOLOGY_ANNOTATION: NODE_POOL_LABEL},
      },
      "spec": {
          "failurePolicy": failure_policy(max_restarts),
          "network": {"enableDNSHostnames": True, "subdomain": service,
                      "publishNotReadyAddresses": True},
          "replicatedJobs": [{
              "name": job_name,
              "replicas": num_slices,
              "template": {
                  "metadata": {"labels": dict(labels)},
                  "spec": {
                      "parallelism": tpu.hosts,
                      "completions": tpu.hosts,
                      "completionMode": "Indexed",
                      "backoffLimit": backoff_limit,
                      "podFailurePolicy": pod_failure_policy(),
                      "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
                  },
              },
          }],
      },
  }
  headless = {
      "apiVersion": "v1",
      "kind": "Service",
      "metadata": {"name": service, "namespace": namespace, "labels": dict(labels)},
      "spec": {
          "clusterIP": "None",
          "selector": {JOBSET_NAME_LABEL: name},
          "publishNotReadyAddresses": True,
          "ports": [{"name": "coordinator", "port": COORDINATOR_PORT,
                     "targetPort": COORDINATOR_PORT}],
      },
  }
  return [headless, jobset]


class _Dumper(yaml.SafeDumper):
  """Safe YAML with multi-line strings (the pod script) as literal `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
  style = "|" if "\n" in value else None
  return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(docs: Sequence[Mapping[str, Any]]) -> str:
  """Multi-document YAML for `kubectl apply -f`."""
  return yaml.dump_all([dict(d) for d in docs], Dumper=_Dumper, sort_keys=False,
                       default_flow_style=False)


def find(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
  """The one document of `kind` in `docs` (the object itself, not a copy)."""
  found = [d for d in docs if d["kind"] == kind]
  if len(found) != 1:
    raise ValueError(f"expected one {kind}, found {len(found)}")
  return found[0]


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog="python -m launch.gke.jobset",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--slice", required=True, help="TPU slice per job, e.g. v5litepod-16")
  parser.add_argument("--num_slices", type=int, default=1)
  parser.add_argument("--image", required=True)
  parser.add_argument("--entry", default="train", help="viit_jax.<entry> module")
  parser.add_argument("--config", required=True, help="configs/<x>.py[:k=v,...] inside the image")
  parser.add_argument("--workdir", required=True, help="gs://bucket/path")
  parser.add_argument("--name", default=None, help="JobSet name (default: viit-<entry>)")
  parser.add_argument("--namespace", default="default")
  parser.add_argument("--max_restarts", type=int, default=DEFAULT_MAX_RESTARTS,
                      help="JobSet restarts after failures other than preemption (preemption "
                      "restarts are not counted)")
  parser.add_argument("--backoff_limit", type=int, default=0)
  parser.add_argument("--termination_grace_s", type=int, default=DEFAULT_TERMINATION_GRACE_S,
                      help="SIGTERM -> SIGKILL: time to save a checkpoint and exit")
  parser.add_argument("--service_account", default=None)
  parser.add_argument("--priority_class", default=None)
  parser.add_argument("--host_network", action="store_true")
  parser.add_argument("--env", action="append", default=[],
                      help="KEY=VALUE, repeatable; no credentials (see --secret_env)")
  parser.add_argument("--secret_env", action="append", default=[],
                      help="NAME=secret:key, repeatable: env NAME from key `key` of the Kubernetes "
                      "Secret `secret` (API keys, tokens)")
  parser.add_argument("--validate", action="store_true",
                      help="check the manifests against the Kubernetes models and the JobSet "
                      "schema (needs the kubernetes and jsonschema packages)")
  parser.add_argument("extra", nargs="*", help="after --: more flags for the entry point")
  args = parser.parse_args(argv)
  name = args.name or f"viit-{args.entry.replace('_', '-')}"
  try:
    docs = build(name=name, slice_name=args.slice, num_slices=args.num_slices, image=args.image,
                 command=entry_command(args.entry, args.config, args.workdir, args.extra),
                 workdir=args.workdir, namespace=args.namespace, max_restarts=args.max_restarts,
                 backoff_limit=args.backoff_limit, service_account=args.service_account,
                 env=parse_env(args.env), secret_env=parse_secret_env(args.secret_env),
                 priority_class=args.priority_class, host_network=args.host_network,
                 termination_grace_s=args.termination_grace_s)
    if args.validate:
      from launch.gke import schema
      schema.validate(docs)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  sys.stdout.write(to_yaml(docs))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

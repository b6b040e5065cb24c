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

  python -m launch.gke.jobset --slice=v5litepod-16 --num_slices=1 --image=IMAGE --entry=train \\
      --config=configs/demo_phase0.py --workdir=gs://BUCKET/runs/phase0 > jobset.yaml
  kubectl apply -f jobset.yaml       # needs the JobSet controller installed in the cluster
"""
from __future__ import annotations

import argparse
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
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


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
          max_restarts: int = 0, backoff_limit: int = 0, service_account: str | None = None,
          env: Mapping[str, str] | None = None, priority_class: str | None = None,
          host_network: bool = False, image_pull_policy: str = "IfNotPresent",
          termination_grace_s: int = 30) -> list[dict[str, Any]]:
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
    max_restarts: JobSet failurePolicy.maxRestarts (whole-JobSet restarts; the entry points resume
      from their workdir's latest checkpoint).
    backoff_limit: per-Job pod failures tolerated before the Job (and so the JobSet) fails.
    service_account: Kubernetes service account of the pods (Workload Identity for GCS).
    env: extra environment for every pod (e.g. LIBTPU_INIT_ARGS).
    priority_class: pod priorityClassName.
    host_network: run pods on the host network (lower DCN latency for Multislice).
    image_pull_policy: container imagePullPolicy.
    termination_grace_s: pod terminationGracePeriodSeconds.
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
  if max_restarts < 0 or backoff_limit < 0:
    raise ValueError("max_restarts and backoff_limit must be >= 0")

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
  for key, value in (env or {}).items():
    if key in reserved:
      raise ValueError(f"env {key} is set by the launcher")
    pod_env.append({"name": key, "value": str(value)})

  labels = {"app.kubernetes.io/name": "viit-jax", "app.kubernetes.io/instance": name}
  container: dict[str, Any] = {
      "name": "viit",
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
          "failurePolicy": {"maxRestarts": max_restarts},
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
  parser.add_argument("--max_restarts", type=int, default=0)
  parser.add_argument("--backoff_limit", type=int, default=0)
  parser.add_argument("--service_account", default=None)
  parser.add_argument("--priority_class", default=None)
  parser.add_argument("--host_network", action="store_true")
  parser.add_argument("--env", action="append", default=[], help="KEY=VALUE, repeatable")
  parser.add_argument("--validate", action="store_true",
                      help="check the manifests against the Kubernetes models and the JobSet "
                      "schema (needs the kubernetes and jsonschema packages)")
  parser.add_argument("extra", nargs="*", help="after --: more flags for the entry point")
  args = parser.parse_args(argv)
  env = dict(e.split("=", 1) for e in args.env)
  name = args.name or f"viit-{args.entry.replace('_', '-')}"
  try:
    docs = build(name=name, slice_name=args.slice, num_slices=args.num_slices, image=args.image,
                 command=entry_command(args.entry, args.config, args.workdir, args.extra),
                 workdir=args.workdir, namespace=args.namespace, max_restarts=args.max_restarts,
                 backoff_limit=args.backoff_limit, service_account=args.service_account, env=env,
                 priority_class=args.priority_class, host_network=args.host_network)
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

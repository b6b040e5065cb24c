"""Validation of generated manifests: Kubernetes API models and a JobSet v1alpha2 JSON schema.

- Every Job template of a JobSet is read as `V1JobTemplateSpec` (so its `spec` as `V1JobSpec`, the pod
  template as `V1PodTemplateSpec`) and the Service as `V1Service`, by the official `kubernetes` Python
  client's deserializer (pydantic models: wrong types and missing required fields are errors). The
  client ignores unknown fields, so each document is serialized back and compared with the input: any
  field the API does not know (a typo like `nodeSelecter`) or any value the model had to coerce makes
  the comparison fail, naming the path.
- The JobSet's own fields (everything outside the Job templates) are checked with `jsonschema` against
  `JOBSET_SCHEMA` below. No JobSet CRD/OpenAPI document is available offline here, so the schema is
  written by hand from the JobSet v1alpha2 API types (JobSetSpec, ReplicatedJob, Network,
  FailurePolicy, SuccessPolicy, StartupPolicy, Coordinator); it closes every object it describes
  (`additionalProperties: false`), so unknown JobSet fields are rejected too. The JobSet webhook's
  own checks of a failure policy (unique rule names, known job failure reasons, target replicated
  jobs that exist) are repeated in `check_jobset`.
- The API server's validation of a Job's `podFailurePolicy` (batch/v1 ValidatePodFailurePolicy:
  `restartPolicy: Never`, one requirement per rule, exit codes sorted, unique and not 0 under `In`,
  container names that exist, condition statuses True/False/Unknown) is `check_pod_failure_policy`:
  the client models accept any values there.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": _DNS_LABEL, "maxLength": 63},
                   "namespace": {"type": "string", "pattern": _DNS_LABEL},
                   "labels": _STR_MAP, "annotations": _STR_MAP},
    "required": ["name"],
    "additionalProperties": False,
}
_TARGETS = {"type": "array", "items": {"type": "string"}}
# batch/v1 Job failure reasons a JobSet failure policy rule may match (the JobSet webhook's list).
JOB_FAILURE_REASONS = ("BackoffLimitExceeded", "DeadlineExceeded", "FailedIndexes",
                       "MaxFailedIndexesExceeded", "PodFailurePolicy")
_RULE_NAME = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
_INT32_MAX = 2**31 - 1

JOBSET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "JobSet (jobset.x-k8s.io/v1alpha2), fields outside the Job templates",
    "type": "object",
    "properties": {
        "apiVersion": {"const": "jobset.x-k8s.io/v1alpha2"},
        "kind": {"const": "JobSet"},
        "metadata": _OBJECT_META,
        "spec": {
            "type": "object",
            "properties": {
                "replicatedJobs": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "pattern": _DNS_LABEL},
                            "groupName": {"type": "string"},
                            "replicas": {"type": "integer", "minimum": 1},
                            # A batch/v1 JobTemplateSpec: checked by the kubernetes client models.
                            "template": {"type": "object"},
                            "dependsOn": {"type": "array", "maxItems": 5, "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"},
                                               "status": {"enum": ["Ready", "Complete"]}},
                                "required": ["name", "status"], "additionalProperties": False}},
                        },
                        "required": ["name", "template"],
                        "additionalProperties": False,
                    },
                },
                "network": {
                    "type": "object",
                    "properties": {"enableDNSHostnames": {"type": "boolean"},
                                   "subdomain": {"type": "string", "pattern": _DNS_LABEL},
                                   "publishNotReadyAddresses": {"type": "boolean"}},
                    "additionalProperties": False,
                },
                "successPolicy": {
                    "type": "object",
                    "properties": {"operator": {"enum": ["All", "Any"]},
                                   "targetReplicatedJobs": _TARGETS},
                    "required": ["operator"], "additionalProperties": False,
                },
                "failurePolicy": {
                    "type": "object",
                    "properties": {
                        "maxRestarts": {"type": "integer", "minimum": 0,
                                        "maximum": _INT32_MAX},
                        "restartStrategy": {"enum": ["Recreate", "BlockingRecreate",
                                                     "InPlaceRestart"]},
                        "rules": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "pattern": _RULE_NAME,
                                         "minLength": 1, "maxLength": 128},
                                "action": {"enum": ["FailJobSet", "RestartJobSet",
                                                    "RestartJobSetAndIgnoreMaxRestarts",
                                                    "RestartJob",
                                                    "RestartJobAndIgnoreMaxRestarts"]},
                                "onJobFailureReasons": {
                                    "type": "array", "uniqueItems": True,
                                    "items": {"enum": list(JOB_FAILURE_REASONS)}},
                                "onJobFailureMessagePatterns": {
                                    "type": "array", "uniqueItems": True,
                                    "items": {"type": "string"}},
                                "targetReplicatedJobs": _TARGETS},
                            "required": ["name", "action"], "additionalProperties": False}},
                    },
                    "additionalProperties": False,
                },
                "startupPolicy": {
                    "type": "object",
                    "properties": {"startupPolicyOrder": {"enum": ["AnyOrder", "InOrder"]}},
                    "required": ["startupPolicyOrder"], "additionalProperties": False,
                },
                "suspend": {"type": "boolean"},
                "coordinator": {
                    "type": "object",
                    "properties": {"replicatedJob": {"type": "string"},
                                   "jobIndex": {"type": "integer", "minimum": 0},
                                   "podIndex": {"type": "integer", "minimum": 0}},
                    "required": ["replicatedJob"], "additionalProperties": False,
                },
                "managedBy": {"type": "string", "maxLength": 63},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
            },
            "required": ["replicatedJobs"],
            "additionalProperties": False,
        },
    },
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
}


class ManifestError(ValueError):
  """A manifest the Kubernetes API (or the JobSet schema) would not accept as written."""


def _diff(expected: Any, actual: Any, path: str) -> list[str]:
  """Paths where `actual` (the model's round trip) differs from `expected` (the input)."""
  if isinstance(expected, Mapping) and isinstance(actual, Mapping):
    out = []
    for k in sorted(set(expected) | set(actual)):
      if k not in actual:
        out.append(f"{path}.{k}: not a field of the API object (dropped by the model)")
      elif k not in expected:
        out.append(f"{path}.{k}: added by the model ({actual[k]!r})")
      else:
        out += _diff(expected[k], actual[k], f"{path}.{k}")
    return out
  if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
    return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in _diff(e, a, f"{path}[{i}]")]
  if type(expected) is not type(actual) or expected != actual:
    return [f"{path}: {expected!r} read back as {actual!r}"]
  return []


def check_model(obj: Mapping[str, Any], model: str, path: str) -> Any:
  """Reads `obj` as kubernetes client model `model` (e.g. "V1JobSpec"); strict round trip.

  Returns the model instance; raises ManifestError naming every offending path.
  """
  from kubernetes import client  # Optional dependency: the [launch]/[test] extras.
  api = client.ApiClient()
  try:
    instance = api.deserialize(json.dumps(obj), model, "application/json")
  except Exception as e:  # pydantic ValidationError and friends, re-raised with the path.
    raise ManifestError(f"{path}: not a valid {model}: {e}") from e
  back = api.sanitize_for_serialization(instance)
  problems = _diff(dict(obj), back, path)
  if problems:
    raise ManifestError(f"{path} as {model}:\n  " + "\n  ".join(problems))
  return instance


_POD_FAILURE_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
_CONDITION_STATUSES = ("True", "False", "Unknown")


def check_pod_failure_policy(job_spec: Mapping[str, Any], path: str) -> None:
  """A batch/v1 JobSpec's `podFailurePolicy` as the API server validates it; ManifestError if not.

  (Kubernetes' ValidatePodFailurePolicy: the client models check types only.)
  """
  policy = job_spec.get("podFailurePolicy")
  if policy is None:
    return
  where = f"{path}.podFailurePolicy"
  pod_spec = job_spec.get("template", {}).get("spec", {})
  problems = []
  if pod_spec.get("restartPolicy") != "Never":
    problems.append(f"{where}: needs template.spec.restartPolicy Never, not "
                    f"{pod_spec.get('restartPolicy')!r}")
  containers = {c.get("name") for key in ("containers", "initContainers")
                for c in pod_spec.get(key, [])}
  rules = policy.get("rules", [])
  if len(rules) > 20:
    problems.append(f"{where}.rules: at most 20 rules, got {len(rules)}")
  for i, rule in enumerate(rules):
    at = f"{where}.rules[{i}]"
    action = rule.get("action")
    if action not in _POD_FAILURE_ACTIONS:
      problems.append(f"{at}.action: {action!r} is not one of {list(_POD_FAILURE_ACTIONS)}")
    if action == "FailIndex" and job_spec.get("backoffLimitPerIndex") is None:
      problems.append(f"{at}.action: FailIndex needs backoffLimitPerIndex")
    on_codes, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
    if (on_codes is None) == (on_conditions is None):
      problems.append(f"{at}: exactly one of onExitCodes and onPodConditions is required")
    if on_codes is not None:
      name, operator, values = (on_codes.get("containerName"), on_codes.get("operator"),
                                on_codes.get("values", []))
      if name is not None and name not in containers:
        problems.append(f"{at}.onExitCodes.containerName: {name!r} is not a container of the pod "
                        f"({sorted(containers)})")
      if operator not in ("In", "NotIn"):
        problems.append(f"{at}.onExitCodes.operator: {operator!r} is not In or NotIn")
      if not 1 <= len(values) <= 255:
        problems.append(f"{at}.onExitCodes.values: 1 to 255 values, got {len(values)}")
      if list(values) != sorted(set(values)):
        problems.append(f"{at}.onExitCodes.values: must be unique and sorted, got {values}")
      if operator == "In" and 0 in values:
        problems.append(f"{at}.onExitCodes.values: 0 (success) cannot be matched with In")
    for j, pattern in enumerate(on_conditions or []):
      if not pattern.get("type"):
        problems.append(f"{at}.onPodConditions[{j}].type: required")
      if pattern.get("status") not in _CONDITION_STATUSES:
        problems.append(f"{at}.onPodConditions[{j}].status: {pattern.get('status')!r} is not one "
                        f"of {list(_CONDITION_STATUSES)}")
    if on_conditions is not None and not 1 <= len(on_conditions) <= 20:
      problems.append(f"{at}.onPodConditions: 1 to 20 patterns, got {len(on_conditions)}")
  if problems:
    raise ManifestError("Pod failure policy:\n  " + "\n  ".join(problems))


def _check_failure_policy_refs(jobset: Mapping[str, Any]) -> None:
  """The JobSet webhook's cross-field checks of failurePolicy.rules (names, targets)."""
  spec = jobset["spec"]
  rules = spec.get("failurePolicy", {}).get("rules", [])
  jobs = {rj["name"] for rj in spec["replicatedJobs"]}
  problems = []
  names = [r["name"] for r in rules]
  for dup in sorted({n for n in names if names.count(n) > 1}):
    problems.append(f"spec.failurePolicy.rules: rule name {dup!r} is not unique")
  for i, rule in enumerate(rules):
    for target in rule.get("targetReplicatedJobs", []):
      if target not in jobs:
        problems.append(f"spec.failurePolicy.rules[{i}].targetReplicatedJobs: {target!r} is not a "
                        f"replicated job ({sorted(jobs)})")
  if problems:
    raise ManifestError("JobSet failure policy:\n  " + "\n  ".join(problems))


def check_jobset(jobset: Mapping[str, Any]) -> None:
  """JobSet fields against JOBSET_SCHEMA and the webhook's failure-policy checks; every Job template
  against V1JobTemplateSpec and the API server's podFailurePolicy validation."""
  import jsonschema  # Optional dependency: the [launch]/[test] extras.
  errors = sorted(jsonschema.Draft202012Validator(JOBSET_SCHEMA).iter_errors(dict(jobset)),
                  key=lambda e: list(e.absolute_path))
  if errors:
    raise ManifestError("JobSet schema:\n  " + "\n  ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors))
  _check_failure_policy_refs(jobset)
  check_model(jobset["metadata"], "V1ObjectMeta", "metadata")
  for i, rj in enumerate(jobset["spec"]["replicatedJobs"]):
    check_model(rj["template"], "V1JobTemplateSpec", f"spec.replicatedJobs[{i}].template")
    check_pod_failure_policy(rj["template"].get("spec", {}),
                             f"spec.replicatedJobs[{i}].template.spec")


def validate(docs: Sequence[Mapping[str, Any]]) -> None:
  """Validates every document (JobSet or Service) of a manifest; raises ManifestError."""
  for doc in docs:
    kind = doc.get("kind")
    if kind == "JobSet":
      check_jobset(doc)
    elif kind == "Service":
      if doc.get("apiVersion") != "v1":
        raise ManifestError(f"Service apiVersion {doc.get('apiVersion')!r} is not v1")
      check_model(doc, "V1Service", "Service")
    else:
      raise ManifestError(f"unexpected document kind {kind!r}")

"""Config plumbing: `key=value` arguments, typed overrides of existing fields, locking.

Every experiment file in `configs/` builds on the locked base (`configs/base.py`), which declares every
field with its default. `--config=configs/<x>.py:<arg>` hands `<arg>` to `get_config(arg)`; `<arg>` is
a comma-separated list of `dotted.key=value` overrides, e.g.
`train.total_steps=20,optim.lr=3e-3,data.world_dir=/tmp/world`. Overriding a key the base does not
declare is an error naming the key: typos never pass silently.

Values are parsed by the declared type of the field: int, float, bool (`true/false/1/0/yes/no`), str
(taken verbatim), tuple/list (a Python literal, e.g. `(('img/.*', None),)`). Top-level commas inside
brackets or quotes do not split the argument.
"""
from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

import ml_collections

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


class ConfigError(ValueError):
  """A bad config argument: unknown key, unparsable value, malformed `key=value`."""


def split_arg(arg: str | None) -> list[str]:
  """Splits `a=1,b=(1,2),c='x,y'` at top-level commas; empty or None gives []."""
  if not arg:
    return []
  parts, depth, quote, cur = [], 0, "", []
  for ch in arg:
    if quote:
      cur.append(ch)
      if ch == quote:
        quote = ""
      continue
    if ch in "'\"":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == "," and depth == 0:
      parts.append("".join(cur))
      cur = []
      continue
    cur.append(ch)
  if quote or depth:
    raise ConfigError(f"Unbalanced quotes or brackets in config argument {arg!r}")
  parts.append("".join(cur))
  return [p.strip() for p in parts if p.strip()]


def parse_arg(arg: str | None) -> dict[str, str]:
  """`'a.b=1,c=x'` -> `{'a.b': '1', 'c': 'x'}` (raw strings, typed later by `apply_overrides`)."""
  out: dict[str, str] = {}
  for part in split_arg(arg):
    if "=" not in part:
      raise ConfigError(f"Config argument {part!r} is not of the form key=value "
                        f"(full argument: {arg!r})")
    key, value = part.split("=", 1)
    key = key.strip()
    if not key:
      raise ConfigError(f"Empty key in config argument {part!r}")
    if key in out:
      raise ConfigError(f"Config key {key!r} given twice in {arg!r}")
    out[key] = value.strip()
  return out


def _parse_value(key: str, raw: str, field_type: type, current: Any) -> Any:
  """`raw` converted to `field_type` (the declared type of config field `key`)."""
  try:
    if field_type is bool:
      low = raw.lower()
      if low in _TRUE:
        return True
      if low in _FALSE:
        return False
      raise ValueError(f"not a boolean: {raw!r}")
    if field_type is int:
      return int(raw)
    if field_type is float:
      return float(raw)
    if field_type is str:
      if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
      return raw
    if field_type in (tuple, list):
      value = ast.literal_eval(raw)
      if not isinstance(value, (tuple, list)):
        value = (value,)
      return field_type(value)
  except (ValueError, SyntaxError) as e:
    raise ConfigError(f"Cannot parse config override {key}={raw!r} as {field_type.__name__}: "
                      f"{e}") from e
  raise ConfigError(f"Config field {key!r} has type {field_type.__name__} (value {current!r}), "
                    "which cannot be set from the command line")


def _resolve(config: ml_collections.ConfigDict, key: str) -> tuple[ml_collections.ConfigDict, str]:
  """The ConfigDict holding dotted `key` and the last name; errors name the unknown key."""
  node = config
  names = key.split(".")
  for i, name in enumerate(names[:-1]):
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      sections = sorted(k for k in node if isinstance(node[k], ml_collections.ConfigDict))
      raise ConfigError(f"Unknown config key {key!r}: {'.'.join(names[:i + 1])!r} is not a "
                        f"section of the base config (sections here: {sections})")
    node = node[name]
  if names[-1] not in node:
    raise ConfigError(f"Unknown config key {key!r}: the base config declares no such field "
                      f"(fields here: {sorted(node.keys())})")
  return node, names[-1]


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, str]) -> ml_collections.ConfigDict:
  """Sets each existing dotted key from its raw string; unknown keys are an error naming them."""
  for key, raw in overrides.items():
    node, name = _resolve(config, key)
    if isinstance(node[name], ml_collections.ConfigDict):
      raise ConfigError(f"Config key {key!r} is a section, not a field")
    field_type = node.get_type(name)
    value = _parse_value(key, raw, field_type, node[name])
    with node.ignore_type():
      node[name] = value
  return config


def finalize(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the `key=value` overrides in `arg`, then locks the config (no new fields)."""
  config.lock()
  apply_overrides(config, parse_arg(arg))
  return config


def to_json(config: ml_collections.ConfigDict) -> str:
  """A stable JSON rendering of the config (sorted keys; tuples become lists)."""
  return json.dumps(config.to_dict(), sort_keys=True, indent=1, default=repr)


def to_plain(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON-compatible dicts (what `meta` checkpoints and config.json hold)."""
  return json.loads(to_json(config))


def diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
  """Dotted keys whose values differ between two plain config dicts, sorted."""
  out = []
  for k in sorted(set(a) | set(b)):
    key = f"{prefix}{k}"
    va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
    if isinstance(va, Mapping) and isinstance(vb, Mapping):
      out.extend(diff(va, vb, key + "."))
    elif va != vb:
      out.append(f"{key}: {va!r} -> {vb!r}")
  return out

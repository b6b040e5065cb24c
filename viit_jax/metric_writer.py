"""Training metrics to TensorBoard event files and a JSON-lines file, in a local or gs:// workdir."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Mapping

import jax

from viit_jax import paths


class MetricWriter:
  """Scalars and texts to TensorBoard event files and `metrics.jsonl` (process 0 only).

  A local workdir is written in place: `metrics.jsonl` is append-only (a torn last line, from a
  kill mid-write, is cut before appending). An object-store workdir has no append: both files are
  written to a local staging directory and uploaded whole after every write (the run's own event
  file and the whole metrics.jsonl, which a restart first downloads and continues).
  """

  def __init__(self, workdir: str, jsonl_name: str):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    self._workdir, self._name = workdir, jsonl_name
    self._remote = paths.is_remote(workdir)
    local = (tempfile.mkdtemp(prefix="viit_metrics_") if self._remote
             else os.fspath(paths.path(workdir)))
    self._local = pathlib.Path(local)
    self._local.mkdir(parents=True, exist_ok=True)
    jsonl = self._local / jsonl_name
    if self._remote and (paths.path(workdir) / jsonl_name).exists():
      jsonl.write_bytes((paths.path(workdir) / jsonl_name).read_bytes())
    if jsonl.exists():  # Drop a torn last line, so the next record starts on a line of its own.
      data = jsonl.read_bytes()
      if data and not data.endswith(b"\n"):
        jsonl.write_bytes(data[:data.rfind(b"\n") + 1])
    self._jsonl = open(jsonl, "a")
    import tensorflow as tf  # Deferred: only process 0 writes, and tf is heavy to import.
    self._tf = tf
    self._tb = tf.summary.create_file_writer(str(self._local / "tb"))

  def write(self, step: int, scalars: Mapping[str, float], texts: Mapping[str, str] = ()) -> None:
    if not self._active:
      return
    record = {"step": step, "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
    if texts:
      record["texts"] = dict(texts)
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    with self._tb.as_default(step=step):
      for k, v in scalars.items():
        self._tf.summary.scalar(k, float(v))
      for k, v in dict(texts).items():
        self._tf.summary.text(k, v)
    self._tb.flush()
    if self._remote:
      self._upload()

  def _upload(self) -> None:
    """Copies the staged files to the remote workdir (each upload replaces the object whole)."""
    for f in [self._local / self._name, *sorted((self._local / "tb").glob("*"))]:
      paths.write_atomic(paths.path(self._workdir) / f.relative_to(self._local), f.read_bytes())

  def close(self) -> None:
    if self._active:
      self._jsonl.close()
      self._tb.close()
      if self._remote:
        self._upload()
        shutil.rmtree(self._local, ignore_errors=True)

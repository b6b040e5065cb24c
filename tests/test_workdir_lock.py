"""The workdir lock (viit_jax/workdir_lock.py): one holder, named to a second run; a dead holder's
lock taken over; on local disks (flock) and on the GCS emulator (generation preconditions).

The CLI tests (two identical runs at once) are beside each entry point's other tests:
test_train.py, test_autolabel.py, test_synthesize.py.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
from google.cloud import storage

from viit_jax import runtime
from viit_jax import workdir_lock

REPO = pathlib.Path(__file__).resolve().parents[1]
HOLD = ("import sys, time\n"
        "from viit_jax import workdir_lock\n"
        "lock = workdir_lock.WorkdirLock(sys.argv[1])\n"
        "lock.__enter__()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")


def _holder(workdir: str) -> subprocess.Popen:
  """A process that takes `workdir`'s lock and keeps it until killed."""
  proc = subprocess.Popen([sys.executable, "-c", HOLD, workdir], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
  line = proc.stdout.readline()
  assert line.strip() == "held", line + proc.stdout.read()
  return proc


@pytest.mark.parametrize("store", ["local", "gcs"])
def test_a_second_holder_is_refused_by_name_until_the_first_dies(store, request, tmp_path):
  workdir = (f"{request.getfixturevalue('gcs_bucket')}/lock-{tmp_path.name}" if store == "gcs"
             else str(tmp_path / "w"))
  proc = _holder(workdir)
  try:
    with pytest.raises(workdir_lock.WorkdirLocked) as e:
      with workdir_lock.WorkdirLock(workdir):
        pass
    message = str(e.value)
    assert f"pid {proc.pid} on host {socket.gethostname()}" in message and workdir in message
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  # The holder died without releasing: its lock is stale and taken over at once.
  with workdir_lock.WorkdirLock(workdir):
    with pytest.raises(workdir_lock.WorkdirLocked, match=f"pid {os.getpid()} "):
      with workdir_lock.WorkdirLock(workdir):
        pass
  with workdir_lock.WorkdirLock(workdir):  # Released on exit: free again.
    pass


def test_shards_hold_their_own_locks(tmp_path):
  with workdir_lock.WorkdirLock(tmp_path, name=".lock-shard0of2"):
    with workdir_lock.WorkdirLock(tmp_path, name=".lock-shard1of2"):
      with pytest.raises(workdir_lock.WorkdirLocked):
        with workdir_lock.WorkdirLock(tmp_path, name=".lock-shard1of2"):
          pass


def _lock_blob(gcs_bucket: str, prefix: str) -> storage.Blob:
  return storage.Client().bucket(gcs_bucket.removeprefix("gs://")).blob(f"{prefix}/.lock")


def _read_lock(gcs_bucket: str, prefix: str) -> dict:
  """The lock object's current content (a fresh Blob: a used one pins the generation it saw)."""
  return json.loads(_lock_blob(gcs_bucket, prefix).download_as_bytes())


def test_gcs_lock_of_another_host_is_stale_only_without_heartbeat(gcs_bucket, tmp_path):
  """A lock whose holder runs on another host cannot be checked by pid: its heartbeat decides."""
  prefix = f"stale-{tmp_path.name}"
  blob = _lock_blob(gcs_bucket, prefix)
  other = {"pid": 1, "host": "other-host", "command": "train.py", "started": "then"}
  blob.upload_from_string(json.dumps(dict(other, heartbeat=time.time())))
  with pytest.raises(workdir_lock.WorkdirLocked, match="pid 1 on host other-host"):
    with workdir_lock.WorkdirLock(f"{gcs_bucket}/{prefix}", stale_after_s=60):
      pass
  blob.upload_from_string(json.dumps(dict(other, heartbeat=time.time() - 61)))
  with workdir_lock.WorkdirLock(f"{gcs_bucket}/{prefix}", stale_after_s=60):
    held = _read_lock(gcs_bucket, prefix)
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
  assert not _lock_blob(gcs_bucket, prefix).exists()  # Released: the object is gone.


def test_gcs_heartbeat_keeps_the_lock_fresh_and_notices_a_takeover(gcs_bucket, tmp_path, caplog):
  prefix = f"beat-{tmp_path.name}"
  blob = _lock_blob(gcs_bucket, prefix)
  with workdir_lock.WorkdirLock(f"{gcs_bucket}/{prefix}", heartbeat_s=0.2):
    first = _read_lock(gcs_bucket, prefix)["heartbeat"]
    deadline = time.time() + 30
    while _read_lock(gcs_bucket, prefix)["heartbeat"] == first:
      assert time.time() < deadline, "no heartbeat reached the store"
      time.sleep(0.1)
    blob.upload_from_string(json.dumps({"pid": 1, "host": "usurper", "heartbeat": time.time()}))
    deadline = time.time() + 30
    while "taken over by another run" not in caplog.text:
      assert time.time() < deadline, "the holder did not notice the takeover"
      time.sleep(0.1)
  assert _read_lock(gcs_bucket, prefix)["host"] == "usurper"  # Not deleted: not ours.


def test_hold_workdir_raises_for_entry_points(tmp_path):
  with runtime.hold_workdir(str(tmp_path), uses_jax=False):
    with pytest.raises(workdir_lock.WorkdirLocked, match=str(tmp_path)):
      with runtime.hold_workdir(str(tmp_path), uses_jax=False):
        pass

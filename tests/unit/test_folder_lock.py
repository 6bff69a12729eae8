"""FolderLock: one run at a time per output folder; a killed owner's lock is taken over with a message."""

import json
import os
import socket
import subprocess
import sys

import pytest

from goldennoise.collection import CollectConfig, ScorerSpec, collect
from goldennoise.data import folder_lock
from goldennoise.data.folder_lock import LOCK_NAME, FolderLock, FolderLockedError
from goldennoise.data.npd_store import shard_dir

HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("folder_lock", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.FolderLock(sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_held_lock_refuses_a_second_run_naming_the_owner(tmp_path):
    folder = tmp_path / "out"
    with FolderLock(folder):
        owner = json.loads((folder / LOCK_NAME).read_text())
        assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(FolderLockedError, match=rf"in use by another run \(pid {os.getpid()} on host "):
            FolderLock(folder).acquire()
    assert not folder.exists()  # the lock created the folder and the run left it empty: no debris
    with FolderLock(folder):
        (folder / "result.txt").write_text("kept")
    assert (folder / "result.txt").is_file() and not (folder / LOCK_NAME).exists()
    with FolderLock(folder):  # released: free again
        pass


def test_the_lock_of_a_killed_process_is_taken_over_with_a_message(tmp_path):
    folder = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, folder_lock.__file__, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid} on host {socket.gethostname()}"):
            FolderLock(folder).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind by the killed owner
    with pytest.warns(UserWarning, match=rf"Taking over the stale lock .*\(pid {holder.pid} on host"):
        lock = FolderLock(folder)
        lock.acquire()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_collect_refuses_a_folder_in_use_and_keeps_the_live_runs_shard_in_progress(tmp_path):
    folder = tmp_path / "npd"
    config = CollectConfig(output_dir=str(folder), backbone="tiny-sd", prompts=["a red fox"], seeds="0",
                           scorers=[ScorerSpec("hpsv2", model="tiny")], progress=False, accelerator="cpu")
    with FolderLock(folder):  # the live run
        in_progress = shard_dir(folder) / "shard-000000.safetensors.4242.tmp"
        in_progress.parent.mkdir(parents=True)
        in_progress.write_bytes(b"half a shard")
        with pytest.raises(FolderLockedError, match=f"{folder} is in use by another run"):
            collect(config)
        assert in_progress.read_bytes() == b"half a shard"
        assert not (folder / "collection.json").exists()

"""A hub or URL that accepts connections and never answers: one request, then one sentence (no minutes of retries)."""

import re
import socket
import threading

import pytest
from huggingface_hub import constants as hub_constants

from goldennoise.backbones import load_backbone
from goldennoise.errors import MissingWeightsError
from goldennoise.metrics.hf_clip import load_clip_backbone
from goldennoise.metrics.hps import load_hpsv2
from goldennoise.metrics.loading import resolve_file
from goldennoise.noise import NPNet, NPNetConfig
from goldennoise.noise.npnet_checkpoint import init_swin_from_imagenet


class SilentServer:
    """Accepts TCP connections on 127.0.0.1, reads each request line and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.readers: list[threading.Thread] = []
        self.requests: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection = self.socket.accept()[0]
            except OSError:  # closed
                return
            self.connections.append(connection)
            reader = threading.Thread(target=self._read_request_line, args=(connection,), daemon=True)
            self.readers.append(reader)
            reader.start()

    def _read_request_line(self, connection: socket.socket) -> None:
        data = b""
        while b"\r\n" not in data:
            try:
                chunk = connection.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            data += chunk
        self.requests.append(data.split(b"\r\n")[0].decode("latin-1"))

    def paths(self) -> list[str]:
        """The paths requested, once every reader is done."""
        for reader in list(self.readers):
            reader.join(timeout=10)
        return [request.split(" ")[1] for request in self.requests]

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.socket.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


HANG = 120
"""A hang guard, far above the ~1 s per weight this takes (the test's timeout is 1 s; retries took minutes)."""


def _message(call) -> str:
    with pytest.raises(MissingWeightsError) as err:
        call()
    message = str(err.value)
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message, message
    return message


def test_silent_network_fails_once_with_one_sentence_per_weight(silent_server, tmp_path, monkeypatch):
    endpoint = f"http://127.0.0.1:{silent_server.port}"
    # what HF_HUB_OFFLINE=0 HF_ENDPOINT=... HF_HUB_ETAG_TIMEOUT=1 give a process (huggingface_hub reads them at import)
    for name, value in {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint, "HF_HUB_ETAG_TIMEOUT": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub_constants, "HF_HUB_ETAG_TIMEOUT", 1)  # the bound under test made short (default 10 s)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing cached
    monkeypatch.setenv("GOLDENNOISE_CACHE", str(tmp_path / "cache"))
    calls = {"hpsv2": lambda: load_hpsv2("v2.1"), "clip": lambda: load_clip_backbone("nobody/some-clip"),
             "backbone": lambda: load_backbone("nobody/some-sd"),
             "url": lambda: resolve_file(f"{endpoint}/weights/model.pth", "model.pth"),
             "swin": lambda: init_swin_from_imagenet(NPNet(NPNetConfig(text_dim=8, text_len=1, latent_size=8)))}
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["messages"] = {name: _message(call) for name, call in calls.items()}
        except BaseException as err:  # re-raised below, in the test's thread
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=HANG)
    assert not worker.is_alive(), f"still waiting for the silent network after {HANG} s: retrying?"
    if "error" in outcome:
        raise outcome["error"]
    hpsv2, clip, backbone, url, swin = (outcome["messages"][name] for name in calls)
    assert re.fullmatch(
        rf"'HPS_v2\.1_compressed\.pt' of hub repo 'xswu/HPSv2' is not in the Hugging Face cache and the hub at "
        rf"{re.escape(endpoint)} did not answer within 1 s \(\w+\); check the network \(or HF_ENDPOINT\), "
        r"or pass a local path\.", hpsv2), hpsv2
    assert "CLIP model 'nobody/some-clip'" in clip and "did not answer within 1 s" in clip
    assert "'nobody/some-sd'" in backbone and "did not answer within 1 s" in backbone
    assert "'model.pth'" in url and "timed out" in url
    assert "Swin-T 'swin_tiny_patch4_window7_224.ms_in1k'" in swin and "swin_init='random'" in swin
    weights = [path for path in silent_server.paths() if not path.startswith("/api/")]  # not the hub's own checks
    assert sorted(weights) == ["/nobody/some-clip/resolve/main/config.json",
                               "/nobody/some-sd/resolve/main/model_index.json",
                               "/timm/swin_tiny_patch4_window7_224.ms_in1k/resolve/main/model.safetensors",
                               "/weights/model.pth",
                               "/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt"]  # one request per weight: no retry

"""Pinned, hash-checked checkpoint downloads and local files (a local HTTP server on 127.0.0.1, no network)."""
from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from eoembed.errors import WeightsMismatchError, WeightsNotFound
from eoembed.models import get_model, list_models, load_model, register
from eoembed.models import registry as registry_mod
from eoembed.models import weights as weights_mod
from eoembed.models.base import WeightSource
from eoembed.models.weights import download_checkpoint, resolve

REV = "0123456789abcdef0123456789abcdef01234567"
#: Published files whose SHA-256 eoembed does not know (documented in the model module; downloads are refused).
KNOWN_UNHASHED = {"CopernicusFM_ViT_base_varlang_e100.pth"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``<folder>/<last path segment>`` for any URL; a URL with a ``/short/`` segment announces the full
    length but sends only half and closes (an interrupted transfer)."""

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requests.append(self.path)
        path = Path(self.server.folder) / self.path.rsplit("/", 1)[-1]
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if "/short/" in self.path else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """(folder served, base URL, list of requested paths); the URL base contains the pinned revision REV."""
    root = tmp_path / "served"
    root.mkdir()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(weights_mod, "DOWNLOAD_TIMEOUT_S", 10.0)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.folder = [], root
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def source(base: str, name: str, data: bytes | None, *, prefix_only: bool = False, url_name: str | None = None
           ) -> WeightSource:
    digest = sha(data) if data is not None else None
    return WeightSource(name, f"{base}/{url_name or 'org/repo/resolve'}/{REV}/{name}", revision=REV,
                        sha256=None if prefix_only else digest,
                        sha256_prefix=digest[:8] if (prefix_only and digest) else None)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture()
def tiny_registered(server):
    """A tiny DOFA registered as '_test_dl' with one published file served by the local server."""
    root, base, _ = server
    emb = load_model("dofa_base", weights=None, size="tiny")
    path = root / "tiny_dofa.pt"
    torch.save(emb.backbone.state_dict(), path)
    data = path.read_bytes()
    spec = get_model("dofa_base").resolved(None, "tiny").replace(name="_test_dl",
                                                                  weight_sources=(source(base, path.name, data),))
    register(spec, replace=True)
    try:
        yield emb, spec, data
    finally:
        registry_mod._REGISTRY.pop("_test_dl", None)


def _out(model) -> torch.Tensor:
    keys = list(model.spec.bands)
    x = np.random.default_rng(0).uniform(0, 3000, size=(1, 4, len(keys), 32, 32)).astype(np.float32)
    return model(**model.prepare(x, keys))


# ------------------------------------------------------------------------------------------- downloads
def test_download_verified_then_loaded_and_cached(isolated, server, tiny_registered):
    _, hub = isolated
    _, _, requests = server
    emb, spec, data = tiny_registered
    got = load_model("_test_dl", weights="auto")
    info = got.metadata["weights_info"]
    assert info["verified"] is True and info["origin"] == "download" and info["sha256"] == sha(data)
    assert info["sources"][0]["sha256"] == sha(data) and info["sources"][0]["revision"] == REV
    assert files_in(hub) == ["tiny_dofa.pt"] and (hub / "tiny_dofa.pt").read_bytes() == data
    torch.testing.assert_close(_out(got), _out(emb))
    assert len(requests) == 1
    again = load_model("_test_dl", weights="auto")  # from the hub cache, re-hashed, no new request
    assert again.metadata["weights_info"]["origin"] == "hub cache" and again.metadata["weights_info"]["verified"]
    assert len(requests) == 1


def test_download_hash_mismatch_keeps_nothing(isolated, server):
    _, hub = isolated
    root, base, _ = server
    (root / "ckpt.pt").write_bytes(b"tampered or changed upstream")
    src = source(base, "ckpt.pt", b"the published bytes")
    with pytest.raises(WeightsMismatchError) as err:
        resolve("m", [src], "auto")
    msg = str(err.value)
    assert sha(b"tampered or changed upstream") in msg and sha(b"the published bytes") in msg
    assert "ckpt.pt" in msg and src.url in msg and "nothing was kept" in msg
    assert files_in(hub) == []  # neither the final name nor a part file


def test_torchgeo_style_prefix_is_checked(isolated, server):
    _, hub = isolated
    root, base, _ = server
    data = b"torchgeo re-hosted checkpoint"
    name = f"model-{sha(data)[:8]}.pth"
    (root / name).write_bytes(data)
    found = resolve("m", [source(base, name, data, prefix_only=True)], "auto")
    assert found.verified and found.expected == sha(data)[:8] and found.sha256 == sha(data)
    assert files_in(hub) == [name]
    wrong = f"model-{'0' * 8}.pth"
    (root / wrong).write_bytes(data)
    with pytest.raises(WeightsMismatchError, match="00000000"):
        resolve("m", [WeightSource(wrong, f"{base}/r/{REV}/{wrong}", revision=REV, sha256_prefix="0" * 8)], "auto")
    assert files_in(hub) == [name]


def test_truncated_download_not_trusted(isolated, server):
    _, hub = isolated
    root, base, _ = server
    data = bytes(range(256)) * 400
    (root / "big.pt").write_bytes(data)
    short = source(base, "big.pt", data, url_name="short")
    with pytest.raises(WeightsNotFound, match="nothing was kept"):
        download_checkpoint(short, hub, "m")
    assert files_in(hub) == []
    with pytest.raises(WeightsNotFound, match="big.pt"):  # the next run does not find anything to trust
        resolve("m", [short], "auto", download=False)
    assert download_checkpoint(source(base, "big.pt", data), hub, "m") == hub / "big.pt"
    assert files_in(hub) == ["big.pt"]


def test_ctrl_c_mid_download_leaves_nothing(isolated, server, monkeypatch):
    _, hub = isolated
    root, base, _ = server
    data = b"x" * (3 << 20)
    (root / "ckpt.pt").write_bytes(data)
    real = urllib.request.urlopen

    def interrupted(*a, **k):
        resp = real(*a, **k)
        read = resp.read
        calls = []

        def read_then_interrupt(n=-1):
            calls.append(n)
            if len(calls) > 1:
                raise KeyboardInterrupt
            return read(n)

        resp.read = read_then_interrupt
        return resp

    monkeypatch.setattr(urllib.request, "urlopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download_checkpoint(source(base, "ckpt.pt", data), hub, "m")
    assert files_in(hub) == []


def test_unknown_hash_refuses_download_and_warns_for_local_copy(isolated, server):
    env, hub = isolated
    root, base, requests = server
    (root / "nohash.pt").write_bytes(b"anything")
    src = source(base, "nohash.pt", None)
    with pytest.raises(WeightsNotFound, match="no published SHA-256"):
        resolve("m", [src], "auto")
    assert requests == [] and files_in(hub) == []
    (env / "nohash.pt").write_bytes(b"anything")
    with pytest.warns(UserWarning, match="without a hash check"):
        found = resolve("m", [src], "auto")
    assert found.origin == "EOEMBED_WEIGHTS" and found.verified is False and "UNVERIFIED" in found.note


# ------------------------------------------------------------------------------------------ local files
def test_local_partial_or_wrong_file_is_rejected(isolated, server, tiny_registered):
    env, hub = isolated
    emb, spec, data = tiny_registered
    (hub / "tiny_dofa.pt").write_bytes(data[: len(data) // 2])  # e.g. copied while still downloading
    (hub / ".tiny_dofa.pt.abc.part").write_bytes(data)  # a part file is never used
    with pytest.raises(WeightsMismatchError) as err:
        load_model("_test_dl", weights="auto", download=False)
    msg = str(err.value)
    assert str(hub / "tiny_dofa.pt") in msg and sha(data) in msg and sha(data[: len(data) // 2]) in msg
    assert "delete" in msg and "weights='/path/to/it'" in msg
    (env / "tiny_dofa.pt").write_bytes(data)  # EOEMBED_WEIGHTS wins over the hub cache and is verified
    assert load_model("_test_dl", weights="auto", download=False).metadata["weights_info"]["verified"]


def test_explicit_path_rules(isolated, tmp_path, tiny_registered):
    emb, spec, data = tiny_registered
    published_name = tmp_path / "tiny_dofa.pt"
    published_name.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(WeightsMismatchError, match="another file name"):
        load_model("_test_dl", weights=published_name)
    # the user's own checkpoint (e.g. fine-tuned): loads, strictly, with a note
    tuned = emb.backbone.state_dict()
    tuned["fc_norm.weight"] = tuned["fc_norm.weight"] * 2
    own = tmp_path / "my_finetuned.pt"
    torch.save(tuned, own)
    info = load_model("_test_dl", weights=own).metadata["weights_info"]
    assert info["verified"] is False and info["origin"] == "explicit" and "not a published" in info["verification"]
    renamed = tmp_path / "copy.pt"
    renamed.write_bytes(data)
    info = load_model("_test_dl", weights=renamed).metadata["weights_info"]
    assert info["verified"] is True and "renamed copy" in info["verification"]


# ---------------------------------------------------------------------------------- declared sources
@pytest.mark.parametrize("kwargs, match", [
    (dict(url="https://hf.co/org/m/resolve/main/f.pt", revision="main"), "revision"),
    (dict(url="https://hf.co/org/m/resolve/main/f.pt"), "revision"),
    (dict(url="https://hf.co/org/m/resolve/main/f.pt", revision=REV), "not pinned"),
    (dict(url=f"https://hf.co/org/m/blob/main/{REV}/f.pt", revision=REV), "moving ref 'main'"),
    (dict(sha256="abc"), "not a lower-case hex"),
    (dict(sha256="a" * 64, sha256_prefix="bbbbbbbb"), "does not start with"),
])
def test_weight_source_must_be_pinned_and_consistent(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeightSource("f.pt", **kwargs)
    with pytest.raises(ValueError, match="file name carries hash prefix"):
        WeightSource("f-0238d814.pt", sha256_prefix="921e69ad")


def test_every_published_source_is_pinned_and_hashed():
    seen = set()
    for name in list_models()["name"]:
        base = get_model(name)
        for preset in [None, *base.presets]:
            for s in base.resolved(preset).weight_sources:
                seen.add(s.filename)
                assert s.url and s.revision and f"/{s.revision}/" in s.url, (name, s)
                assert "/main/" not in s.url and "/master/" not in s.url, (name, s)
                assert bool(s.expected_sha256) != (s.filename in KNOWN_UNHASHED), (name, s.filename)
    assert KNOWN_UNHASHED <= seen and len(seen) >= 9


# ------------------------------------------------------------------------------------- real Presto file
def test_real_presto_pinned_hash_download_and_reference(isolated, server, shared_dir):
    from eoembed.models.presto import PRESTO_REVISION, PRESTO_SHA256, PRESTO_SPEC

    real = shared_dir / "weights" / "presto" / "default_model.pt"
    if not real.is_file():
        pytest.skip(f"{real} is absent")
    assert weights_mod.file_sha256(real) == PRESTO_SHA256 == PRESTO_SPEC.weight_sources[0].sha256
    root, base, requests = server
    (root / "default_model.pt").write_bytes(real.read_bytes())
    src = WeightSource("default_model.pt", f"{base}/nasaharvest/presto/raw/{PRESTO_REVISION}/data/default_model.pt",
                       revision=PRESTO_REVISION, sha256=PRESTO_SHA256)
    register(PRESTO_SPEC.replace(name="_test_presto_dl", weight_sources=(src,)), replace=True)
    try:
        model = load_model("_test_presto_dl", weights="auto")
    finally:
        registry_mod._REGISTRY.pop("_test_presto_dl", None)
    assert model.metadata["weights_info"]["verified"] and model.metadata["weights_info"]["origin"] == "download"
    ref = dict(np.load(shared_dir / "weights" / "presto" / "reference_vectors.npz"))
    r = {k: torch.from_numpy(v) for k, v in ref.items() if k != "channels"}
    with torch.no_grad():
        out = model.encoder(r["x"], r["dynamic_world"], r["latlons"], r["month"], mask=r["mask"])
    assert np.abs(out.numpy() - ref["embedding_masked"]).max() < 1e-5
    assert len(requests) == 1

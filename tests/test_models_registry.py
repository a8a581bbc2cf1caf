"""Registry API, weight resolution order and strict loading (tiny models, no network)."""
from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

from eoembed.errors import DataError, WeightsMismatchError, WeightsNotFound
from eoembed.models import get_model, list_models, load_model, weights_found_locally
from eoembed.models.registry import random_init_seed
from eoembed.models.base import WeightSource
from eoembed.models.weights import LoadRules, resolve, strict_load

KEYS = ["s1/VV", "s1/VH"] + [f"s2l2a/{b}" for b in
                            ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")]


def cube(b=2, size=32, keys=KEYS, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 4000, size=(b, 4, len(keys), size, size)).astype(np.float32)
    for i, k in enumerate(keys):
        if k.startswith("s1/"):
            x[:, :, i] = rng.normal(-15, 5, size=(b, 4, size, size))
    return x


def test_list_models_columns():
    df = list_models()
    for col in ("name", "family", "modalities", "dims", "temporal", "pooling", "licence", "weights_found_locally"):
        assert col in df.columns
    expected = {"croma_base", "croma_large", "dofa_base", "dofa_large", "scalemae_large", "copernicusfm_base",
                "prithvi_eo_v2_300", "prithvi_eo_v2_600"}
    assert expected <= set(df["name"])
    row = df.set_index("name").loc["croma_large"]
    assert row["dims"] == 1024 and row["temporal"] == "per_season" and row["licence"] == "CC-BY-4.0"
    assert df.set_index("name").loc["scalemae_large", "licence"] == "CC-BY-NC-4.0"


def test_get_model_unknown_names_known():
    with pytest.raises(KeyError, match="croma_base"):
        get_model("no_such_model")


def test_resolution_order(isolated, tmp_path):
    env, hub = isolated
    rev = "0" * 40
    src = [WeightSource("ckpt.pt", f"https://example.invalid/{rev}/ckpt.pt", revision=rev,
                        sha256=hashlib.sha256(b"same").hexdigest())]
    (hub / "ckpt.pt").write_bytes(b"same")
    found = resolve("m", src, "auto", download=False)
    assert found[0] == hub / "ckpt.pt" and found.origin == "hub cache" and found.verified
    (env / "ckpt.pt").write_bytes(b"same")
    found = resolve("m", src, "auto", download=False)
    assert found[0] == env / "ckpt.pt" and found.origin == "EOEMBED_WEIGHTS"
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"x")
    found = resolve("m", src, str(explicit), download=False)
    assert found[0] == explicit and found.origin == "explicit" and not found.verified
    with pytest.raises(WeightsNotFound, match="does not exist"):
        resolve("m", src, str(tmp_path / "absent.pt"))


def test_auto_nothing_found_raises_never_random(isolated, monkeypatch):
    env, hub = isolated

    def offline(*a, **k):
        raise OSError("network unreachable")

    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsNotFound) as err:
        load_model("croma_base", weights="auto")
    msg = str(err.value)
    assert "CROMA_base-0238d814.pt" in msg and str(env) in msg and str(hub) in msg and "network unreachable" in msg
    assert not list(hub.iterdir())  # nothing (no part file) left behind
    with pytest.raises(WeightsNotFound, match="no published weights"):
        load_model("croma_base", weights="auto", size="tiny")
    assert weights_found_locally(get_model("croma_base")) is None
    (hub / "CROMA_base-0238d814.pt").write_bytes(b"")
    assert weights_found_locally(get_model("croma_base")) == str(hub / "CROMA_base-0238d814.pt")
    assert bool(list_models().set_index("name").loc["croma_base", "weights_found_locally"])


def test_random_weights_id_and_metadata():
    emb = load_model("croma_base", weights=None, size="tiny")
    assert emb.weights_id == "random"
    md = emb.metadata
    assert md["weights"] == "random" and md["random_weights"] is True and md["size"] == "tiny"
    for k in ("model", "weights", "preset", "size", "band_mapping", "temporal", "pooling", "eoembed_version"):
        assert k in md
    import json
    json.dumps(md)


def digest(module):
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode() + v.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = load_model("croma_base", weights=None, size="tiny")
    b = load_model("croma_base", weights=None, size="tiny")
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.metadata["random_init_seed"] == random_init_seed("croma_base", "tiny") == b.random_init_seed
    assert random_init_seed("croma_base", "tiny") != random_init_seed("croma_base", "tiny", "embed2scale")
    other = load_model("croma_base", weights=None, size="tiny", seed=1)
    assert other.metadata["random_init_seed"] == 1 and digest(other) != digest(a)
    with pytest.raises(ValueError, match="seed"):
        load_model("croma_base", weights=None, size="tiny", seed=-1)
    # the same random model in another process (resumed extraction, Dask workers)
    code = ("import hashlib\nfrom eoembed.models import load_model\n" + inspect.getsource(digest)
            + "print(digest(load_model('croma_base', weights=None, size='tiny')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(a)


def test_strict_roundtrip_and_mismatch(tmp_path):
    emb = load_model("dofa_base", weights=None, size="tiny")
    torch.manual_seed(0)
    path = tmp_path / "tiny_dofa.pt"
    torch.save(emb.backbone.state_dict(), path)
    again = load_model("dofa_base", weights=str(path), size="tiny")
    assert again.weights_id.startswith("tiny_dofa.pt@sha256:")
    assert again.metadata["random_weights"] is False and again.metadata["random_init_seed"] is None
    x = cube(keys=["s1/VV", "s1/VH"] + [f"s2l1c/{b}" for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07",
                                                                "B08", "B8A", "B09", "B10", "B11", "B12")])
    keys = ["s1/VV", "s1/VH"] + list(get_model("dofa_base").group_dict["s2"])
    a = emb(**emb.prepare(x, keys))
    b = again(**again.prepare(x, keys))
    torch.testing.assert_close(a, b)

    sd = emb.backbone.state_dict()
    name = "blocks.0.attn.qkv.weight"
    bad = dict(sd)
    del bad[name]
    torch.save(bad, tmp_path / "missing.pt")
    with pytest.raises(WeightsMismatchError, match="blocks.0.attn.qkv.weight"):
        load_model("dofa_base", weights=str(tmp_path / "missing.pt"), size="tiny")
    bad = dict(sd, **{"extra.tensor": torch.zeros(3)})
    torch.save(bad, tmp_path / "extra.pt")
    with pytest.raises(WeightsMismatchError, match="extra.tensor"):
        load_model("dofa_base", weights=str(tmp_path / "extra.pt"), size="tiny")
    bad = dict(sd)
    bad[name] = torch.zeros(5, 5)
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(WeightsMismatchError, match=r"blocks.0.attn.qkv.weight: file \(5, 5\)"):
        load_model("dofa_base", weights=str(tmp_path / "shape.pt"), size="tiny")


def test_defaulted_and_dropped_rules():
    lin = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    sd = {"0.weight": torch.ones(2, 2), "0.bias": torch.zeros(2), "decoder.w": torch.zeros(1)}
    rep = strict_load(lin, sd, LoadRules(defaulted=("1.weight", "1.bias"), dropped_prefixes=("decoder",)))
    assert rep.defaulted == ["1.bias", "1.weight"] and rep.dropped == ["decoder.w"] and rep.loaded == 2
    with pytest.raises(WeightsMismatchError, match="1.weight"):
        strict_load(lin, sd, LoadRules(dropped_prefixes=("decoder",)))


def test_missing_band_error_and_fill_mean():
    emb = load_model("croma_base", weights=None, size="tiny")
    keys = [k for k in KEYS if k != "s2l2a/B05"]
    x = cube(keys=keys)
    with pytest.raises(ValueError, match="s2l2a/B05") as err:
        emb.prepare(x, keys)
    assert "fill-mean" in str(err.value)
    filled = load_model("croma_base", weights=None, size="tiny", missing_bands="fill-mean")
    inp = filled.prepare(x, keys)
    j = list(filled.spec.group_dict["optical"]).index("s2l2a/B05")
    # CROMA's default scaling maps the mean to 0.5 (mean +- 2 std -> [0, 1])
    assert torch.all(inp["optical"][:, :, j] == 0.5)
    assert filled(**inp).shape == (2, 4, filled.spec.embed_dim)
    md = filled.metadata
    assert md["filled_bands"] == ["s2l2a/B05"] and md["missing_bands_policy"] == "fill-mean"


def test_fill_mean_whole_group_absent():
    """A WorldCereal-like cube: S1 + S2 L2A without B01/B8A/B09, no L1C at all."""
    keys = ["s1/VV", "s1/VH"] + [f"s2l2a/{b}" for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")]
    x = cube(keys=keys)
    dofa = load_model("dofa_base", weights=None, size="tiny")
    with pytest.raises(DataError, match="s2l1c/B01"):
        dofa.prepare(x, keys)
    dofa = load_model("dofa_base", weights=None, size="tiny", missing_bands="fill-mean")
    inp = dofa.prepare(x, keys)
    assert inp["s2"].shape == (2, 4, 13, 32, 32) and torch.all(inp["s2"] == 0)  # z-score: the mean maps to 0
    assert inp["s1"].std() > 0.1
    assert torch.isfinite(dofa(**inp)).all()
    assert dofa.metadata["filled_bands"] == sorted(dofa.spec.group_dict["s2"])
    croma = load_model("croma_base", weights=None, size="tiny", missing_bands="fill-mean")  # needs L2A only
    inp = croma.prepare(x, keys)
    optical = list(croma.spec.group_dict["optical"])
    absent = [k for k in optical if k not in keys]
    assert absent == ["s2l2a/B01", "s2l2a/B8A", "s2l2a/B09"]
    for k in optical:
        band = inp["optical"][:, :, optical.index(k)]
        assert torch.all(band == 0.5) if k in absent else band.std() > 0.01, k
    assert torch.isfinite(croma(**inp)).all() and croma.metadata["filled_bands"] == sorted(absent)
    with pytest.raises(DataError, match="none of them"):
        load_model("scalemae_large", weights=None, size="tiny", missing_bands="fill-mean").prepare(x[:, :, :2],
                                                                                                   keys[:2])


def test_prepare_validation_offset_and_resize():
    emb = load_model("dofa_base", weights=None, size="tiny")
    keys = list(emb.spec.bands)
    x = cube(keys=keys, size=48)
    with pytest.raises(ValueError, match="channels"):
        emb.prepare(x[:, :, :-1], keys)
    with pytest.raises(ValueError, match="4 seasons"):
        emb.prepare(x[:, :3], keys)
    nan = x.copy()
    nan[0, 0, 3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="s2l1c/B02"):
        emb.prepare(nan, keys)
    # z-score with SSL4EO v1.1 stats: a DN equal to (mean - 1000) becomes 0 because +1000 is added first
    norm = emb.spec.normalisation
    const = np.zeros_like(x)
    for i, k in enumerate(keys):
        const[:, :, i] = norm.mean[k] - norm.offset.get(k, 0.0)
    inp = emb.prepare(const, keys)
    assert inp["s2"].shape == (2, 4, 13, 32, 32)
    torch.testing.assert_close(inp["s2"], torch.zeros_like(inp["s2"]), atol=1e-4, rtol=0)
    assert norm.offset["s2l1c/B01"] == 1000.0 and norm.offset["s1/VV"] == 0.0

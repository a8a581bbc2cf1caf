"""Every model's tiny configuration: forward shapes, presets, published checkpoint formats (no network)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from eoembed.data.bands import all_band_keys
from eoembed.models import get_model, load_model

ALL = all_band_keys()  # 27 bands: s1, s2l1c, s2l2a
ZOO = ["croma_base", "croma_large", "dofa_base", "dofa_large", "scalemae_large", "copernicusfm_base",
       "prithvi_eo_v2_300", "prithvi_eo_v2_600"]


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 4000, size=(2, 4, len(ALL), 32, 32)).astype(np.float32)
    a[:, :, :2] = rng.normal(-15, 5, size=(2, 4, 2, 32, 32))
    return a


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("preset", [None, "embed2scale"])
def test_tiny_forward_shape(name, preset, x):
    emb = load_model(name, weights=None, size="tiny", preset=preset)
    inp = emb.prepare(x, ALL, lat=np.array([48.1, np.nan]), lon=np.array([11.6, np.nan]))
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in inp.values())
    out = emb(**inp)
    D = emb.spec.embed_dim
    assert out.shape == ((2, 4, D) if emb.spec.temporal == "per_season" else (2, D))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, emb(**inp))  # deterministic in eval mode
    # batch independence: sample 0 alone gives the same embedding
    one = emb(**emb.prepare(x[:1], ALL, lat=np.array([48.1]), lon=np.array([11.6])))
    torch.testing.assert_close(one[0], out[0], atol=1e-4, rtol=1e-4)
    assert emb.metadata["preset"] == (preset or "default")


def test_full_dims_declared():
    dims = {n: get_model(n).embed_dim for n in ZOO}
    assert dims == {"croma_base": 768, "croma_large": 1024, "dofa_base": 1536, "dofa_large": 2048,
                    "scalemae_large": 1024, "copernicusfm_base": 1536, "prithvi_eo_v2_300": 2048,
                    "prithvi_eo_v2_600": 2560}
    e2s = {n: get_model(n).resolved("embed2scale").embed_dim for n in ZOO}
    assert e2s["scalemae_large"] == 2048 and e2s["copernicusfm_base"] == 768 and e2s["dofa_base"] == 1536


def test_embed2scale_band_selection():
    g = {n: get_model(n).resolved("embed2scale") for n in ZOO}
    assert g["croma_large"].bands == get_model("croma_large").bands  # L2A + S1 in both
    assert g["croma_large"].normalisation.offset["s2l2a/B02"] == 0.0  # winning code did not add +1000
    assert get_model("croma_large").normalisation.offset["s2l2a/B02"] == 1000.0
    assert g["scalemae_large"].group_dict == {"s1": ("s1/VV", "s1/VH", "s1/VV"),
                                             "s2": ("s2l1c/B08", "s2l1c/B04", "s2l1c/B03")}
    assert get_model("scalemae_large").bands == ("s2l2a/B04", "s2l2a/B03", "s2l2a/B02")
    assert g["prithvi_eo_v2_600"].bands == ("s2l1c/B03", "s2l1c/B04", "s2l1c/B05", "s2l1c/B8A", "s2l1c/B11",
                                            "s2l1c/B12")
    assert get_model("prithvi_eo_v2_600").bands[:3] == ("s2l2a/B02", "s2l2a/B03", "s2l2a/B04")
    assert g["prithvi_eo_v2_300"].input_size == 256
    assert g["copernicusfm_base"].group_dict == {"s1s2": get_model("copernicusfm_base").bands}
    assert g["dofa_base"].options["s1_wavelength_um"] == 5.405


def test_preset_changes_needed_bands():
    keys = [k for k in ALL if not k.startswith("s2l1c/")]  # an L2A-only cube
    x = np.full((1, 4, len(keys), 32, 32), 1500.0, np.float32)
    default = load_model("scalemae_large", weights=None, size="tiny")
    assert default(**default.prepare(x, keys)).shape == (1, 4, 64)
    e2s = load_model("scalemae_large", weights=None, size="tiny", preset="embed2scale")
    with pytest.raises(ValueError, match="s2l1c/B08"):
        e2s.prepare(x, keys)


def test_croma_published_nested_format(tmp_path, x):
    emb = load_model("croma_base", weights=None, size="tiny")
    sd = emb.backbone.state_dict()
    nested: dict = {}
    for k, v in sd.items():
        if k == "attn_bias":
            continue
        sub, rest = k.split(".", 1)
        nested.setdefault(sub, {})[rest] = v
    torch.save(nested, tmp_path / "CROMA_tiny.pt")
    again = load_model("croma_base", weights=str(tmp_path / "CROMA_tiny.pt"), size="tiny")
    torch.testing.assert_close(emb(**emb.prepare(x, ALL)), again(**again.prepare(x, ALL)))
    assert again.weights_info["computed"] == ["attn_bias"]


def test_prithvi_mae_format(tmp_path, x):
    emb = load_model("prithvi_eo_v2_300", weights=None, size="tiny")
    sd = {f"encoder.{k}": v for k, v in emb.backbone.state_dict().items()}
    sd["decoder.decoder_embed.weight"] = torch.zeros(4, 4)
    sd["decoder.mask_token"] = torch.zeros(1, 1, 4)
    torch.save(sd, tmp_path / "prithvi_tiny.pt")
    again = load_model("prithvi_eo_v2_300", weights=str(tmp_path / "prithvi_tiny.pt"), size="tiny")
    info = again.weights_info
    assert set(info["dropped"]) == {"decoder.decoder_embed.weight", "decoder.mask_token"}
    torch.testing.assert_close(emb(**emb.prepare(x, ALL)), again(**again.prepare(x, ALL)))


def test_dofa_and_copernicus_fc_norm_defaulted(tmp_path):
    for name in ("dofa_base", "copernicusfm_base"):
        emb = load_model(name, weights=None, size="tiny")
        sd = {k: v for k, v in emb.backbone.state_dict().items() if not k.startswith("fc_norm.")}
        torch.save({"model": sd} if name == "copernicusfm_base" else sd, tmp_path / f"{name}.pt")
        again = load_model(name, weights=str(tmp_path / f"{name}.pt"), size="tiny")
        assert again.weights_info["defaulted"] == ["fc_norm.bias", "fc_norm.weight"]


def test_copernicus_metadata_inputs(x):
    emb = load_model("copernicusfm_base", weights=None, size="tiny")
    inp = emb.prepare(x, ALL, lat=np.array([48.1, np.nan]), lon=np.array([11.6, np.nan]))
    meta = inp["metadata"]
    assert meta.shape == (2, 4, 4)
    assert meta[0, 0, 0] == pytest.approx(11.6) and meta[0, 0, 1] == pytest.approx(48.1)
    assert torch.isnan(meta[1, :, :2]).all() and torch.isnan(meta[:, :, 2]).all()
    assert meta[0, 0, 3] == pytest.approx((32 * 10 / 1000) ** 2)
    e2s = load_model("copernicusfm_base", weights=None, size="tiny", preset="embed2scale")
    assert torch.isnan(e2s.prepare(x, ALL, lat=np.array([1.0, 2.0]), lon=np.array([1.0, 2.0]))["metadata"]).all()


def test_crop_resize_mode(x):
    emb = load_model("dofa_base", weights=None, size="tiny")
    crop = emb.spec.replace(resize="crop", input_size=16)
    cropped = type(emb)(crop, size="tiny")
    inp = cropped.prepare(x, ALL)
    ref = emb.spec.normalisation.apply(torch.from_numpy(x[:, :, 0:2, 8:24, 8:24]).reshape(8, 2, 16, 16),
                                       ["s1/VV", "s1/VH"])
    torch.testing.assert_close(inp["s1"].reshape(8, 2, 16, 16), ref)


@pytest.mark.slow
def test_full_size_croma_base_random():
    emb = load_model("croma_base", weights=None)
    n = sum(p.numel() for p in emb.parameters())
    assert n > 50_000_000
    x = np.zeros((1, 4, len(ALL), 264, 264), np.float32)
    assert emb(**emb.prepare(x, ALL)).shape == (1, 4, 768)


def test_croma_alibi_matches_torchgeo():
    from torchgeo.models.croma import get_2dalibi

    from eoembed.models.croma import alibi_2d

    torch.testing.assert_close(alibi_2d(16, 5), get_2dalibi(16, 25))


@pytest.mark.parametrize("name", ZOO)
def test_full_size_builds_on_meta_device(name):
    """Full-size architectures (no memory, no weights) give the declared embedding width."""
    spec = get_model(name).resolved(None, "full")
    with torch.device("meta"):
        emb = spec.embedder(spec, size="full")
    S = spec.input_size
    inputs = {g: torch.empty(1, 4, len(k), S, S, device="meta") for g, k in spec.groups}
    if name == "copernicusfm_base":  # its forward branches on isnan(metadata).any(): not traceable on meta
        assert emb.backbone.pos_embed.shape[-1] * spec.out_multiplier == spec.embed_dim
        return
    out = emb(**inputs)
    assert out.shape[-1] == spec.embed_dim

"""The embedded default dataset: physically plausible synthetic SSL4EO-S12-downstream samples with 11 tasks.

Each sample is a small landscape simulated from hidden generating variables and rendered into the three
modalities of the challenge data (S1 GRD dB, S2 L1C and L2A digital numbers) for the four seasons:

- Land cover: warped Voronoi parcels (field / stand boundaries) of forest, soy, corn, winter wheat, grassland,
  urban and bare soil, with a lake / river from a thresholded smooth field. Landscape composition varies strongly
  across samples (Dirichlet proportions), location is uniform over Europe (lat 38..58, lon -8..24).
- S2: per pixel linear mixture of green vegetation, dry vegetation / residue and a class background (soil darkened
  by soil moisture, forest floor, impervious surface, water), with per-class phenology (deciduous leaf-off in DJF,
  soy / corn green in JJA and harvested in SON, wheat green in MAM and ripe in JJA, summer-dry grass in the south).
  L2A is surface reflectance; L1C adds aerosol path radiance (strongest in blue), transmittance, water-vapour
  absorption at B09 and cirrus signal in B10 (L1C only). 20 m / 60 m bands are blurred accordingly. Clouds
  (bright, flat spectra, cirrus in B10, with shadows) follow a per-season cloud fraction (winter cloudiest) and
  swath-edge strips of zeros are the nodata. Values are DN = reflectance x 10000 (no +1000 offset).
- S1: VH rises and saturates with biomass / canopy volume, VV with soil moisture and volume, urban double bounce
  is bright, water is very dark (with wind roughening); 4.4-look gamma speckle. No clouds or nodata in S1.
- Tasks (``labels/<task>__<type>.csv``), computed from the generating variables: biomass_mean / biomass_std
  (woody above-ground biomass, Mg/ha; visible mostly through SAR VH and NIR), crops (soy + corn fraction; needs the
  seasonal cycle to tell from wheat / grass), landcover_agriculture (soy + corn + wheat + grassland fraction),
  landcover_forest, clouds_reg (mean cloud opacity over seasons), heatisland_mean / heatisland_std (summer land
  surface temperature, deg C, from urban / forest / water fractions plus a hidden temperature field: only weakly
  visible), nodata (fraction of zero S2 pixels), random_reg (uniform 0..20 noise) and random_cls (random_reg > 10).

Every sample is generated from its own random streams seeded by ``(seed, index)``, so files are bit-identical
across runs and an interrupted ``sample`` call resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from eoembed.data.bands import S2L1C_BANDS, SEASONS
from eoembed.data.labels import write_labels
from eoembed.data.ssl4eo import sample_path, write_meta, write_sample_file
from eoembed.errors import DataError

GENERATOR_VERSION = 1
CLASSES = ("forest", "soy", "corn", "wheat", "grassland", "urban", "bare", "water")
FOREST, SOY, CORN, WHEAT, GRASS, URBAN, BARE, WATER = range(8)

TASK_TYPES: dict[str, str] = {
    "biomass_mean": "regression", "biomass_std": "regression", "crops": "regression",
    "landcover_agriculture": "regression", "landcover_forest": "regression", "clouds_reg": "regression",
    "heatisland_mean": "regression", "heatisland_std": "regression", "nodata": "regression",
    "random_reg": "regression", "random_cls": "classification",
}

# Surface reflectance spectra in S2 L1C band order B01..B12 (B10 is set separately: absorbed at the surface).
_B = {b: i for i, b in enumerate(S2L1C_BANDS)}
_GREEN = np.array([  # green canopy per class (forest darker, soy broadleaf brightest NIR, corn less)
    [.020, .025, .050, .025, .080, .220, .280, .300, .310, .300, 0, .140, .060],  # forest
    [.030, .035, .075, .035, .110, .330, .440, .480, .500, .480, 0, .230, .100],  # soy
    [.030, .040, .080, .040, .120, .300, .380, .410, .430, .420, 0, .240, .110],  # corn
    [.030, .035, .070, .035, .100, .300, .390, .430, .450, .440, 0, .220, .100],  # wheat
    [.030, .035, .075, .040, .110, .290, .370, .400, .420, .410, 0, .240, .120],  # grass
    [.030, .035, .070, .040, .100, .270, .340, .370, .390, .380, 0, .220, .110],  # urban (parks, trees)
    [.030, .035, .070, .040, .100, .270, .340, .370, .390, .380, 0, .220, .110],  # bare
    [.030, .035, .070, .040, .100, .270, .340, .370, .390, .380, 0, .220, .110],  # water
], np.float32)
_DRY = np.array([.060, .070, .100, .130, .160, .190, .210, .230, .250, .250, 0, .330, .240], np.float32)
_BACKGROUND = np.array([
    [.030, .035, .050, .060, .080, .110, .130, .150, .160, .160, 0, .200, .130],  # forest floor / litter
    [.080, .100, .140, .180, .210, .230, .250, .270, .280, .280, 0, .360, .300],  # soil
    [.080, .100, .140, .180, .210, .230, .250, .270, .280, .280, 0, .360, .300],
    [.080, .100, .140, .180, .210, .230, .250, .270, .280, .280, 0, .360, .300],
    [.080, .100, .140, .180, .210, .230, .250, .270, .280, .280, 0, .360, .300],
    [.110, .120, .140, .160, .170, .180, .190, .200, .205, .205, 0, .230, .210],  # impervious
    [.110, .130, .170, .220, .250, .270, .290, .300, .310, .310, 0, .400, .350],  # bare (bright soil / rock)
    [.050, .045, .040, .020, .015, .010, .008, .007, .006, .005, 0, .002, .001],  # water
], np.float32)
_CLOUD = np.array([.55, .55, .56, .57, .58, .58, .58, .58, .57, .50, 0, .42, .28], np.float32)
# Atmosphere for L1C (top of atmosphere) from L2A (surface): path radiance per unit aerosol and transmittance.
_PATH = np.array([.095, .075, .050, .033, .028, .024, .020, .018, .016, .012, 0, .004, .002], np.float32)
_TRANS = np.array([.80, .85, .90, .93, .94, .95, .95, .96, .96, .40, 0, .97, .97], np.float32)
# Green cover per class and season (MAM, JJA, SON, DJF); forest = evergreen / deciduous mix handled separately.
_PHEN_GREEN = np.array([
    [.85, .85, .85, .85],  # forest (evergreen part)
    [.05, .85, .15, .00],  # soy: sown May, green JJA, harvested Sep/Oct
    [.05, .75, .30, .00],  # corn: green JJA, harvested Oct
    [.80, .20, .05, .30],  # winter wheat: green MAM, ripe/harvested JJA, sown in autumn
    [.85, .65, .70, .50],  # grassland
    [.15, .20, .15, .05],  # urban
    [.02, .03, .02, .00],  # bare
    [.00, .00, .00, .00],  # water
], np.float32)
_PHEN_DECID = np.array([.60, .90, .55, .10], np.float32)
_PHEN_DRY = np.array([
    [.05, .05, .10, .10], [.00, .05, .60, .30], [.00, .10, .55, .50], [.10, .70, .20, .00],
    [.05, .25, .15, .30], [.00, .05, .05, .00], [.00, .00, .00, .00], [.00, .00, .00, .00],
], np.float32)
# Canopy volume for SAR (Mg/ha-equivalent) of non-forest classes per season.
_SAR_VOLUME = np.array([
    [0, 0, 0, 0], [2, 35, 6, 0], [3, 70, 25, 0], [30, 15, 2, 8], [8, 6, 7, 5], [0, 0, 0, 0], [0, 0, 0, 0],
    [0, 0, 0, 0]], np.float32)
_CLOUD_SEASON = np.array([.30, .15, .35, .50], np.float32)
_SOIL_MOIST_SEASON = np.array([.28, .15, .25, .35], np.float32)
_DOY_MID = (105, 196, 288, 15)


def sample_id(seed: int, index: int) -> str:
    """The 64-hex id of sample ``index`` of seed ``seed`` (sha256, like the challenge ids)."""
    return hashlib.sha256(f"eoembed-sample:{seed}:{index}".encode()).hexdigest()


def _smooth(rng: np.random.Generator, k: int, size: int, scale: float) -> np.ndarray:
    """k standardised Gaussian random fields (k, size, size) with correlation length ~``scale`` pixels."""
    import scipy.fft as sfft

    noise = rng.standard_normal((k, size, size), dtype=np.float32)
    f = np.fft.fftfreq(size).astype(np.float32)
    fr = np.fft.rfftfreq(size).astype(np.float32)
    kern = np.exp(-2 * (np.pi * scale) ** 2 * (f[:, None] ** 2 + fr[None, :] ** 2)).astype(np.float32)
    out = sfft.irfft2(sfft.rfft2(noise, workers=1) * kern, s=(size, size), workers=1).astype(np.float32, copy=False)
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-6
    return out


def _latents(seed: int, index: int, size: int) -> dict:
    """Hidden generating variables of one sample (land cover, biomass, moisture, clouds, nodata, temperature)."""
    rng = np.random.default_rng([seed, index, 0])
    s = size
    lat = rng.uniform(38.0, 58.0)
    lon = rng.uniform(-8.0, 24.0)
    alpha = np.array([.5, .35, .35, .35, .45, .25, .15], np.float64)
    props = rng.dirichlet(alpha)
    k = int(rng.integers(12, 48))
    centres = rng.uniform(0, s, (k, 2)).astype(np.float32)
    warp = _smooth(rng, 3, s, s / 6)
    yy, xx = np.meshgrid(np.arange(s, dtype=np.float32), np.arange(s, dtype=np.float32), indexing="ij")
    wy, wx = yy + 0.06 * s * warp[0], xx + 0.06 * s * warp[1]
    d = (wy[None] - centres[:, 0, None, None]) ** 2 + (wx[None] - centres[:, 1, None, None]) ** 2
    parcel = d.argmin(axis=0)
    pclass = rng.choice(7, size=k, p=props)
    cls = pclass[parcel].astype(np.int8)
    has_water = rng.random() < 0.35
    water_frac = rng.uniform(0.02, 0.3) if has_water else 0.0
    if water_frac > 0:
        wf = warp[2]
        cls[wf > np.quantile(wf, 1 - water_frac)] = WATER
    fine = _smooth(rng, 3, s, max(s / 40, 1.0))
    # woody biomass (Mg/ha): stand mean x fine texture; trees in urban parks
    stand_b = rng.uniform(40, 320, k).astype(np.float32)
    biomass = np.zeros((s, s), np.float32)
    forest = cls == FOREST
    biomass[forest] = (stand_b[parcel] * np.clip(1 + 0.25 * fine[0], 0.2, None))[forest]
    urban = cls == URBAN
    biomass[urban] = np.clip(15 + 10 * fine[0], 0, None)[urban]
    decid = rng.uniform(0, 1, k).astype(np.float32)[parcel]
    jitter = rng.normal(0, 0.06, (k, 4)).astype(np.float32)[parcel].transpose(2, 0, 1)  # (4, s, s)
    moist_f = _smooth(rng, 1, s, s / 5)[0]
    sm = np.clip(_SOIL_MOIST_SEASON[:, None, None] * rng.uniform(0.6, 1.4)
                 + 0.06 * moist_f[None], 0.03, 0.5).astype(np.float32)  # (4, s, s)
    # clouds: per-season fraction, soft-edged opacity from a thresholded smooth field
    cfrac = np.clip(_CLOUD_SEASON * rng.uniform(0.2, 1.8) * rng.beta(1.2, 1.2, 4) * 2, 0, 0.95).astype(np.float32)
    cf = _smooth(rng, 4, s, s / 10)
    cloud = np.zeros((4, s, s), np.float32)
    for t in range(4):
        if cfrac[t] > 0.005:
            thr = np.quantile(cf[t], 1 - cfrac[t])
            cloud[t] = np.clip((cf[t] - thr) / 0.5 + 0.5, 0, 1) ** 0.7 * (cf[t] > thr - 0.25)
    cirrus = np.clip(rng.uniform(-0.02, 0.04, 4), 0, None).astype(np.float32)
    shift = rng.integers(2, max(3, s // 12), 2)
    # nodata: swath-edge strips of zeros (slanted near-vertical edges) in some seasons
    nodata = np.zeros((4, s, s), bool)
    for t in range(4):
        if rng.random() < 0.3:
            frac = rng.uniform(0.05, 0.6)
            slope = np.tan(np.deg2rad(rng.uniform(-15, 15)))
            xe = xx - slope * (yy - s / 2)
            nodata[t] = xe > np.quantile(xe, 1 - frac) if rng.random() < 0.5 else xe < np.quantile(xe, frac)
    # summer land-surface temperature: urban heat island + cooling by forest / water + hidden field
    from scipy.ndimage import gaussian_filter
    sig = max(s / 25, 1.0)
    ub = gaussian_filter(urban.astype(np.float32), sig, mode="wrap")
    fb = gaussian_filter(forest.astype(np.float32), sig, mode="wrap")
    wb = gaussian_filter((cls == WATER).astype(np.float32), sig, mode="wrap")
    hidden = _smooth(rng, 1, s, s / 4)[0] * rng.uniform(1.0, 3.5)
    lst = 24 + 0.45 * (50 - lat) + 8 * ub - 3.5 * fb - 5 * wb + hidden + 0.5 * fine[1]
    aot = rng.uniform(0.4, 1.6, 4).astype(np.float32)
    wind = rng.uniform(0, 1, 4).astype(np.float32)
    calib = rng.normal(0, 0.5, 4).astype(np.float32)
    return dict(lat=lat, lon=lon, cls=cls, parcel=parcel, biomass=biomass, decid=decid, jitter=jitter, sm=sm,
                cloud=cloud, cirrus=cirrus, shift=shift, nodata=nodata, lst=lst, aot=aot, wind=wind, calib=calib,
                tex=fine[2])


def _labels(lat: dict, seed: int, index: int) -> dict[str, float]:
    cls = lat["cls"]
    frac = np.bincount(cls.ravel(), minlength=len(CLASSES)) / cls.size
    r = float(np.random.default_rng([seed, index, 2]).uniform(0, 20))
    return {
        "biomass_mean": float(lat["biomass"].mean()), "biomass_std": float(lat["biomass"].std()),
        "crops": float(frac[SOY] + frac[CORN]),
        "landcover_agriculture": float(frac[SOY] + frac[CORN] + frac[WHEAT] + frac[GRASS]),
        "landcover_forest": float(frac[FOREST]), "clouds_reg": float(lat["cloud"].mean()),
        "heatisland_mean": float(lat["lst"].mean()), "heatisland_std": float(lat["lst"].std()),
        "nodata": float(lat["nodata"].mean()), "random_reg": r, "random_cls": float(r > 10),
    }


def _to_dn(refl: np.ndarray) -> np.ndarray:
    """Reflectance -> uint16 digital numbers (x 10000, rounded, clipped to 1..25000 so 0 stays nodata)."""
    dn = refl * np.float32(1e4)
    dn += np.float32(0.5)
    np.clip(dn, 1, 25000, out=dn)
    return dn.astype(np.uint16)


def _render(lat: dict, seed: int, index: int) -> dict[str, np.ndarray]:
    """S1 (1,4,2,H,W) float32 dB, S2 L1C (1,4,13,H,W) and L2A (1,4,12,H,W) uint16 DN from the latents."""
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng([seed, index, 1])
    cls = lat["cls"].astype(np.intp)
    s = cls.shape[0]
    ns = len(SEASONS)
    # green / dry / background cover fractions per season (4, s, s)
    green = np.moveaxis(_PHEN_GREEN[cls], -1, 0)
    forest = cls == FOREST
    green = np.where(forest[None], (1 - lat["decid"]) * 0.85 + lat["decid"] * _PHEN_DECID[:, None, None], green)
    south = np.clip((58 - lat["lat"]) / 20, 0, 1)
    green[1] = np.where(cls == GRASS, green[1] * (1 - 0.5 * south), green[1])
    green = np.clip(green + lat["jitter"] * (green > 0.02), 0, 0.98)
    dry = np.minimum(np.moveaxis(_PHEN_DRY[cls], -1, 0), 1 - green)
    bgw = 1 - green - dry
    moist_dark = 1 - 0.8 * lat["sm"]  # wet soil is darker
    moist_dark = np.where((cls == WATER) | (cls == URBAN), 1.0, moist_dark).astype(np.float32)
    gspec = np.take(_GREEN.T, cls, axis=1)  # (13, s, s)
    bspec = np.take(_BACKGROUND.T, cls, axis=1)
    bgw *= moist_dark
    tex = (1 + 0.05 * lat["tex"]).astype(np.float32)
    cl = lat["cloud"]
    shadow = np.roll(cl, tuple(int(v) for v in lat["shift"]), axis=(1, 2))
    dark = 1 - 0.6 * shadow * (1 - cl)  # cloud shadows
    cirrus = lat["cirrus"][:, None, None] * (1 + 0.3 * lat["tex"][None]) + 0.25 * cl
    keep = (~lat["nodata"]).astype(np.uint16)  # swath-edge nodata -> 0
    l2a_idx = [i for i, b in enumerate(S2L1C_BANDS) if b != "B10"]
    l1c = np.empty((ns, 13, s, s), np.uint16)
    l2a = np.empty((ns, 12, s, s), np.uint16)
    col = lambda v: np.asarray(v, np.float32)[:, None, None]  # noqa: E731
    for t in range(ns):  # one season at a time keeps the working set small
        sr = gspec * green[t]
        sr += col(_DRY) * dry[t]
        sr += bspec * bgw[t]
        sr *= tex * dark[t]
        noise = rng.random(sr.shape, dtype=np.float32)  # 1.5 % (rms) sensor noise
        noise -= 0.5
        noise *= 0.05
        noise += 1
        sr *= noise
        # clouds: bright, flat spectra; applied to surface reflectance too, as Sen2Cor does not remove them
        sr *= 1 - cl[t]
        sr += col(_CLOUD) * cl[t]
        # sensor resolution: 20 m and 60 m bands are blurred
        for bnd, w in (("B05", 2), ("B06", 2), ("B07", 2), ("B8A", 2), ("B11", 2), ("B12", 2), ("B01", 6), ("B09", 6)):
            sr[_B[bnd]] = uniform_filter(sr[_B[bnd]], size=w, mode="nearest")
        l2a[t] = _to_dn(sr[l2a_idx]) * keep[t]
        # L1C: aerosol path radiance + transmittance + water-vapour absorption at B09 + cirrus band B10
        sr *= col(_TRANS)
        sr += col(_PATH) * lat["aot"][t]
        sr[_B["B10"]] = uniform_filter(0.0015 + cirrus[t], size=6, mode="nearest")
        l1c[t] = _to_dn(sr) * keep[t]
    # S1: volume (biomass / canopy) and soil moisture; urban double bounce; dark water
    vol = np.where(forest[None], lat["biomass"][None] * (0.85 + 0.15 * _PHEN_DECID[:, None, None]),
                   np.moveaxis(_SAR_VOLUME[cls], -1, 0))
    sat = 1 - np.exp(-vol / 90)
    sm = lat["sm"]
    vv = -14 + 12 * sm + 5 * sat
    vh = -27 + 13 * sat + 4 * sm
    urban = (cls == URBAN)[None]
    vv = np.where(urban, -3.5 + 2 * lat["tex"][None], vv)
    vh = np.where(urban, -11.5 + 2 * lat["tex"][None], vh)
    water = (cls == WATER)[None]
    wind = lat["wind"][:, None, None]
    vv = np.where(water, -22 + 5 * wind, vv)
    vh = np.where(water, -29 + 3 * wind, vh)
    s1 = np.stack([vv, vh], axis=1) + lat["calib"][:, None, None, None]
    speckle = rng.gamma(4.4, 1 / 4.4, s1.shape).astype(np.float32)
    s1 = (s1 + 10 * np.log10(np.maximum(speckle, 1e-3))).astype(np.float32)
    return {"s1": s1[None], "s2l1c": l1c[None], "s2l2a": l2a[None]}


def generate(index: int, seed: int = 0, size: int = 264) -> tuple[dict[str, np.ndarray], dict[str, float], dict]:
    """One synthetic sample in memory: (arrays per modality, task labels, latents incl. lat/lon)."""
    lat = _latents(seed, index, size)
    return _render(lat, seed, index), _labels(lat, seed, index), lat


def sample(out: str | Path, n: int = 300, seed: int = 0, size: int = 264, part_size: int = 1000,
           progress: bool = True) -> Path:
    """Write the synthetic sample dataset (``n`` locations, ``size`` x ``size`` px) in the SSL4EO-S12-downstream
    layout under ``out``: data/{s1,s2l1c,s2l2a}/part-NNNNNN/<id>.zarr.zip, labels/ (11 tasks), meta.csv.

    Deterministic given ``seed``; re-running into the same folder with the same arguments resumes (existing
    sample files are kept). A folder holding another dataset raises DataError.
    """
    from tqdm.auto import tqdm

    for name, v, lo in (("n", n, 1), ("size", size, 8), ("part_size", part_size, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise DataError(f"{name}={v!r}; use an integer >= {lo}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed={seed!r}; use a non-negative integer.")
    from eoembed.checks import check_out_path

    out = check_out_path(out, option="OUT")
    manifest = out / ".eoembed_sample.json"
    params = {"generator": "eoembed.data.sample", "version": GENERATOR_VERSION, "n": int(n), "seed": int(seed),
              "size": int(size), "part_size": int(part_size)}
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except ValueError:
            raise DataError(f"{str(manifest)!r} is unreadable (interrupted write?); delete it and re-run to resume "
                            "(existing sample files are kept).") from None
        if {k: old.get(k) for k in params} != params:
            raise DataError(f"{str(out)!r} already holds a sample dataset made with {old}; re-run with the same "
                            "arguments to resume it, or choose an empty folder.")
    elif out.exists() and any(out.iterdir()):
        raise DataError(f"{str(out)!r} is not empty and holds no eoembed sample; choose an empty or new folder "
                        "(nothing is overwritten).")
    out.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({**params, "complete": False}, indent=1))
    ids, lats, lons, rows = [], [], [], []
    for i in tqdm(range(n), desc="eoembed sample", disable=not progress):
        sid = sample_id(seed, i)
        paths = {m: sample_path(out, m, sid, i, part_size) for m in ("s1", "s2l1c", "s2l2a")}
        lat = _latents(seed, i, size)
        if not all(p.exists() for p in paths.values()):
            arrays = _render(lat, seed, i)
            for m, p in paths.items():
                write_sample_file(p, arrays[m], m)
        ids.append(sid)
        lats.append(lat["lat"])
        lons.append(lat["lon"])
        rows.append(_labels(lat, seed, i))
    labels = pd.DataFrame(rows, index=pd.Index(ids, name="id"))
    labels.attrs["task_types"] = dict(TASK_TYPES)
    write_labels(labels, out / "labels", overwrite=True)
    write_meta(out, ids, lats, lons)
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text(json.dumps({**params, "complete": True, "classes": list(CLASSES),
                               "season_mid_doy": dict(zip(SEASONS, _DOY_MID))}, indent=1))
    os.replace(tmp, manifest)
    return out

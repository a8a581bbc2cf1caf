"""Embeddings as data on real WorldCereal inputs: Presto per-pixel embeddings as int8 products, and a classifier.

- :func:`worldcereal_product`: every pixel of a WorldCereal monthly cube (.nc, dims t/y/x) embedded with Presto
  (one 12-step series per pixel) and written as a GRIDDED int8 product (y, x, feature) with the file's y/x
  coordinates, its CRS and 2-D lat/lon (pyproj).
- :func:`pixel_product`: the labelled WorldCereal pixel extractions (.parquet) embedded with Presto into a SAMPLE
  product (sample, feature) with lat/lon; the label columns are (sample,) string variables ``label_<column>``
  of the same Zarr group.
- :func:`train_pixel_classifier`: logistic regression on features read from such a product (dequantised int8),
  scored on a fixed seeded stratified hold-out, next to the same on float32 embeddings.

Inputs as Presto expects them (:mod:`eoembed.models.presto`): S1 ``20*log10(v) - 83`` dB; S2 L2A digital numbers
(B8A absent -> its token masked); AGERA5 / METEO temperature stored in K x 100 -> K; precipitation stored in
mm x 100 -> metres (``v / 1e5``, WorldCereal's own Presto conversion); elevation (m) and slope (degrees) as
stored. 65535 = nodata: that value is MASKED (Presto drops the token), never filled. Months: the start month of
each series (0 = January). A pixel without any valid S1 or S2 value in any month has nothing Presto could embed
but location/weather: it is stored as a NaN vector (``nodata="mask"``) and counted in ``attrs["n_nodata"]``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from eoembed.errors import DataError, LabelError

__all__ = ["worldcereal_series", "worldcereal_embeddings", "worldcereal_product", "pixel_series", "pixel_product",
           "train_pixel_classifier"]

NODATA = 65535
#: WorldCereal cube variable -> (Presto band, conversion of the stored value).
_CUBE_VARS: dict[str, tuple[str, str]] = {
    "S1-SIGMA0-VV": ("VV", "s1"), "S1-SIGMA0-VH": ("VH", "s1"),
    **{f"S2-L2A-{b}": (b, "dn") for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")},
    "AGERA5-TMEAN": ("temperature_2m", "k100"), "AGERA5-PRECIP": ("total_precipitation", "mm100"),
    "elevation": ("elevation", "raw"), "slope": ("slope", "raw"),
}


def _convert(raw: np.ndarray, how: str) -> np.ndarray:
    """Stored values (float64, NaN = nodata) -> Presto units."""
    if how == "s1":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(raw > 0, 20 * np.log10(np.where(raw > 0, raw, 1.0)) - 83, np.nan)
    if how == "k100":
        return raw / 100.0
    if how == "mm100":
        return raw / 1e5
    return raw


def _weights_id(weights: Any) -> str:
    if weights is None:
        return "random"
    p = Path(str(weights))
    if p.is_file():
        import hashlib
        return f"{p.name}@sha256:{hashlib.sha256(p.read_bytes()).hexdigest()[:12]}"
    return str(weights)


def _model(weights: Any, device: Any):
    from eoembed.models.presto import _default_model
    if weights is not None and str(weights) != "auto" and not Path(str(weights)).is_file():
        from eoembed.errors import WeightsNotFound
        raise WeightsNotFound(f"Presto weights {str(weights)!r} do not exist; pass the path of default_model.pt "
                              "(tests use ../shared/weights/presto/default_model.pt) or weights='auto'.")
    return _default_model(weights, device)


def _check_window(window: Any, ny: int, nx: int) -> tuple[int, int, int, int]:
    if window is None:
        return 0, ny, 0, nx
    try:
        y0, y1, x0, x1 = (int(v) for v in window)
    except (TypeError, ValueError):
        raise DataError(f"window={window!r} is not four pixel indices (row0, row1, col0, col1).") from None
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise DataError(f"window={window!r} is outside the {ny}x{nx} grid or empty; give 0 <= row0 < row1 <= {ny}, "
                        f"0 <= col0 < col1 <= {nx}.")
    return y0, y1, x0, x1


def worldcereal_series(nc_path: str | Path, window: Sequence[int] | None = None) -> dict[str, Any]:
    """Per-pixel Presto series of a WorldCereal monthly cube: ``values`` (N, T, C) in Presto units (NaN = nodata),
    ``bands`` (C names), ``start_month`` (0 = January), ``latlon`` (N, 2), ``y``/``x`` coordinates, ``lat``/``lon``
    (ny, nx), ``crs``, ``has_obs`` (N,) (any valid S1/S2 value). ``window=(row0, row1, col0, col1)`` crops."""
    from eoembed.data.worldcereal import _check_units, _epsg, _open_nc, _raw, _to_latlon
    path = Path(nc_path)
    ds = _open_nc(path)
    try:
        if not {"t", "y", "x"} <= set(ds.dims):
            raise DataError(f"{str(path)!r} has dims {dict(ds.sizes)}; a WorldCereal cube has t (months), y and x.")
        have = [v for v in _CUBE_VARS if v in ds]
        if not any(v.startswith(("S1-", "S2-")) for v in have):
            raise DataError(f"{str(path)!r} has no 'S2-L2A-Bxx' or 'S1-SIGMA0-VV/VH' variables (it has "
                            f"{sorted(ds.data_vars)}); is it a WorldCereal preprocessed-inputs cube?")
        t = pd.DatetimeIndex(ds["t"].values)
        steps = (t.year * 12 + t.month).to_numpy()
        if len(t) > 1 and not (np.diff(steps) == 1).all():
            raise DataError(f"{str(path)!r}: time steps {[str(d.date()) for d in t]} are not consecutive months; "
                            "Presto series need one step per month.")
        ny, nx = ds.sizes["y"], ds.sizes["x"]
        y0, y1, x0, x1 = _check_window(window, ny, nx)
        sub = ds.isel(y=slice(y0, y1), x=slice(x0, x1))
        layers, bands = [], []
        for v in have:
            raw = _raw(sub, v)
            if sub[v].dims != ("t", "y", "x"):
                raise DataError(f"{str(path)!r}: variable {v} has dims {sub[v].dims}; expected ('t', 'y', 'x').")
            _check_units(path, v, raw)
            name, how = _CUBE_VARS[v]
            layers.append(_convert(raw, how))
            bands.append(name)
        xs, ys = sub["x"].values.astype(np.float64), sub["y"].values.astype(np.float64)
        epsg = _epsg(ds, path)
    finally:
        ds.close()
    arr = np.stack(layers, -1)  # (t, y, x, c)
    nt, h, w, c = arr.shape
    values = arr.transpose(1, 2, 0, 3).reshape(h * w, nt, c).astype(np.float32)
    gx, gy = np.meshgrid(xs, ys)
    lat, lon = _to_latlon(gx.ravel(), gy.ravel(), epsg)
    obs = [j for j, b in enumerate(bands) if b in ("VV", "VH") or b.startswith("B")]
    has_obs = np.isfinite(values[:, :, obs]).any(axis=(1, 2))
    return {"values": values, "bands": bands, "start_month": int(t[0].month) - 1, "y": ys, "x": xs,
            "lat": np.asarray(lat).reshape(h, w), "lon": np.asarray(lon).reshape(h, w),
            "latlon": np.stack([np.asarray(lat), np.asarray(lon)], 1), "crs": f"EPSG:{epsg}", "has_obs": has_obs,
            "window": (y0, y1, x0, x1)}


def _embed(values, bands, months, latlon, has_obs, model, batch_size, progress) -> np.ndarray:
    """Presto embeddings of the pixels with observations; NaN rows for the others (never dropped)."""
    from eoembed.models.presto import presto_embed_pixels
    out = np.full((values.shape[0], model.embed_dim), np.nan, dtype=np.float32)
    if has_obs.any():
        m = months[has_obs] if np.ndim(months) else months
        out[has_obs] = presto_embed_pixels(values[has_obs], bands, m, latlon[has_obs], batch_size=batch_size,
                                           model=model, progress=progress)
    return out


def _attrs(model_name: str, weights: Any, n_nodata: int, seconds: float) -> dict[str, Any]:
    from eoembed.runtime import describe
    d = describe("float32")
    return {"model": model_name, "weights": _weights_id(weights), "compute_precision": str(d.get("precision")),
            "n_nodata": int(n_nodata), "embed_seconds": round(float(seconds), 3)}


def worldcereal_embeddings(nc_path: str | Path, weights: Any = "auto", batch_size: int = 4096,
                           progress: bool = True, *, window: Sequence[int] | None = None, device: Any = "cpu"):
    """Float32 Presto per-pixel embeddings of a WorldCereal cube: DataArray (y, x, feature) with y/x and 2-D
    lat/lon coordinates, attrs crs, model, weights, compute_precision, n_nodata, embed_seconds (NaN vectors for
    pixels without any valid S1/S2 value). What :func:`worldcereal_product` writes."""
    import xarray as xr
    from eoembed.checks import check_int
    check_int("batch_size", batch_size, 1)
    s = worldcereal_series(nc_path, window)
    model = _model(weights, device)
    t0 = time.perf_counter()
    emb = _embed(s["values"], s["bands"], s["start_month"], s["latlon"], s["has_obs"], model, batch_size, progress)
    secs = time.perf_counter() - t0
    h, w = s["lat"].shape
    return xr.DataArray(emb.reshape(h, w, -1), dims=("y", "x", "feature"),
                        coords={"y": s["y"], "x": s["x"], "lat": (("y", "x"), s["lat"]),
                                "lon": (("y", "x"), s["lon"])},
                        attrs={**_attrs("presto", weights, int((~s["has_obs"]).sum()), secs), "crs": s["crs"],
                               "window": ",".join(str(v) for v in s["window"]), "bands": ",".join(s["bands"])})


def worldcereal_product(nc_path: str | Path, out: str | Path, weights: Any = "auto", batch_size: int = 4096,
                        progress: bool = True, *, window: Sequence[int] | None = None, device: Any = "cpu",
                        overwrite: bool = False):
    """Presto per-pixel embeddings of a WorldCereal cube written as a gridded int8 product; returns it opened.

    ``weights``: path of Presto's default_model.pt, "auto" (registry) or None (random; for tests of the plumbing).
    ``window=(row0, row1, col0, col1)`` embeds only that pixel window. attrs: model, weights (file@sha256),
    compute_precision (float32), precision (int8 storage), crs, n_nodata (pixels without any valid S1/S2 value,
    stored as NaN vectors), embed_seconds.
    """
    from eoembed.checks import check_int, check_out_path
    from eoembed.product.store import _is_product_dir, write_product
    check_int("batch_size", batch_size, 1)
    p = check_out_path(out, option="out", exist_ok=overwrite)
    if p.exists() and not _is_product_dir(p):
        from eoembed.errors import OutputError
        raise OutputError(f"out {str(p)!r} exists and is not an eoembed product; choose a new path.")
    da = worldcereal_embeddings(nc_path, weights, batch_size, progress, window=window, device=device)
    return write_product(da, p, model="presto", source=str(nc_path), nodata="mask", overwrite=overwrite)


def pixel_series(parquet_path: str | Path) -> dict[str, Any]:
    """Presto series of WorldCereal pixel extractions: ``values`` (N, T, C) Presto units, ``bands``, ``months``
    (N,) start months, ``latlon``, ``ids``, ``labels`` (DataFrame of the non-series columns), ``has_obs``."""
    from eoembed.data.worldcereal import worldcereal_pixels
    px = worldcereal_pixels(parquet_path)
    vals = px["values"].values.astype(np.float32)
    bands = [str(b).partition("/")[2] for b in px["band"].values]
    extra_v, extra_b = [], []
    n, nt = vals.shape[:2]
    for var, name, how in (("meteo_temperature_mean", "temperature_2m", "k100"),
                           ("meteo_precipitation_flux", "total_precipitation", "mm100")):
        if var in px:
            extra_v.append(_convert(px[var].values.astype(np.float64), how))
            extra_b.append(name)
    for col, name in (("DEM-alt-20m", "elevation"), ("DEM-slo-20m", "slope")):
        if col in px:
            v = px[col].values.astype(np.float64)
            v = np.where(v == NODATA, np.nan, v)
            extra_v.append(np.broadcast_to(v[:, None], (n, nt)))
            extra_b.append(name)
    if extra_v:
        vals = np.concatenate([vals, np.stack(extra_v, -1).astype(np.float32)], -1)
    obs = [j for j, b in enumerate(bands) if b in ("VV", "VH") or b.startswith("B")]
    has_obs = np.isfinite(vals[:, :, obs]).any(axis=(1, 2))
    months = px["month"].values[:, 0].astype(np.int64) - 1
    skip = {"values", "valid", "doy", "month", "meteo_temperature_mean", "meteo_precipitation_flux"}
    labels = pd.DataFrame({k: px[k].values for k in px.data_vars if k not in skip and px[k].dims == ("pixel",)})
    labels.index = pd.Index([str(i) for i in px["id"].values], name="sample")
    return {"values": vals, "bands": bands + extra_b, "months": months,
            "latlon": np.stack([px["lat"].values, px["lon"].values], 1), "ids": labels.index.tolist(),
            "labels": labels, "has_obs": has_obs}


def pixel_product(parquet_path: str | Path, out: str | Path, weights: Any = "auto", batch_size: int = 4096,
                  progress: bool = True, *, label_columns: Sequence[str] = ("sampling_label", "ewoc_code",
                                                                             "finetune_class"),
                  device: Any = "cpu", overwrite: bool = False):
    """Presto embeddings of the labelled WorldCereal pixels as a SAMPLE int8 product (sample, feature) with lat/lon
    and a (sample,) string variable ``label_<column>`` for each of ``label_columns`` (written into the product's
    Zarr group after it); returns it opened."""
    import xarray as xr
    from eoembed.checks import check_int, check_out_path
    from eoembed.product.store import write_product
    check_int("batch_size", batch_size, 1)
    check_out_path(out, option="out", exist_ok=overwrite)
    s = pixel_series(parquet_path)
    missing = [c for c in label_columns if c not in s["labels"]]
    if missing:
        raise LabelError(f"label column(s) {missing} are not in {str(parquet_path)!r}; it has "
                         f"{sorted(s['labels'].columns)}.")
    model = _model(weights, device)
    t0 = time.perf_counter()
    emb = _embed(s["values"], s["bands"], s["months"], s["latlon"], s["has_obs"], model, batch_size, progress)
    secs = time.perf_counter() - t0
    coords = {"sample": np.asarray(s["ids"], dtype=object), "lat": ("sample", s["latlon"][:, 0]),
              "lon": ("sample", s["latlon"][:, 1])}
    da = xr.DataArray(emb, dims=("sample", "feature"), coords=coords,
                      attrs={**_attrs("presto", weights, int((~s["has_obs"]).sum()), secs),
                             "bands": ",".join(s["bands"]), "labels": ",".join(label_columns)})
    prod = write_product(da, out, model="presto", source=str(parquet_path), nodata="mask", overwrite=overwrite)
    # the labels go into the same Zarr group as (sample,) string variables ``label_<column>`` (group attrs kept)
    lab = xr.Dataset({f"label_{c}": ("sample", np.asarray([str(v) for v in s["labels"][c]], dtype=object))
                      for c in label_columns}, attrs=dict(prod.ds.attrs))
    lab.to_zarr(out, mode="a", consolidated=False)
    from eoembed.product.store import open_product
    return open_product(out)


def _features(product: Any) -> tuple[np.ndarray, list[str], Any]:
    from eoembed.product.store import Product, open_product
    if isinstance(product, (str, Path)):
        product = open_product(product)
    if not isinstance(product, Product):
        raise DataError(f"product must be an eoembed Product or a product path, got {type(product).__name__}.")
    if product.kind != "samples":
        raise DataError(f"train_pixel_classifier needs a samples product (sample, feature); this one is "
                        f"{product.kind!r}.")
    return np.asarray(product.embeddings.values, np.float32), [str(i) for i in product.ds["sample"].values], product


def train_pixel_classifier(product: Any, label: str = "sampling_label", *, float32: Any = None,
                           test_fraction: float = 0.3, min_class_size: int = 10, seed: int = 0,
                           Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0), cv: int = 3) -> dict[str, Any]:
    """Logistic regression on features read from a samples product (int8 dequantised), with the label from the
    product's variable ``label_<label>`` (or a DataFrame / Series ``label`` indexed by sample id).

    Classes with fewer than ``min_class_size`` samples and no-data (NaN) vectors are excluded and REPORTED
    (``excluded``). Split: fixed stratified hold-out (``test_fraction``, ``seed``). C is chosen from ``Cs`` by
    ``cv``-fold CV on the training part only; scores are on the held-out part: balanced accuracy and chance-adjusted
    balanced accuracy (bacc - 1/K) / (1 - 1/K). ``float32``: (N, D) float embeddings in the product's sample order
    (e.g. the ones written) scored with the same split for comparison.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from eoembed.bench.metrics import chance_adjusted
    from eoembed.checks import check_int

    check_int("min_class_size", min_class_size, 2)
    check_int("cv", cv, 2)
    if not 0 < float(test_fraction) < 1:
        raise DataError(f"test_fraction={test_fraction!r} must lie strictly between 0 and 1.")
    X, ids, prod = _features(product)
    if isinstance(label, str):
        coord = f"label_{label}"
        if coord not in prod.ds.variables:
            have = [str(c)[6:] for c in prod.ds.variables if str(c).startswith("label_")]
            raise LabelError(f"the product has no label {label!r} (variable {coord!r}); it has {have}. Write it "
                             "with pixel_product(label_columns=...) or pass a labels Series indexed by sample id.")
        y = np.asarray([str(v) for v in prod.ds[coord].values], dtype=object)
        name = label
    else:
        lab = label.iloc[:, 0] if isinstance(label, pd.DataFrame) else pd.Series(label)
        lab.index = lab.index.astype(str)
        miss = [i for i in ids if i not in lab.index]
        if miss:
            raise LabelError(f"{len(miss)} sample(s) of the product have no label (e.g. {miss[:3]}).")
        y = lab.loc[ids].astype(str).to_numpy(dtype=object)
        name = str(lab.name)
    if float32 is not None:
        F = np.asarray(float32, np.float32)
        if F.shape != X.shape:
            raise DataError(f"float32 embeddings have shape {F.shape}; expected {X.shape} (the product's samples in "
                            "its order).")
    nodata = ~np.isfinite(X).all(1)
    counts = pd.Series(y[~nodata]).value_counts()
    small = sorted(counts[counts < min_class_size].index.tolist())
    keep = ~nodata & ~np.isin(y, small)
    classes = sorted(counts[counts >= min_class_size].index.tolist())
    if len(classes) < 2:
        raise LabelError(f"label {name!r} has fewer than 2 classes with >= {min_class_size} samples ({counts.to_dict()}); "
                         "lower min_class_size or use another label.")
    idx = np.flatnonzero(keep)
    tr, te = train_test_split(idx, test_size=float(test_fraction), random_state=seed, stratify=y[idx])
    k = len(classes)

    def fit_score(feats: np.ndarray) -> dict[str, Any]:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        search = GridSearchCV(pipe, {"logisticregression__C": list(Cs)}, scoring="balanced_accuracy",
                              cv=StratifiedKFold(cv, shuffle=True, random_state=seed))
        search.fit(feats[tr], y[tr])
        bacc = float(balanced_accuracy_score(y[te], search.predict(feats[te])))
        return {"balanced_accuracy": bacc, "chance_adjusted": float(chance_adjusted(bacc, k)),
                "C": float(search.best_params_["logisticregression__C"]),
                "cv_balanced_accuracy": float(search.best_score_)}

    res: dict[str, Any] = {"label": name, "classes": classes, "n_train": int(len(tr)), "n_test": int(len(te)),
                           "seed": seed, "test_fraction": float(test_fraction),
                           "excluded": {"nodata_vectors": int(nodata.sum()),
                                        "small_classes": {c: int(counts[c]) for c in small},
                                        "n_samples": int((~keep).sum())},
                           "selection": f"C from {list(Cs)} by {cv}-fold CV on the training part only",
                           "int8": fit_score(X)}
    if float32 is not None:
        res["float32"] = fit_score(F)
        res["delta_balanced_accuracy"] = res["int8"]["balanced_accuracy"] - res["float32"]["balanced_accuracy"]
    return res

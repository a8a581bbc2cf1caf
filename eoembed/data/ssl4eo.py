"""Reader / writer of the SSL4EO-S12-downstream layout (Embed2Scale challenge data).

``ROOT/data/{s1,s2l1c,s2l2a}/part-NNNNNN/<id>.zarr.zip``: zipped Zarr v2, variable ``bands``, dims
``(sample=1, time=4, band, y, x)``, S2 uint16 digital numbers (no +1000 offset, 0 = nodata), S1 float32 dB.
Also accepted when reading: files directly in the modality folder (older copies), the S1 folder name ``s1grd``,
a root that is the ``data`` folder itself, and a single ``.zarr.zip`` file. ``ROOT/meta.csv`` (id, lat, lon)
gives locations; ``ROOT/labels/`` holds ``<task>__<type>.csv`` files (see :mod:`eoembed.data.labels`).
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from eoembed.data.bands import BANDS, MODALITIES, MODALITY_FOLDERS, SEASONS
from eoembed.data.cube import make_cube
from eoembed.errors import DataError, DataFileNotFound

SUFFIX = ".zarr.zip"
FILE_DIMS = ["sample", "time", "band", "y", "x"]
FILE_DTYPES = {"s1": np.dtype("float32"), "s2l1c": np.dtype("uint16"), "s2l2a": np.dtype("uint16")}


# --------------------------------------------------------------------------------------------- single files
def write_sample_file(path: str | Path, values: np.ndarray, modality: str) -> Path:
    """Write one (1, 4, C, H, W) sample of ``modality`` as a zipped Zarr v2 file (atomic: temp file + rename).

    S2 values must be finite integers in 0..65535 (stored uint16); S1 is stored float32 dB.
    """
    if modality not in BANDS:
        raise DataError(f"unknown modality {modality!r}; expected one of {MODALITIES}.")
    path = Path(path)
    arr = np.asarray(values)
    if arr.ndim == 4:
        arr = arr[None]
    nb = len(BANDS[modality])
    if arr.ndim != 5 or arr.shape[0] != 1 or arr.shape[1] != 4 or arr.shape[2] != nb:
        raise DataError(f"{path.name}: {modality} sample must have shape (1, 4, {nb}, H, W); got {arr.shape}.")
    dtype = FILE_DTYPES[modality]
    if dtype.kind == "u":
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise DataError(f"{path.name}: {modality} values contain NaN/inf; S2 files store nodata as 0 — "
                                "set missing pixels to 0 explicitly before writing.")
            arr = np.rint(arr)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"{path.name}: {modality} values outside 0..65535 (min {arr.min()}, max {arr.max()}); "
                            "S2 files hold raw digital numbers without offset.")
    arr = np.ascontiguousarray(arr.astype(dtype, copy=False))

    import zarr
    from zarr.storage import MemoryStore

    store = MemoryStore()
    g = zarr.open_group(store, mode="w", zarr_format=2)
    a = g.create_array("bands", shape=arr.shape, dtype=dtype, chunks=arr.shape, fill_value=None)
    a[...] = arr
    a.attrs["_ARRAY_DIMENSIONS"] = FILE_DIMS
    zarr.consolidate_metadata(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key, buf in sorted(store._store_dict.items()):
            zf.writestr(key, buf.to_bytes())
    os.replace(tmp, path)
    return path


def file_info(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``bands`` variable of a sample file, read from its Zarr metadata only."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("bands/.zarray"))
    except FileNotFoundError:
        raise DataFileNotFound(f"sample file {str(path)!r} does not exist; check the dataset root.") from None
    except KeyError:
        raise DataError(f"{str(path)!r} has no Zarr v2 variable 'bands' (no bands/.zarray); it is not an "
                        "SSL4EO-S12-downstream sample file. Remove it or regenerate the dataset.") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as e:
        raise DataError(f"{str(path)!r} is not a readable zipped Zarr file ({e}); re-download or regenerate it.") from None
    return tuple(int(s) for s in meta["shape"]), np.dtype(meta["dtype"])


def read_sample_file(path: str | Path, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Values of one sample file as float32 (1, 4, C, H, W); DataError naming the file when unreadable or when
    its shape differs from ``expected_shape``."""
    import zarr
    from zarr.storage import ZipStore

    path = Path(path)
    if not path.exists():
        raise DataFileNotFound(f"sample file {str(path)!r} does not exist (deleted after the cube was opened?); "
                               "re-open the dataset with open_cube.")
    try:
        store = ZipStore(path, mode="r")
        try:
            arr = zarr.open_array(store, path="bands", mode="r", zarr_format=2)[...]
        finally:
            store.close()
    except Exception as e:  # zarr raises several types for corrupt / foreign files
        raise DataError(f"cannot read variable 'bands' from {str(path)!r} ({type(e).__name__}: {e}); "
                        "the file is corrupt or not a zipped Zarr v2 sample file: re-download or regenerate it.") from None
    if expected_shape is not None and tuple(arr.shape) != tuple(expected_shape):
        raise DataError(f"{str(path)!r} has shape {tuple(arr.shape)} but the other files of this modality have "
                        f"{tuple(expected_shape)}; all samples must share one shape. Remove or re-create this file.")
    return arr.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------- lazy stacks
class _FileStack:
    """Array-like (n, 4, C, H, W) over n sample files; indexing loads only the files it touches."""

    def __init__(self, paths: Sequence[str], shape: tuple[int, ...]):
        self.paths = list(paths)
        self.file_shape = tuple(shape)
        self.shape = (len(self.paths), *shape[1:])
        self.dtype = np.dtype("float32")
        self.ndim = 5

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (5 - len(key))
        idx = range(self.shape[0])[key[0]]
        if isinstance(idx, int):
            return read_sample_file(self.paths[idx], self.file_shape)[0][key[1:]]
        out = [read_sample_file(self.paths[i], self.file_shape)[0] for i in idx]
        arr = np.stack(out) if out else np.empty((0, *self.shape[1:]), np.float32)
        return arr[(slice(None), *key[1:])]


def _find_data_dir(root: Path) -> Path:
    if (root / "data").is_dir():
        return root / "data"
    if any((root / f).is_dir() for fs in MODALITY_FOLDERS.values() for f in fs):
        return root
    raise DataFileNotFound(f"{str(root)!r} holds no SSL4EO-S12-downstream data: expected "
                           f"'{root}/data/{{s1,s2l1c,s2l2a}}/part-NNNNNN/<id>.zarr.zip'. Check the path, or create a "
                           "sample dataset with `eoembed sample OUT`.")


def _modality_dir(data_dir: Path, modality: str) -> Path | None:
    found = [data_dir / f for f in MODALITY_FOLDERS[modality] if (data_dir / f).is_dir()]
    if len(found) > 1:
        raise DataError(f"both {[str(f) for f in found]} exist; keep one {modality} folder.")
    return found[0] if found else None


def list_files(mod_dir: str | Path) -> dict[str, str]:
    """``{id: path}`` of the ``*.zarr.zip`` files of one modality folder (part folders and flat layout)."""
    mod_dir = Path(mod_dir)
    out: dict[str, str] = {}
    dirs = [mod_dir]
    with os.scandir(mod_dir) as it:
        dirs += sorted(Path(e.path) for e in it if e.is_dir())
    for d in dirs:
        with os.scandir(d) as it:
            for e in it:
                if e.name.endswith(SUFFIX) and e.is_file():
                    sid = e.name[: -len(SUFFIX)]
                    if sid in out:
                        raise DataError(f"sample id {sid!r} occurs twice in {str(mod_dir)!r}: {out[sid]!r} and "
                                        f"{e.path!r}; remove one copy.")
                    out[sid] = e.path
    return out


def _infer_modality(path: Path, nbands: int) -> str:
    for part in reversed(path.parts[:-1]):
        for m, folders in MODALITY_FOLDERS.items():
            if part in folders:
                return m
    by_count = {len(b): m for m, b in BANDS.items()}
    if nbands in by_count:
        return by_count[nbands]
    raise DataError(f"cannot tell the modality of {str(path)!r} ({nbands} bands); put it in a folder named "
                    "s1, s2l1c or s2l2a.")


def read_meta(root: str | Path) -> pd.DataFrame | None:
    """``ROOT/meta.csv`` (id, lat, lon) indexed by id, or None when absent. DataError naming the ids for repeated
    ids, non-numeric or out-of-range (WGS84 degrees) lat / lon; empty cells mean unknown (NaN)."""
    p = Path(root) / "meta.csv"
    if not p.exists():
        return None
    try:
        m = pd.read_csv(p, dtype={"id": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{str(p)!r} cannot be read as CSV ({type(e).__name__}: {e}); write 'id,lat,lon' rows.") from None
    if not {"id", "lat", "lon"} <= set(m.columns):
        raise DataError(f"{str(p)!r} has columns {list(m.columns)}; expected 'id,lat,lon'.")
    if m["id"].duplicated().any():
        raise DataError(f"{str(p)!r} repeats id(s) {m.loc[m['id'].duplicated(), 'id'].tolist()[:5]}; keep one row per id.")
    for c, lim in (("lat", 90.0), ("lon", 180.0)):
        v = pd.to_numeric(m[c], errors="coerce")
        text = v.isna() & m[c].notna()
        if text.any():
            raise DataError(f"{str(p)!r}: non-numeric {c} {m.loc[text, c].tolist()[:3]} for id(s) "
                            f"{m.loc[text, 'id'].tolist()[:5]}; give {c} in WGS84 degrees, or leave the cell empty.")
        bad = ~np.isfinite(v.fillna(0.0)) | (v.abs() > lim)
        if bad.any():
            raise DataError(f"{str(p)!r}: {c} out of range [-{lim:g}, {lim:g}] for id(s) {m.loc[bad, 'id'].tolist()[:5]} "
                            f"(values {v[bad].tolist()[:3]}); give {c} in WGS84 degrees (swap lat/lon? projected "
                            "metres?), or leave the cell empty when unknown.")
        m[c] = v.astype(np.float64)
    return m.set_index("id")


def _check_modalities(modalities: Sequence[str] | str | None) -> list[str] | None:
    if modalities is None:
        return None
    modalities = [modalities] if isinstance(modalities, str) else list(modalities)
    bad = [m for m in modalities if m not in BANDS]
    if bad:
        raise DataError(f"unknown modality(ies) {bad}; choose from {list(MODALITIES)} (S1 folder 's1grd' is read as 's1').")
    return modalities


def _single_file(root: Path, modalities: list[str] | None) -> tuple[dict, pd.DataFrame | None, list[str], list[str]]:
    """(files per modality, meta, modalities, absent modalities) of one ``.zarr.zip`` file."""
    shape, _ = file_info(root)
    mod = _infer_modality(root, shape[2])
    if modalities is not None and modalities != [mod]:
        raise DataError(f"{str(root)!r} is a single {mod} file; modalities={modalities} cannot be read from it.")
    files = {mod: {root.name[: -len(SUFFIX)] if root.name.endswith(SUFFIX) else root.stem: str(root)}}
    return files, read_meta(root.parent), [mod], []


def _dataset_files(root: Path, modalities: list[str] | None) -> tuple[dict, pd.DataFrame | None, list[str], list[str]]:
    """(files per modality, meta, modalities, absent modalities) of a dataset folder."""
    data_dir = _find_data_dir(root)
    dirs = {m: _modality_dir(data_dir, m) for m in MODALITIES}
    if modalities is None:
        mods = [m for m in MODALITIES if dirs[m] is not None]
        absent = [m for m in MODALITIES if dirs[m] is None]
    else:
        mods = list(modalities)
        miss = [m for m in mods if dirs[m] is None]
        if miss:
            raise DataFileNotFound(f"modality folder(s) {miss} not found in {str(data_dir)!r} (have "
                                   f"{[m for m in MODALITIES if dirs[m]]}); choose modalities that exist.")
        absent = []
    files = {m: list_files(dirs[m]) for m in mods}
    empty = [str(dirs[m]) for m in mods if not files[m]]
    if empty:
        raise DataFileNotFound(f"no '*{SUFFIX}' files in {empty}; the dataset is empty or incomplete.")
    meta = read_meta(root if (root / "data").is_dir() else root.parent)
    return files, meta, mods, absent


def _select_ids(root: Path, files: dict, mods: list[str], ids: Sequence[str] | None,
                on_missing: str) -> tuple[list[str], list[str]]:
    """(ids to open, ids dropped because some modality lacks them)."""
    all_ids = sorted(set().union(*[set(f) for f in files.values()]))
    dropped: list[str] = []
    incomplete = {m: sorted(set(all_ids) - set(files[m])) for m in mods}
    if any(incomplete.values()):
        if on_missing == "error":
            parts = "; ".join(f"{m} lacks {len(v)}: {v[:5]}" for m, v in incomplete.items() if v)
            raise DataError(f"sample ids missing from some modalities in {str(root)!r} ({parts}); restore the files, "
                            "or move those samples' files out of the folder, or open fewer modalities (Python: "
                            "open_cube(..., on_missing='drop') drops those samples).")
        dropped = sorted(set().union(*[set(v) for v in incomplete.values()]))
        warnings.warn(f"open_cube dropped {len(dropped)} sample(s) missing from some modality: {dropped[:10]}",
                      stacklevel=3)
        all_ids = [i for i in all_ids if i not in set(dropped)]
    if ids is not None:
        ids = [str(i) for i in ids]
        unknown = [i for i in ids if i not in set(all_ids)]
        if unknown:
            raise DataError(f"requested id(s) {unknown[:10]} ({len(unknown)} in all) not found (complete in all of "
                            f"{mods}) in {str(root)!r}; check the ids.")
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise DataError(f"requested id(s) {dup[:10]} more than once; pass each id once.")
        all_ids = ids
    if not all_ids:
        raise DataError(f"no sample is present in every modality of {mods} in {str(root)!r}.")
    return all_ids, dropped


def _lazy_bands(root: Path, files: dict, mods: list[str], all_ids: list[str]) -> tuple[Any, list[str]]:
    """(dask array (sample, 4, band, y, x) reading one file per chunk, band keys); checks the first file of each
    modality (shape, dtype) and that all modalities share one grid."""
    import dask.array as dsa
    from dask.base import tokenize

    from eoembed.data.cube import check_dtype

    arrays, keys = [], []
    hw = None
    for m in mods:
        paths = [files[m][i] for i in all_ids]
        shape, dtype = file_info(paths[0])
        nb = len(BANDS[m])
        if len(shape) != 5 or shape[0] != 1 or shape[1] != 4 or shape[2] != nb:
            raise DataError(f"{paths[0]!r} has shape {shape}; {m} files must be (1, 4, {nb}, H, W) "
                            f"(bands {list(BANDS[m])}). Is the file in the wrong modality folder?")
        check_dtype(dtype, [f"{m}/{b}" for b in BANDS[m]], where=f" in {paths[0]!r}")
        if hw is None:
            hw = shape[3:]
        elif shape[3:] != hw:
            raise DataError(f"{m} files are {shape[3]}x{shape[4]} px but {mods[0]} files are {hw[0]}x{hw[1]} "
                            f"(e.g. {paths[0]!r}); all modalities must share one grid.")
        stack = _FileStack(paths, shape)
        arrays.append(dsa.from_array(stack, chunks=(1, 4, nb, shape[3], shape[4]), asarray=False, lock=False,
                                     fancy=False, meta=np.empty((0, 0, 0, 0, 0), np.float32),
                                     name=f"ssl4eo-{m}-{tokenize(str(root), m, all_ids)}"))
        keys += [f"{m}/{b}" for b in BANDS[m]]
    return (arrays[0] if len(arrays) == 1 else dsa.concatenate(arrays, axis=2)), keys


def open_cube(root: str | Path, modalities: Sequence[str] | None = None, ids: Sequence[str] | None = None,
              on_missing: Literal["error", "drop"] = "error") -> xr.Dataset:
    """Open an SSL4EO-S12-downstream dataset (or one ``.zarr.zip`` file) lazily as a cube.

    Values stay on disk: each sample file becomes one dask chunk, read (and its shape checked) only when computed.
    Only the first file of each modality is opened here. ``modalities`` defaults to every modality folder present
    (absent modalities' bands are listed in ``attrs['missing_bands']``). ``ids`` selects samples (in that order).
    Ids missing from some modality raise DataError, or with ``on_missing="drop"`` are dropped, warned about and
    listed in ``attrs['dropped_ids']``.
    """
    root = Path(root)
    if on_missing not in ("error", "drop"):
        raise DataError(f"on_missing={on_missing!r}; use 'error' or 'drop'.")
    if not root.exists():
        raise DataFileNotFound(f"{str(root)!r} does not exist; check the path, or create a sample dataset with "
                               "`eoembed sample OUT`.")
    modalities = _check_modalities(modalities)
    files, meta, mods, absent = (_single_file if root.is_file() else _dataset_files)(root, modalities)
    all_ids, dropped = _select_ids(root, files, mods, ids, on_missing)
    data, keys = _lazy_bands(root, files, mods, all_ids)
    lat = lon = None
    if meta is not None:
        lat = meta["lat"].reindex(all_ids).to_numpy(np.float64)
        lon = meta["lon"].reindex(all_ids).to_numpy(np.float64)
    missing = [f"{m}/{b}" for m in absent for b in BANDS[m]]
    cube = make_cube(data, all_ids, keys, lat=lat, lon=lon, source=str(root), missing_bands=missing, validate=False)
    if dropped:
        cube.attrs["dropped_ids"] = dropped
    return cube


# --------------------------------------------------------------------------------------------- writing cubes
def sample_path(root: str | Path, modality: str, sid: str, index: int, part_size: int = 1000) -> Path:
    """``ROOT/data/<modality>/part-NNNNNN/<id>.zarr.zip`` for the ``index``-th sample."""
    return Path(root) / "data" / modality / f"part-{index // part_size:06d}" / f"{sid}{SUFFIX}"


def write_meta(root: str | Path, ids: Sequence[str], lat, lon) -> Path:
    """Write ``ROOT/meta.csv`` (id, lat, lon)."""
    p = Path(root) / "meta.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name("meta.csv.tmp")
    pd.DataFrame({"id": list(ids), "lat": np.asarray(lat, np.float64), "lon": np.asarray(lon, np.float64)}).to_csv(
        tmp, index=False, float_format="%.6f")
    os.replace(tmp, p)
    return p


def write_ssl4eo(cube: xr.Dataset, root: str | Path, part_size: int = 1000, labels: pd.DataFrame | None = None,
                 resume: bool = False, progress: bool = True) -> Path:
    """Write a cube to the SSL4EO-S12-downstream layout under ``root`` (+ meta.csv, + labels if given).

    Each modality of the cube must be complete (all its bands). S2 NaN must be replaced by 0 beforehand.
    Existing sample files raise DataError unless ``resume=True`` (then they are kept and skipped).
    """
    from tqdm.auto import tqdm

    if part_size < 1:
        raise DataError(f"part_size={part_size}; use a positive number of files per part folder (default 1000).")
    keys = [str(b) for b in cube["band"].values]
    mods = list(dict.fromkeys(k.partition("/")[0] for k in keys))
    for m in mods:
        want = [f"{m}/{b}" for b in BANDS[m]]
        if [k for k in keys if k.startswith(m + "/")] != want:
            raise DataError(f"cube modality {m!r} must hold all its bands in canonical order {want} to be written "
                            f"as {m} files; it has {[k for k in keys if k.startswith(m + '/')]}.")
    from eoembed.checks import safe_name

    root = Path(root)
    ids = [safe_name(s, "sample id", "the cube (ids become file names)", DataError) for s in cube["sample"].values]
    if list(cube["season"].values) != list(SEASONS):
        raise DataError(f"cube seasons {list(cube['season'].values)} must be {list(SEASONS)} to be written.")
    for i, sid in enumerate(tqdm(ids, desc="write ssl4eo", disable=not progress)):
        todo = []
        for m in mods:
            p = sample_path(root, m, sid, i, part_size)
            if p.exists():
                if not resume:
                    raise DataError(f"{str(p)!r} already exists; pass resume=True to keep existing files, or write "
                                    "to an empty folder.")
                continue
            todo.append((m, p))
        if not todo:
            continue
        vals = np.asarray(cube["bands"].isel(sample=[i]).values)
        for m, p in todo:
            sel = [j for j, k in enumerate(keys) if k.startswith(m + "/")]
            try:
                write_sample_file(p, vals[:, :, sel], m)
            except DataError as e:
                raise DataError(f"sample {sid!r}: {e}") from None
    write_meta(root, ids, cube["lat"].values, cube["lon"].values)
    if labels is not None:
        from eoembed.data.labels import write_labels
        write_labels(labels, root / "labels", overwrite=resume)
    return root

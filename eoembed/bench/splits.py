"""Train/test folds of the evaluation: NeuCo-Bench's random folds, a fixed split, group folds, spatial folds.

Every strategy gives, per task, a list of ``(train_rows, test_rows)`` over that task's own labelled rows (tasks can
have missing labels), and Q is computed the same way over the folds (``2 * mean / (0.02 + std)``; one fold: std 0).

- ``"shuffle"`` (NeuCo-Bench, the default): ``ShuffleSplit(folds, test_size=0.1, random_state=seed)`` per task.
- ``"fixed"``: one fold with the given test ids (and train ids, else every other labelled sample), e.g. a
  benchmark's official split.
- ``"group"``: ``GroupShuffleSplit(folds, test_size=0.1, random_state=seed)`` per task over a group id per sample:
  10% of the task's groups (rounded up) are held out in each fold, so no group is ever on both sides.
- ``"spatial"``: group folds whose groups are places. With ``km``: blocks of about ``km`` x ``km``
  (latitude bands ``km`` high, each cut into equal-longitude cells about ``km`` wide at the band's centre, so the
  blocks are roughly equal-area); without ``km``: ``n_clusters`` KMeans clusters of the samples' positions on the
  unit sphere (default 20). Blocks / clusters go whole to train or test.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from eoembed.errors import DataError, DataFileNotFound

SPLITS = ("shuffle", "fixed", "group", "spatial")
TEST_SIZE = 0.1
DEFAULT_CLUSTERS = 20
EARTH_RADIUS_KM = 6371.0088   # mean Earth radius (IUGG)
_LISTED = 10


class Folds(dict):
    """``{task: [(train_rows, test_rows), ...]}`` with ``info``: the strategy, its parameters and facts about the
    folds (groups / blocks per task, mean test fraction), as recorded in eoembed_report.json."""

    info: dict

    def __init__(self, *args, info: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.info = dict(info or {})


def _few(items) -> str:
    items = [str(i) for i in items]
    more = f" ... ({len(items)} in all)" if len(items) > _LISTED else ""
    return ", ".join(repr(i) for i in items[:_LISTED]) + more


# ----------------------------------------------------------------------------------------------- inputs
def read_ids(source, what: str = "ids") -> list[str]:
    """Ids from a list / array / Series / Index or a text file (one id per line; a CSV with an ``id`` column)."""
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.is_file():
            raise DataFileNotFound(f"{what} file {str(p)!r} does not exist; give a text file with one sample id per "
                                   "line (or a CSV with an 'id' column).")
        lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        if lines and lines[0].split(",")[0].strip() == "id":   # a CSV with an id column
            df = pd.read_csv(p, dtype={"id": str})
            return df["id"].astype(str).str.strip().tolist()
        return lines
    if isinstance(source, (pd.DataFrame,)):
        if "id" in source.columns:
            return source["id"].astype(str).tolist()
        return source.index.astype(str).tolist()
    return [str(i) for i in np.asarray(list(source), dtype=object)]


def read_groups(source, column: str | None = None) -> pd.Series:
    """Group id per sample id from a CSV file (columns ``id`` and the group column: ``column``, else the only other
    column), a Series / dict ``{id: group}`` or a DataFrame (``column`` needed when it has several columns)."""
    if isinstance(source, (str, Path)):
        p = Path(source)
        if ":" in str(source) and not p.is_file() and Path(str(source).rsplit(":", 1)[0]).is_file():
            p, column = Path(str(source).rsplit(":", 1)[0]), str(source).rsplit(":", 1)[1]
        if not p.is_file():
            raise DataFileNotFound(f"groups file {str(p)!r} does not exist; give a CSV with columns 'id,<group>' "
                                   "(or FILE.csv:COLUMN).")
        source = pd.read_csv(p, dtype={"id": str})
        if "id" not in source.columns:
            raise DataError(f"groups file {str(p)!r} has columns {list(source.columns)}; it needs an 'id' column.")
        where = f"groups file {str(p)!r}"
    else:
        where = "groups"
    if isinstance(source, dict):
        source = pd.Series(source)
    if isinstance(source, pd.DataFrame):
        df = source.set_index("id") if "id" in source.columns else source
        cols = [c for c in df.columns if c not in ("lat", "lon")] if column is None else [column]
        if column is not None and column not in df.columns:
            raise DataError(f"{where}: no column {column!r}; columns are {list(df.columns)}.")
        if len(cols) != 1:
            raise DataError(f"{where} has columns {list(df.columns)}; name the group column (FILE.csv:COLUMN, or "
                            "groups=<column name>).")
        source = df[cols[0]]
    if not isinstance(source, pd.Series):
        raise DataError(f"groups of type {type(source).__name__}: give a Series or dict {{id: group}}, an array "
                        "with one group per sample, a column name, or a CSV file 'id,<group>'.")
    s = source.copy()
    s.index = pd.Index([str(i) for i in s.index], name="id")
    if s.index.duplicated().any():
        raise DataError(f"{where}: id(s) {_few(s.index[s.index.duplicated()].unique())} appear more than once; "
                        "give one group per id.")
    return s


def _read_table(meta) -> tuple[pd.DataFrame, str]:
    """A per-sample table (index id) from a DataFrame, a CSV file, or a sample root holding meta.csv."""
    if isinstance(meta, pd.DataFrame):
        df = meta.set_index("id") if "id" in meta.columns else meta.copy()
        df.index = pd.Index([str(i) for i in df.index], name="id")
        return df, "meta DataFrame"
    p = Path(meta)
    if p.is_dir():
        if not (p / "meta.csv").is_file():
            raise DataFileNotFound(f"meta folder {str(p)!r} holds no meta.csv; give a CSV file with columns "
                                   "'id,lat,lon[,...]' or a sample root.")
        p = p / "meta.csv"
    if not p.is_file():
        raise DataFileNotFound(f"meta file {str(p)!r} does not exist; give a CSV with columns 'id,lat,lon[,...]'.")
    if p.name == "meta.csv":
        from eoembed.data.ssl4eo import read_meta   # checks lat/lon ranges, repeated ids
        df = read_meta(p.parent)
    else:
        df = pd.read_csv(p, dtype={"id": str})
        if "id" not in df.columns:
            raise DataError(f"meta file {str(p)!r} has columns {list(df.columns)}; it needs an 'id' column.")
        if df["id"].duplicated().any():
            raise DataError(f"meta file {str(p)!r} repeats id(s) {_few(df.loc[df['id'].duplicated(), 'id'])}.")
        df = df.set_index("id")
    df.index = pd.Index([str(i) for i in df.index], name="id")
    return df, str(p)


def _coords_table(embeddings) -> pd.DataFrame | None:
    """lat / lon (and other 1-D sample coordinates) of an embedding DataArray or {model: DataArray} dict."""
    if isinstance(embeddings, dict) and embeddings:
        embeddings = next(iter(embeddings.values()))
    if type(embeddings).__name__ not in ("DataArray", "Dataset") or "sample" not in embeddings.dims:
        return None
    cols = {c: np.asarray(embeddings[c].values) for c in embeddings.coords
            if c != "sample" and embeddings[c].dims == ("sample",)}
    if not cols:
        return None
    return pd.DataFrame(cols, index=pd.Index([str(i) for i in embeddings["sample"].values], name="id"))


def split_tables(embeddings, labels, meta=None, keep: tuple = ()) -> tuple[object, list[tuple[pd.DataFrame, str]]]:
    """Per-sample tables where split inputs (lat / lon, group columns) can be found, in priority order:
    ``meta`` (DataFrame, CSV file or sample root with meta.csv), the embeddings' sample coordinates, columns of a
    labels DataFrame that are not tasks (``lat``, ``lon`` and the names in ``keep``: removed from the labels so they
    are not scored), the meta.csv beside a label folder (``ROOT/labels`` -> ``ROOT/meta.csv``).

    Returns ``(labels without those columns, [(table, source description), ...])``."""
    tables = []
    if meta is not None:
        tables.append(_read_table(meta))
    coords = _coords_table(embeddings)
    if coords is not None:
        tables.append((coords, "embedding coordinates"))
    if isinstance(labels, pd.DataFrame):
        types = labels.attrs.get("task_types") or {}
        extra = [c for c in labels.columns if c not in types and (c in ("lat", "lon") or c in keep)]
        if extra:
            df = labels.set_index("id") if "id" in labels.columns else labels
            t = df[extra].copy()
            t.index = pd.Index([str(i) for i in t.index], name="id")
            tables.append((t, "labels DataFrame columns"))
            attrs = dict(labels.attrs)
            labels = labels.drop(columns=extra)
            labels.attrs.update(attrs)
    elif isinstance(labels, (str, Path)) and (Path(labels).parent / "meta.csv").is_file():
        tables.append(_read_table(Path(labels).parent / "meta.csv"))
    return labels, tables


def find_column(tables, columns: tuple[str, ...]) -> tuple[pd.DataFrame | None, str | None]:
    """The first table holding all ``columns`` (those columns only) and its source, else (None, None)."""
    for df, src in tables:
        if all(c in df.columns for c in columns):
            return df[list(columns)], src
    return None, None


# ----------------------------------------------------------------------------------------------- geometry
def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def spatial_blocks(lat, lon, km: float) -> np.ndarray:
    """Block id (int64) of each point for blocks of about ``km`` x ``km``: latitude bands ``km`` high, each cut into
    ``floor(circumference at the band's centre / km)`` equal-longitude cells (roughly equal-area blocks)."""
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    deg_km = EARTH_RADIUS_KM * math.pi / 180.0
    band = np.floor((lat + 90.0) * deg_km / km).astype(np.int64)
    centre = np.clip((band + 0.5) * km / deg_km - 90.0, -90.0, 90.0)
    ncol = np.maximum(1, np.floor(2 * math.pi * EARTH_RADIUS_KM * np.cos(np.radians(centre)) / km)).astype(np.int64)
    col = np.floor((np.mod(lon + 180.0, 360.0)) / (360.0 / ncol)).astype(np.int64) % ncol
    return band * (int(2 * math.pi * EARTH_RADIUS_KM / km) + 2) + col   # unique: col < that many cells


def spatial_clusters(lat, lon, n_clusters: int, seed: int = 42) -> np.ndarray:
    """KMeans cluster (int64) of each point, clustered on its position on the unit sphere."""
    from sklearn.cluster import KMeans

    la, lo = np.radians(np.asarray(lat, np.float64)), np.radians(np.asarray(lon, np.float64))
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], 1)
    n_distinct = len(np.unique(np.round(xyz, 9), axis=0))
    if n_distinct < n_clusters:
        raise DataError(f"spatial split: {n_distinct} distinct locations for {n_clusters} clusters; use fewer "
                        "clusters (split_clusters=) or blocks of a size in km (split_km=).")
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(xyz).astype(np.int64)


# ----------------------------------------------------------------------------------------------- folds
def _check_fold(task: str, k: int, tr: np.ndarray, te: np.ndarray, what: str) -> None:
    for name, part in (("training", tr), ("test", te)):
        if len(part) < 2:
            raise DataError(f"Task {task!r}, fold {k}: the {name} part has {len(part)} sample(s) with the {what} "
                            "split; each side needs at least 2. Give more samples, other "
                            f"{'test ids' if what == 'fixed' else 'groups / a smaller km / fewer clusters'}, or "
                            "leave the task out with tasks=.")


def _group_folds(task: str, rows: np.ndarray, g: np.ndarray, folds: int, test_size: float, seed: int,
                 what: str) -> tuple[list, dict]:
    from sklearn.model_selection import GroupShuffleSplit

    uniq = np.unique(g)
    n_g = len(uniq)
    n_test = math.ceil(test_size * n_g)
    if n_g < 2 or n_g - n_test < 1:
        fix = "finer groups" if what == "group" else "smaller blocks (split_km=) or more clusters"
        raise DataError(f"Task {task!r}: its {len(rows)} samples fall in {n_g} {what}(s); a {what} split needs at "
                        f"least 2 (one held out). Use {fix}.")
    if math.comb(n_g, n_test) < folds:
        raise DataError(f"Task {task!r}: {n_g} {what}s give only {math.comb(n_g, n_test)} different test sets of "
                        f"{n_test} {what}(s), fewer than folds={folds}; use fewer folds (folds=/--folds) or more, "
                        f"smaller {what}s.")
    gss = GroupShuffleSplit(n_splits=folds, test_size=test_size, random_state=seed)
    out = []
    for k, (tr, te) in enumerate(gss.split(np.zeros(len(rows)), groups=g)):
        _check_fold(task, k, tr, te, what)
        out.append((rows[tr], rows[te]))
    frac = float(np.mean([len(te) / len(rows) for _, te in out]))
    return out, {f"n_{what}s": int(n_g), "test_fraction_mean": frac}


def _aligned(values, ids: np.ndarray, name: str, used: np.ndarray):
    """Per-row values aligned with ``ids`` from a mapping (Series / dict, keyed by id) or a sequence of len(ids).
    Ids of used rows without a value (absent or NaN) are an error naming them."""
    if isinstance(values, dict):
        values = pd.Series(values)
    if isinstance(values, pd.Series):
        s = values.copy()
        s.index = s.index.astype(str)
        out = s.reindex(ids).to_numpy()
    elif isinstance(values, pd.DataFrame):
        s = values.copy()
        s.index = s.index.astype(str)
        out = s.reindex(ids).to_numpy()
    else:
        out = np.asarray(values)
        if len(out) != len(ids):
            raise DataError(f"{name}: {len(out)} values for {len(ids)} samples; give one per sample (in the order of "
                            "the ids) or a mapping {id: value}.")
    miss = pd.isna(pd.DataFrame(out.reshape(len(ids), -1))).any(axis=1).to_numpy() & used
    if miss.any():
        raise DataError(f"{name}: no value for {int(miss.sum())} labelled sample(s): {_few(ids[miss])}; give every "
                        "labelled sample one, or leave those samples out (exclude_file=).")
    return out


_OWNER = {"groups": "group", "train_ids": "fixed", "test_ids": "fixed", "km": "spatial", "n_clusters": "spatial"}


def check_split_options(split: str, **options) -> None:
    """DataError for an unknown strategy, or an option given that ``split`` does not use (e.g. groups with
    split='shuffle'), naming the strategy the option belongs to."""
    if split not in SPLITS:
        raise DataError(f"split={split!r}; use one of {SPLITS}.")
    stray = [k for k, v in options.items() if v is not None and _OWNER.get(k, split) != split]
    if stray:
        raise DataError(f"split={split!r} does not use {stray}; "
                        + ", ".join(f"{k} belongs to split={_OWNER[k]!r}" for k in stray) + ".")


def make_splits(ids, rows: dict | None = None, split: str = "shuffle", folds: int = 40, seed: int = 42, *,
                groups=None, train_ids=None, test_ids=None, km: float | None = None,
                n_clusters: int | None = None, latlon=None, test_size: float = TEST_SIZE) -> Folds:
    """Train/test folds per task: ``{task: [(train_rows, test_rows), ...]}`` (a :class:`Folds` with ``info``).

    ids: (n,) sample ids, the rows of the embedding matrix. rows: ``{task: row indices of its labelled samples}``
    (default: one task "all" with every row); rows are indices into ``ids`` and folds keep their order.
    split: "shuffle" (NeuCo-Bench: ShuffleSplit per task), "fixed" (one fold: ``test_ids``, and ``train_ids`` or
    every other labelled sample), "group" (GroupShuffleSplit over ``groups``: a Series / dict {id: group} or one
    value per row), "spatial" (group folds over blocks of about ``km`` km from ``latlon``, or over ``n_clusters``
    KMeans clusters when ``km`` is None; latlon: DataFrame with lat/lon indexed by id, or an (n, 2) array).
    folds, seed, test_size: number of folds, their random_state and held-out fraction (of samples for shuffle, of
    groups / blocks / clusters otherwise).
    """
    ids = np.asarray([str(i) for i in ids])
    rows = {"all": np.arange(len(ids))} if rows is None else {t: np.asarray(r, np.int64) for t, r in rows.items()}
    check_split_options(split, groups=groups, train_ids=train_ids, test_ids=test_ids, km=km, n_clusters=n_clusters)
    used = np.zeros(len(ids), bool)
    for r in rows.values():
        used[r] = True
    if split != "fixed" and (isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 1):
        raise DataError(f"folds={folds!r}; use a positive integer.")
    out = Folds(info={"strategy": split})
    info = out.info
    if split == "shuffle":
        from eoembed.bench.shuffle import shuffle_split  # sklearn's ShuffleSplit in NumPy (no sklearn import)

        info.update(folds=int(folds), test_size=test_size, seed=int(seed))
        for t, r in rows.items():
            out[t] = [(r[tr], r[te]) for tr, te in shuffle_split(len(r), folds, test_size, seed)]
        return out
    if split == "fixed":
        if test_ids is None:
            raise DataError("split='fixed' needs test_ids (the held-out sample ids; train_ids default to every other "
                            "labelled sample).")
        te_set = set(read_ids(test_ids, "test_ids"))
        tr_set = None if train_ids is None else set(read_ids(train_ids, "train_ids"))
        known = set(ids.tolist())
        for name, s in (("test_ids", te_set), ("train_ids", tr_set)):
            if s is not None and s - known:
                bad = sorted(s - known)
                raise DataError(f"{name}: {len(bad)} id(s) not among the {len(ids)} samples with an embedding and a "
                                f"label: {_few(bad)}; check the ids (suffixes .zarr are stripped) or drop them.")
        if tr_set is not None and tr_set & te_set:
            both = sorted(tr_set & te_set)
            raise DataError(f"train_ids and test_ids share {len(both)} id(s): {_few(both)}; a sample is either "
                            "trained on or held out.")
        is_te = np.isin(ids, list(te_set))
        is_tr = ~is_te if tr_set is None else np.isin(ids, list(tr_set))
        info.update(folds=1, test_size=None, n_test_ids=len(te_set),
                    n_train_ids=None if tr_set is None else len(tr_set), unassigned={})
        for t, r in rows.items():
            tr, te = r[is_tr[r]], r[is_te[r]]
            _check_fold(t, 0, tr, te, "fixed")
            out[t] = [(tr, te)]
            info["unassigned"][t] = int(len(r) - len(tr) - len(te))
        return out
    if split == "group":
        if groups is None:
            raise DataError("split='group' needs groups: a Series / dict {id: group}, one group per sample, or a "
                            "column name of the meta table / labels.")
        g = _aligned(groups, ids, "groups", used)
        g = pd.factorize(pd.Series(g).astype(str))[0]
        info.update(folds=int(folds), test_size=test_size, seed=int(seed), per_task={})
        what = "group"
    else:
        if latlon is None:
            raise DataError("split='spatial' needs the samples' lat/lon (meta= a table or meta.csv with id,lat,lon; "
                            "or embeddings with lat/lon sample coordinates).")
        if isinstance(latlon, pd.DataFrame):
            missing = [c for c in ("lat", "lon") if c not in latlon.columns]
            if missing:
                raise DataError(f"latlon table has columns {list(latlon.columns)}; it needs 'lat' and 'lon'.")
            latlon = latlon[["lat", "lon"]].apply(pd.to_numeric, errors="coerce")
        ll = np.asarray(_aligned(latlon, ids, "lat/lon (spatial split)", used), np.float64).reshape(len(ids), 2)
        bad = used & ((np.abs(ll[:, 0]) > 90) | (np.abs(ll[:, 1]) > 180))
        if bad.any():
            raise DataError(f"lat/lon out of range for sample(s) {_few(ids[bad])}; give WGS84 degrees (lat, lon).")
        g = np.full(len(ids), -1, np.int64)
        if km is not None:
            if isinstance(km, bool) or not isinstance(km, (int, float, np.integer, np.floating)) or not km > 0:
                raise DataError(f"split_km={km!r}; give a block size in km > 0 (or None for KMeans clusters).")
            g[used] = spatial_blocks(ll[used, 0], ll[used, 1], float(km))
            info.update(method="blocks", km=float(km), n_blocks=int(len(np.unique(g[used]))))
            what = "block"
        else:
            k = DEFAULT_CLUSTERS if n_clusters is None else n_clusters
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
                raise DataError(f"split_clusters={k!r}; use an integer >= 2.")
            g[used] = spatial_clusters(ll[used, 0], ll[used, 1], int(k), seed=seed)
            info.update(method="kmeans", n_clusters=int(k))
            what = "cluster"
        info.update(folds=int(folds), test_size=test_size, seed=int(seed), per_task={})
    for t, r in rows.items():
        out[t], facts = _group_folds(t, r, g[r], int(folds), test_size, seed, what)
        info["per_task"][t] = facts
    out.info["groups"] = g   # the group / block / cluster of each row (-1: row of no task)
    return out


def describe(info: dict) -> dict:
    """``info`` without the per-row group array (what eoembed_report.json records)."""
    return {k: v for k, v in info.items() if k != "groups"}


def _is_file_ref(s) -> bool:
    if isinstance(s, Path):
        return True
    s = str(s)
    return s.lower().endswith(".csv") or Path(s).is_file() or (":" in s and Path(s.rsplit(":", 1)[0]).is_file())


def split_inputs(embeddings, labels, split: str = "shuffle", groups=None, meta=None):
    """Find what ``split`` needs: the group of each sample (``groups``: a Series / dict {id: group}, an array, a
    CSV file ``id,<group>`` (``FILE.csv:COLUMN`` picks a column) or a column name of the per-sample tables) and the
    lat/lon of each sample (spatial), from the tables of :func:`split_tables`.

    Returns ``(labels, inputs, sources)``: labels without non-task columns used here, keyword arguments for
    :func:`make_splits` (``groups`` / ``latlon``) and where each came from."""
    if split not in SPLITS:
        raise DataError(f"split={split!r}; use one of {SPLITS}.")
    col = groups if isinstance(groups, str) and not _is_file_ref(groups) else None
    if meta is not None or split in ("group", "spatial"):
        labels, tables = split_tables(embeddings, labels, meta=meta, keep=(col,) if col else ())
    else:
        tables = []
    inputs, sources = {}, {}
    if groups is not None:
        if col is not None:
            t, src = find_column(tables, (col,))
            if t is None:
                have = sorted({c for df, _ in tables for c in df.columns})
                raise DataError(f"groups={col!r}: no such column in the per-sample tables ({[s for _, s in tables]}: "
                                f"columns {have}); give meta= a table with that column, a CSV file, or a mapping.")
            inputs["groups"], sources["groups"] = t[col], f"column {col!r} of {src}"
        elif isinstance(groups, (str, Path)):
            inputs["groups"], sources["groups"] = read_groups(groups), f"file {str(groups)!r}"
        else:
            inputs["groups"], sources["groups"] = groups, type(groups).__name__
    if split == "spatial":
        t, src = find_column(tables, ("lat", "lon"))
        if t is None:
            raise DataError("split='spatial' needs each sample's lat/lon and none was found: give meta= a table or "
                            "CSV with columns id,lat,lon (the generated sample's ROOT/meta.csv; found beside a label "
                            "folder ROOT/labels automatically), or embeddings with lat/lon sample coordinates.")
        inputs["latlon"], sources["latlon"] = t, src
    return labels, inputs, sources

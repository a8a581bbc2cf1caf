"""Offline basemap: Natural Earth land and country outlines from the npm ``world-atlas`` package.

Set-up step (idempotent; ``make install`` runs it)::

    python -m widgets.assets            # fetch world-atlas once, convert TopoJSON -> GeoJSON into the cache
    python -m widgets.assets --check    # say whether the outlines are cached (exit 1 if not)

The cache folder is ``$EOEMBED_CACHE/world-atlas`` (default ``~/.cache/eoembed/world-atlas``); nothing is
committed. Without it (offline and never fetched) :func:`basemap` returns None and the maps work without outlines.

>>> topo = {"type": "Topology", "transform": {"scale": [1, 1], "translate": [0, 0]},
...         "arcs": [[[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]]],
...         "objects": {"sq": {"type": "GeometryCollection", "geometries": [{"type": "Polygon", "arcs": [[0]]}]}}}
>>> topo_to_geojson(topo, "sq")["features"][0]["geometry"]["coordinates"]
[[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

#: The pinned npm package (Natural Earth 1:110m / 1:50m, TopoJSON) and its registry sha1 (``dist.shasum``).
PACKAGE, VERSION, SHA1 = "world-atlas", "2.0.2", "4bca4a578f3a413bd409c3f07f2054fe7375824f"
REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
RESOLUTIONS = ("110m", "50m")
KINDS = ("land", "countries")


def cache_dir() -> Path:
    """Where the converted GeoJSON files live: ``$EOEMBED_CACHE/world-atlas`` or ``~/.cache/eoembed/world-atlas``."""
    root = os.environ.get("EOEMBED_CACHE") or Path.home() / ".cache" / "eoembed"
    return Path(root) / "world-atlas"


def _arc_coords(topology: dict) -> list[list[list[float]]]:
    """Absolute lon/lat coordinates of every arc (delta-decoded and de-quantized when the topology has a transform)."""
    tr = topology.get("transform")
    arcs = []
    for arc in topology["arcs"]:
        if tr is None:
            arcs.append([[float(p[0]), float(p[1])] for p in arc])
            continue
        (sx, sy), (tx, ty) = tr["scale"], tr["translate"]
        x = y = 0
        pts = []
        for p in arc:
            x, y = x + p[0], y + p[1]
            pts.append([float(x * sx + tx), float(y * sy + ty)])
        arcs.append(pts)
    return arcs


def _ring(indices: list[int], arcs: list) -> list[list[float]]:
    """Join arcs (``~i`` = arc ``i`` reversed) into one line; shared end/start points appear once."""
    out: list[list[float]] = []
    for i in indices:
        pts = arcs[i] if i >= 0 else arcs[~i][::-1]
        out.extend(pts if not out else pts[1:])
    return out


def _point(p: list, tr: dict | None) -> list[float]:
    if tr is None:
        return [float(p[0]), float(p[1])]
    return [float(p[0] * tr["scale"][0] + tr["translate"][0]), float(p[1] * tr["scale"][1] + tr["translate"][1])]


def _geometry(g: dict, arcs: list, tr: dict | None) -> dict | None:
    t = g.get("type")
    if t is None:
        return None
    if t == "GeometryCollection":
        return {"type": t, "geometries": [x for x in (_geometry(c, arcs, tr) for c in g["geometries"]) if x]}
    if t == "Point":
        return {"type": t, "coordinates": _point(g["coordinates"], tr)}
    if t == "MultiPoint":
        return {"type": t, "coordinates": [_point(p, tr) for p in g["coordinates"]]}
    if t == "LineString":
        return {"type": t, "coordinates": _ring(g["arcs"], arcs)}
    if t == "MultiLineString":
        return {"type": t, "coordinates": [_ring(a, arcs) for a in g["arcs"]]}
    if t == "Polygon":
        return {"type": t, "coordinates": [_ring(r, arcs) for r in g["arcs"]]}
    if t == "MultiPolygon":
        return {"type": t, "coordinates": [[_ring(r, arcs) for r in poly] for poly in g["arcs"]]}
    raise ValueError(f"TopoJSON geometry type {t!r} is not one of Point, MultiPoint, LineString, "
                     "MultiLineString, Polygon, MultiPolygon, GeometryCollection")


def topo_to_geojson(topology: dict, name: str) -> dict:
    """The GeoJSON FeatureCollection of object ``name`` of a TopoJSON ``topology`` (ids and properties kept)."""
    if topology.get("type") != "Topology":
        raise ValueError(f"not a TopoJSON topology (type={topology.get('type')!r})")
    if name not in topology.get("objects", {}):
        raise KeyError(f"TopoJSON has no object {name!r}; it has {sorted(topology.get('objects', {}))}")
    arcs, tr = _arc_coords(topology), topology.get("transform")
    obj = topology["objects"][name]
    geoms = obj["geometries"] if obj.get("type") == "GeometryCollection" else [obj]
    feats = []
    for g in geoms:
        f: dict[str, Any] = {"type": "Feature", "properties": dict(g.get("properties") or {}),
                             "geometry": _geometry(g, arcs, tr)}
        if "id" in g:
            f["id"] = g["id"]
        feats.append(f)
    return {"type": "FeatureCollection", "features": feats}


def _path(kind: str, resolution: str, folder: Path | None = None) -> Path:
    if kind not in KINDS:
        raise ValueError(f"basemap kind {kind!r} is not one of {KINDS}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"basemap resolution {resolution!r} is not one of {RESOLUTIONS}")
    return Path(folder or cache_dir()) / f"{kind}-{resolution}.geojson"


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed https registry URL)
        return r.read()


def fetch_basemap(folder: str | os.PathLike | None = None, force: bool = False, timeout: float = 30.0,
                  tarball: str | os.PathLike | None = None) -> Path:
    """Download ``world-atlas@VERSION`` from the npm registry (or read a local ``tarball``), check its sha1 and
    write ``land-<res>.geojson`` / ``countries-<res>.geojson`` into ``folder`` (default :func:`cache_dir`).

    Idempotent: returns at once when every file is already there (unless ``force``). Offline with nothing cached it
    raises ConnectionError saying so; the widgets then still work, without outlines.
    """
    folder = Path(folder or cache_dir())
    wanted = [_path(k, r, folder) for r in RESOLUTIONS for k in KINDS]
    if not force and all(p.is_file() for p in wanted):
        return folder
    url = f"{REGISTRY}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
    if tarball is not None:
        data = Path(tarball).read_bytes()
    else:
        try:
            data = _download(url, timeout)
        except OSError as e:
            raise ConnectionError(
                f"could not download the offline basemap {PACKAGE}@{VERSION} from {url} ({e}). Run "
                f"`python -m widgets.assets` once with access to the npm registry (or pass --tarball FILE.tgz from "
                f"`npm pack {PACKAGE}@{VERSION}`); until then SampleMap works without land/country outlines.") from e
    got = hashlib.sha1(data).hexdigest()  # noqa: S324 (npm's published dist.shasum is sha1)
    if got != SHA1:
        raise ValueError(f"{PACKAGE}-{VERSION}.tgz has sha1 {got}, expected {SHA1} (npm dist.shasum); "
                         "the download is corrupt or not the pinned version; delete it and retry")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for res in RESOLUTIONS:
            member = tar.extractfile(f"package/countries-{res}.json")  # holds both 'countries' and 'land'
            if member is None:
                raise ValueError(f"{PACKAGE}-{VERSION}.tgz has no package/countries-{res}.json")
            topo = json.load(member)
            for kind in KINDS:
                out = _path(kind, res, folder)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(topo_to_geojson(topo, kind), separators=(",", ":")))
                tmp.replace(out)
    (folder / "SOURCE.txt").write_text(f"{url}\nsha1 {SHA1}\nNatural Earth (public domain) via world-atlas "
                                       f"(ISC licence), converted TopoJSON -> GeoJSON by widgets.assets\n")
    return folder


def basemap(kind: str = "countries", resolution: str = "110m", folder: str | os.PathLike | None = None
            ) -> dict | None:
    """The cached GeoJSON FeatureCollection (``kind`` 'land' or 'countries'), or None when not fetched yet."""
    p = _path(kind, resolution, Path(folder) if folder else None)
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m widgets.assets", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=None, help="cache folder (default: %(default)s -> " f"{cache_dir()})")
    ap.add_argument("--force", action="store_true", help="download and convert again")
    ap.add_argument("--check", action="store_true", help="only report whether the outlines are cached")
    ap.add_argument("--tarball", default=None, help=f"a local {PACKAGE}-{VERSION}.tgz instead of the registry")
    a = ap.parse_args(argv)
    folder = Path(a.dir or cache_dir())
    if a.check:
        missing = [str(_path(k, r, folder)) for r in RESOLUTIONS for k in KINDS if not _path(k, r, folder).is_file()]
        print(f"basemap outlines missing: {missing}" if missing else f"basemap outlines cached in {folder}")
        return 1 if missing else 0
    try:
        out = fetch_basemap(folder, force=a.force, tarball=a.tarball)
    except (ConnectionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"basemap outlines ({PACKAGE}@{VERSION}) in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

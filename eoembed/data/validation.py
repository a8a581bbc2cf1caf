"""Validate a dataset folder (SSL4EO-S12-downstream layout): files, cube contract, labels and meta.csv."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from eoembed.data.cube import validate_cube
from eoembed.data.labels import read_labels
from eoembed.data.ssl4eo import open_cube
from eoembed.errors import LabelError


def validate(root: str | Path, nodata: Literal["error", "allow", "mask"] = "error",
             missing_seasons: Literal["error", "allow"] = "error", check_values: bool = True,
             progress: bool = True) -> dict:
    """Open ``root`` lazily, validate the cube (reading every file once when ``check_values``) and its labels.

    Raises DataError / DataFileNotFound / LabelError on the first problem (message names the file / sample /
    band and the fix). Returns a report dict: n_samples, bands, shape, value ranges, label tasks and coverage.
    """
    root = Path(root)
    cube = open_cube(root)
    if progress and check_values:
        from dask.diagnostics import ProgressBar
        with ProgressBar():
            report = validate_cube(cube, nodata=nodata, missing_seasons=missing_seasons, check_values=check_values)
    else:
        report = validate_cube(cube, nodata=nodata, missing_seasons=missing_seasons, check_values=check_values)
    report["lat_lon_known"] = int((cube["lat"].notnull() & cube["lon"].notnull()).sum())
    labels_dir = root / "labels"
    if labels_dir.is_dir():
        labels = read_labels(labels_dir)
        ids = set(str(s) for s in cube["sample"].values)
        unknown = [i for i in labels.index if i not in ids]
        if unknown:
            raise LabelError(f"{len(unknown)} labelled id(s) in {str(labels_dir)!r} have no image files, e.g. "
                             f"{unknown[:5]}; remove those rows or restore the files.")
        report["tasks"] = {t: {"type": labels.attrs["task_types"][t], "n_labelled": int(labels[t].notna().sum())}
                           for t in labels.columns}
    else:
        report["tasks"] = {}
    return report

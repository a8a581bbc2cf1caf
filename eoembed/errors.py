"""Exception types. Every message names the offending sample / band / file and says what to do."""
from __future__ import annotations


class EOEmbedError(Exception):
    """Base class of eoembed's own errors."""


class DataError(EOEmbedError, ValueError):
    """Input data is malformed (bad band, NaN, missing season, duplicate id, wrong layout...)."""


class DataFileNotFound(EOEmbedError, FileNotFoundError):
    """An expected file or folder is missing."""


class LabelError(EOEmbedError, ValueError):
    """Labels are malformed (unknown task type, constant label, one class, no overlapping ids...)."""


class WeightsMismatchError(EOEmbedError, RuntimeError):
    """A checkpoint does not fit the architecture: missing, unexpected or mis-shaped tensors."""


class WeightsNotFound(EOEmbedError, FileNotFoundError):
    """No checkpoint could be found locally and downloading was not possible."""


class StoreError(EOEmbedError, ValueError):
    """An embedding store is inconsistent (mismatched ids, a model missing for some samples, NaN embeddings...)."""


class OutputError(EOEmbedError, ValueError):
    """An output path cannot be written (a file where a folder is needed, read-only, already exists)."""

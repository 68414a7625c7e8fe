"""The served model folder (``models/``): its file names, and how ``export`` replaces them at once.

The service loads ``model.onnx`` and ``features.json``; the drift job ``features.json`` and
``reference_profile.json``. ``features.json`` is the manifest: it carries the sha256 of
``model.onnx`` and a checksum over its own content, and the model version derives from both (see
``features.FeatureSchema``), so the service refuses any pair of files that do not belong together.

``publishing`` lets ``export`` write the files into a scratch folder beside them and then renames
them into place, ``features.json`` last. A reader that looks at any moment, or after an export
killed at any point, finds the previous model whole, or files whose hashes do not match (which
the service refuses to load): never a new threshold under the old version.

Only the standard library: the service imports this module too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_FILE = "features.json"
ONNX_FILE = "model.onnx"
PROFILE_FILE = "reference_profile.json"
# Publication order: the manifest last.
FILES = (ONNX_FILE, PROFILE_FILE, SCHEMA_FILE)
# Inside the models folder, so every rename stays on one file system (and is atomic).
SCRATCH = ".export-incomplete"


def _fsync(path: Path) -> None:
    """Flush to disk, so a rename never publishes a file whose bytes are still in a cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def publishing(folder: Path) -> Iterator[Path]:
    """A scratch folder to write ``FILES`` into; on a clean exit they replace those in ``folder``.

    If the block raises, nothing in ``folder`` changes. A scratch folder left by an export that
    was killed is removed first.
    """
    scratch = folder / SCRATCH
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    try:
        yield scratch
        missing = [name for name in FILES if not (scratch / name).is_file()]
        if missing:
            raise FileNotFoundError(f"export wrote no {', '.join(missing)}: nothing was published")
        for name in FILES:
            _fsync(scratch / name)
        for name in FILES:
            os.replace(scratch / name, folder / name)
        _fsync(folder)
    finally:
        # Never mask the error that stopped the export; the next export removes any leftover.
        shutil.rmtree(scratch, ignore_errors=True)

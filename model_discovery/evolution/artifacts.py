"""Where a run's files live: its own folder (the default), an S3 prefix (``s3://bucket/prefix``; any S3-compatible
endpoint through ``AWS_ENDPOINT_URL`` or ``endpoint_url``) or any other location fsspec reaches (``gs://...``,
``memory://...``). Keys are relative paths such as ``designs/d0001/design.py`` or
``verify/d0001-cpu-1m-3fa2/metrics.json``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from model_discovery.files import atomic_path, atomic_write


class _AtomicLocalFileSystem(LocalFileSystem):
    """The local file system with atomic writes: a worker reading a key another one writes sees a whole file."""

    def pipe_file(self, path, value, **kwargs):
        atomic_write(path, value)

    def put_file(self, path1, path2, callback=None, **kwargs):
        if os.path.exists(path2) and os.path.samefile(path1, path2):
            return  # the default store is the work folder itself: the file is already in place
        with atomic_path(path2) as tmp:
            shutil.copyfile(path1, tmp)


def _storage_options(location: str, endpoint_url: str | None) -> dict:
    # a fresh filesystem rather than fsspec's cached one, so it reads the credentials and endpoint of now
    options: dict = {"skip_instance_cache": True}
    if endpoint_url:
        if fsspec.utils.get_protocol(location) not in ("s3", "s3a"):
            raise ValueError(f"endpoint_url={endpoint_url!r} applies to S3 stores and {location!r} is not one; "
                             "drop endpoint_url or give an s3://bucket/prefix location.")
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    return options


class Artifacts:
    """``put``/``get`` by key under ``location`` (a folder or an fsspec URL). Workers keep a work copy in their own
    folder whatever the store, so a job can resume from it."""

    def __init__(self, location: str | Path, endpoint_url: str | None = None):
        self.location = str(location)
        fs, self.root = fsspec.core.url_to_fs(self.location, **_storage_options(self.location, endpoint_url))
        self.fs = _AtomicLocalFileSystem() if isinstance(fs, LocalFileSystem) else fs

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key) if key else self.root

    def url(self, key: str = "") -> str:
        """Where ``key`` lives: an absolute path in a local store (what the UI and export open), a URL elsewhere."""
        path = self._path(key)
        return path if isinstance(self.fs, LocalFileSystem) else self.fs.unstrip_protocol(path)

    def put_bytes(self, key: str, data: bytes) -> str:
        self.fs.pipe_file(self._path(key), data)
        return self.url(key)

    def put_file(self, key: str, path: str | Path) -> str:
        self.fs.put_file(str(path), self._path(key))
        return self.url(key)

    def put_dir(self, key: str, folder: str | Path, names: tuple[str, ...]) -> str:
        """Uploads the listed files of ``folder`` (those that exist) under ``key/``."""
        for name in names:
            if (Path(folder) / name).is_file():
                self.put_file(f"{key}/{name}", Path(folder) / name)
        return self.url(key)

    def get_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

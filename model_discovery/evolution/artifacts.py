"""Where a run's files live: its own folder (the default), an S3 prefix (``s3://bucket/prefix``; any S3-compatible
endpoint through ``AWS_ENDPOINT_URL`` or ``endpoint_url``) or any other location fsspec reaches (``gs://...``,
``memory://...``). Keys are relative paths such as ``designs/d0001/design.py`` or
``verify/d0001-cpu-1m-3fa2/metrics.json``.

A remote location that fails (an endpoint down or unreachable) is tried again with backoff for up to
:attr:`Artifacts.RETRY_S` seconds, so an outage of a minute delays a job instead of failing it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_exponential

from model_discovery.files import atomic_path, atomic_write

log = logging.getLogger(__name__)
# what another try cannot mend: the local file to upload is missing, or the location refuses these credentials
_FINAL = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError, TypeError)


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
    folder whatever the store, so a job can resume from it. ``retry_s``: how long a remote call keeps trying
    (default :attr:`RETRY_S`; ``$MODIS_ARTIFACTS_RETRY_S``); a local folder's errors (a full disk) are final."""

    RETRY_S = 120.0

    def __init__(self, location: str | Path, endpoint_url: str | None = None, retry_s: float | None = None):
        self.location = str(location)
        fs, self.root = fsspec.core.url_to_fs(self.location, **_storage_options(self.location, endpoint_url))
        self.fs = _AtomicLocalFileSystem() if isinstance(fs, LocalFileSystem) else fs
        self.retry_s = float(retry_s if retry_s is not None else os.environ.get("MODIS_ARTIFACTS_RETRY_S",
                                                                                  self.RETRY_S))

    def _call(self, method, *args):
        """``method(*args)`` on the file system, again with backoff while a remote location fails."""
        remote = not isinstance(self.fs, LocalFileSystem)
        return Retrying(retry=retry_if_exception(lambda exc: remote and not isinstance(exc, _FINAL)),
                        stop=stop_after_delay(self.retry_s), wait=wait_exponential(multiplier=0.5, max=10),
                        before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)(method, *args)

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key) if key else self.root

    def url(self, key: str = "") -> str:
        """Where ``key`` lives: an absolute path in a local store (what the UI and export open), a URL elsewhere."""
        path = self._path(key)
        return path if isinstance(self.fs, LocalFileSystem) else self.fs.unstrip_protocol(path)

    def put_bytes(self, key: str, data: bytes) -> str:
        self._call(self.fs.pipe_file, self._path(key), data)
        return self.url(key)

    def put_file(self, key: str, path: str | Path) -> str:
        self._call(self.fs.put_file, str(path), self._path(key))
        return self.url(key)

    def put_dir(self, key: str, folder: str | Path, names: tuple[str, ...]) -> str:
        """Uploads the listed files of ``folder`` (those that exist) under ``key/``."""
        for name in names:
            if (Path(folder) / name).is_file():
                self.put_file(f"{key}/{name}", Path(folder) / name)
        return self.url(key)

    def get_bytes(self, key: str) -> bytes:
        return self._call(self.fs.cat_file, self._path(key))

    def exists(self, key: str) -> bool:
        return self._call(self.fs.exists, self._path(key))

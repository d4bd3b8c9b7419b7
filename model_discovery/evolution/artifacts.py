"""Where a run's files live: its own folder (the default) or an S3 prefix (``s3://bucket/prefix``, through boto3;
any S3-compatible endpoint via ``AWS_ENDPOINT_URL`` or ``endpoint_url``). Keys are relative paths such as
``designs/d0001/design.py`` or ``verify/d0001-cpu-1m-3fa2/metrics.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class Artifacts:
    """``put``/``get`` by key. A local store writes under its folder; an S3 store uploads (a work copy stays in the
    run folder either way, so a job can resume from it)."""

    def __init__(self, location: str | Path, endpoint_url: str | None = None):
        self.location = str(location)
        self.s3 = self.location.startswith("s3://")
        if self.s3:
            import boto3

            self.bucket, _, prefix = self.location.removeprefix("s3://").partition("/")
            self.prefix = prefix.strip("/")
            self.client = boto3.client("s3", endpoint_url=endpoint_url)
        else:
            self.root = Path(location)
            self.root.mkdir(parents=True, exist_ok=True)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str = "") -> str:
        if self.s3:
            return f"s3://{self.bucket}/{self._key(key)}".rstrip("/")
        return str((self.root / key).resolve())

    def put_bytes(self, key: str, data: bytes) -> str:
        if self.s3:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        else:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return self.url(key)

    def put_file(self, key: str, path: str | Path) -> str:
        path = Path(path)
        if self.s3:
            self.client.upload_file(str(path), self.bucket, self._key(key))
        elif (self.root / key).resolve() != path.resolve():
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.root / key)
        return self.url(key)

    def put_dir(self, key: str, folder: str | Path, names: tuple[str, ...]) -> str:
        """Uploads the listed files of ``folder`` (those that exist) under ``key/``."""
        for name in names:
            if (Path(folder) / name).is_file():
                self.put_file(f"{key}/{name}", Path(folder) / name)
        return self.url(key)

    def get_bytes(self, key: str) -> bytes:
        if self.s3:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        if self.s3:
            from botocore.exceptions import ClientError

            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
                return True
            except ClientError:
                return False
        return (self.root / key).exists()

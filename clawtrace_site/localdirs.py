"""Folders the development defaults write to: made where they are needed, never at import.

Settings only compute paths. Importing them happens in every `manage.py` call, web process and
worker, and in production the code directory may be read-only, so it must not write anywhere.
Each folder is made by what needs it:

- the SQLite database (the development default): `manage.py ensure_local_dirs`, which
  `make setup` runs before `migrate`;
- kombu's filesystem broker and Celery's file result backend (used when `REDIS_URL` is unset):
  the Celery app, when its configuration is first loaded (`clawtrace_site/celery.py`), in
  whichever process sends or runs a task;
- the data dir for the development secret key: `settings._dev_secret_key`, the one time it
  writes the key.

Folders are made private (0700): the data dir holds the secret key and the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

FOLDER_MODE = 0o700
_FILESYSTEM_TRANSPORT_FOLDERS = (
    "data_folder_in",
    "data_folder_out",
    "processed_folder",
    "control_folder",
)


def celery_dirs(
    *,
    broker_url: str | None,
    transport_options: Mapping[str, Any] | None,
    result_backend: str | None,
) -> list[Path]:
    """The folders the configured broker and result backend write to (none for Redis)."""
    paths: list[Path] = []
    if (broker_url or "").startswith("filesystem://"):
        options = transport_options or {}
        paths.extend(
            Path(options[key]) for key in _FILESYSTEM_TRANSPORT_FOLDERS if options.get(key)
        )
    if (result_backend or "").startswith("file://"):
        paths.append(Path(result_backend.removeprefix("file://")))
    return paths


def database_dirs(databases: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """The folders that hold SQLite database files (SQLite makes the file, not its folder)."""
    paths = []
    for database in databases.values():
        name = str(database.get("NAME") or "")
        is_sqlite = database.get("ENGINE", "").endswith("sqlite3")
        # ":memory:" and "file:" URIs (the test databases) have no folder to make.
        if is_sqlite and name and name != ":memory:" and not name.startswith("file:"):
            paths.append(Path(name).parent)
    return paths


def dirs_ensure(paths: Iterable[Path]) -> list[Path]:
    """Make the folders that are missing; returns those it made."""
    made = []
    for path in dict.fromkeys(paths):
        if path.is_dir():
            continue
        # Missing parents get the private mode too (`mkdir(parents=True)` gives them 0777 less
        # the umask): the data dir is usually one of them.
        for folder in reversed([path, *(p for p in path.parents if not p.exists())]):
            folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
        made.append(path)
    return made

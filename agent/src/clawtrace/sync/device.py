"""`device.json`: which server this machine is linked to, and its secret.

Mode 0600, written atomically; a file that others can read is refused (the secret in it writes
into the organization's bill), as ssh refuses a private key with loose permissions.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from clawtrace.paths import home_dir

DEVICE_FILE = "device.json"


class DeviceError(Exception):
    """device.json is missing, unreadable, or readable by others."""


@dataclass(frozen=True)
class Device:
    device_id: str
    server: str
    secret: str
    name: str = ""
    organization: str = ""


def device_path() -> Path:
    return home_dir() / DEVICE_FILE


def device_load(path: Path | None = None) -> Device | None:
    """The linked device, or None when this machine is not linked."""
    path = path or device_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DeviceError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DeviceError(f"{path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise DeviceError(
                f"{path} can be read by other users (mode {stat.S_IMODE(st.st_mode):o}); it "
                f"holds this device's secret. Run `chmod 600 {path}`, or `clawtrace logout` "
                "and log in again."
            )
        data = fh.read(1 << 16)
    try:
        raw = orjson.loads(data)
        return Device(
            device_id=str(raw["device_id"]),
            server=str(raw["server"]),
            secret=str(raw["secret"]),
            name=str(raw.get("name", "")),
            organization=str(raw.get("organization", "")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeviceError(
            f"{path} is not a device file ({exc}); `clawtrace logout` removes it"
        ) from None


def device_save(device: Device, path: Path | None = None) -> Path:
    path = path or device_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".device.", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(asdict(device), option=orjson.OPT_INDENT_2))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def device_forget(path: Path | None = None) -> bool:
    path = path or device_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True

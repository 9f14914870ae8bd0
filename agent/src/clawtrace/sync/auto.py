"""`clawtrace serve`'s own sync: after each scan, and on a timer, when this machine is linked.

It runs in a thread of its own so that a slow or unreachable server never holds up the scans,
the API or the alerts; a failure backs off (doubling up to a quarter of an hour) and is told in
`/api/health` and on the page, never raised. Whether to sync is read again on every round
(device.json and the config's `sync.auto`), so `clawtrace login` and `logout` take effect on a
running server without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clawtrace import store
from clawtrace.config import Config
from clawtrace.sync.client import Client
from clawtrace.sync.device import Device, DeviceError, device_load
from clawtrace.sync.sender import sync_run

log = logging.getLogger("clawtrace.sync")

INTERVAL_SECONDS = 300.0  # a round even with no new scan: turns another process wrote
MIN_GAP_SECONDS = 10.0  # a burst of scans makes one round, not one each
BACKOFF_CAP_SECONDS = 900.0


def auto_enabled(config: Config) -> bool:
    table = config.raw.get("sync", {}) if isinstance(config.raw, dict) else {}
    return not isinstance(table, dict) or table.get("auto", True) is not False


class AutoSync:
    def __init__(
        self,
        db_path: Path,
        config: Config,
        *,
        interval_seconds: float = INTERVAL_SECONDS,
        min_gap_seconds: float = MIN_GAP_SECONDS,
        client_factory: Callable[[Device], Client] | None = None,
    ) -> None:
        self.db_path = db_path
        self.config = config
        self.interval_seconds = interval_seconds
        self.min_gap_seconds = min_gap_seconds
        self.client_factory = client_factory or (
            lambda device: Client(device.server, device.secret, attempts=3)
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.rounds = 0
        self.done = threading.Condition()
        self._status: dict[str, Any] = {"linked": False, "enabled": auto_enabled(config)}

    def request(self) -> None:
        """A scan has committed: send what it added (soon, not at once)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="clawtrace-sync", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def status(self) -> dict[str, Any]:
        return dict(self._status)

    def wait_for_rounds(self, count: int, timeout: float) -> bool:
        with self.done:
            return self.done.wait_for(lambda: self.rounds >= count, timeout)

    def _loop(self) -> None:
        delay = self.interval_seconds
        while not self._stop.is_set():
            self._wake.wait(delay)
            if self._stop.is_set():
                return
            self._wake.clear()
            self.sync_round()
            if self._failures:
                delay = min(BACKOFF_CAP_SECONDS, self.min_gap_seconds * 2**self._failures)
            else:
                delay = self.interval_seconds
            # Coalesce the scans that finish while we wait out the gap.
            if self._stop.wait(self.min_gap_seconds):
                return

    def sync_round(self) -> None:
        """One round: send everything pending, or say why not."""
        try:
            self._round()
        except Exception as exc:  # a round must never kill the server's thread
            self._failures += 1
            self._status.update(syncing=False, last_error=f"{exc.__class__.__name__}: {exc}")
            log.exception("sync failed")
        finally:
            with self.done:
                self.rounds += 1
                self.done.notify_all()

    def _round(self) -> None:
        enabled = auto_enabled(self.config)
        try:
            device = device_load()
        except DeviceError as exc:
            self._status = {"linked": False, "enabled": enabled, "last_error": str(exc)}
            return
        if device is None or not enabled:
            self._status = {"linked": device is not None, "enabled": enabled}
            return
        previous = self._status if self._status.get("server") == device.server else {}
        self._status = {
            **previous,
            "linked": True,
            "enabled": True,
            "server": device.server,
            "organization": device.organization,
            "device": device.name,
            "syncing": True,
        }
        conn = store.connect(self.db_path)
        try:
            with self.client_factory(device) as client:
                result = sync_run(conn, self.config, device, client=client)
        finally:
            conn.close()
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        self._status.update(
            syncing=False,
            pending=sum(result.pending.values()),
            last_sent=result.events,
            last_error=result.error,
        )
        if result.error:
            self._failures += 1
            log.warning("sync to %s failed: %s (will retry)", device.server, result.error)
        else:
            self._failures = 0
            self._status["last_sync_at"] = now
            if result.events:
                log.info("synced %d events to %s", result.events, device.server)


def sync_announce(config: Config) -> str | None:
    """serve's start-up line about sync, or None when this machine is not linked."""
    try:
        device = device_load()
    except DeviceError as exc:
        return f"Sync is off: {exc}"
    if device is None:
        return None
    if not auto_enabled(config):
        return f"Linked to {device.server}; automatic sync is off (sync.auto = false)."
    return (
        f"Syncing metadata (never message text) to {device.server} "
        f"({device.organization or 'your organization'}) after each scan."
    )

"""Keep the store current while agents write: file events (watchdog) plus a periodic rescan.

A burst of appends (an agent streams several lines per turn) is debounced into one incremental
scan ~250 ms after the last event, capped at one second of waiting, so a new turn reaches the
store well within two seconds. Where file events are not delivered (network mounts, some
containers, a root that did not exist yet), a full incremental rescan every `fallback_seconds`
catches up; it is cheap, because the scanner skips files whose size and mtime did not change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clawtrace import store
from clawtrace.config import Config
from clawtrace.sources import SOURCES, source_dirs

log = logging.getLogger("clawtrace.watch")

DEBOUNCE_SECONDS = 0.25
MAX_DEBOUNCE_SECONDS = 1.0
FALLBACK_SECONDS = 30.0
# A scan that reports no progress for this long is stalled (a file system that stopped
# answering): /api/health and the page say so, and the log says it once.
STALL_SECONDS = 120.0


def _interesting(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(source.wakes_on(name) for source in SOURCES.values())


class LiveScanner:
    """Runs `clawtrace.scan.scan` on start, on file events and on a timer, in one thread."""

    def __init__(
        self,
        db_path: Path,
        config: Config,
        *,
        on_scanned: Callable[[Any], None] | None = None,
        debounce_seconds: float = DEBOUNCE_SECONDS,
        fallback_seconds: float = FALLBACK_SECONDS,
        use_events: bool = True,
        **dirs: list[str] | None,
    ) -> None:
        """`dirs`: each source's directories by Source.dirs_key (`claude_dirs=[...]`), instead
        of the config's."""
        self.db_path = db_path
        self.config = config
        self.dirs = source_dirs(dirs, "LiveScanner")
        self.on_scanned = on_scanned
        self.debounce_seconds = debounce_seconds
        self.fallback_seconds = fallback_seconds
        self.use_events = use_events
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._watched: set[str] = set()
        self.scans = 0
        self.scanning = False
        self.stall_seconds = STALL_SECONDS
        self._progress_at = 0.0  # (monotonic) the scan's start or its last progress
        self.stalled = False
        self.last_error: str | None = None
        self.last_result: dict[str, Any] | None = None
        self.scanned = threading.Condition()

    # -- roots and events ------------------------------------------------------------------------

    def roots(self) -> list[Path]:
        from clawtrace.scan import source_roots

        found = source_roots(self.config, **self.dirs)
        return [
            root for name, source in SOURCES.items() for root in source.watch_roots(found[name])
        ]

    def _arm(self) -> None:
        """Watch every root that exists now (roots created later are picked up on the timer)."""
        if not self.use_events:
            return
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency; be safe anyway
            return
        scanner = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
                if any(_interesting(str(p)) for p in paths if p):
                    scanner.request()

        if self._observer is None:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        for root in self.roots():
            key = str(root)
            if key in self._watched or not root.is_dir():
                continue
            try:
                self._observer.schedule(Handler(), key, recursive=True)
                self._watched.add(key)
            except OSError as exc:  # e.g. inotify watch limit reached: the timer still works
                log.warning("cannot watch %s (%s); relying on the periodic rescan", key, exc)

    # -- lifecycle -------------------------------------------------------------------------------

    def request(self) -> None:
        self._wake.set()

    def scan_once(self) -> Any:
        from clawtrace.scan import scan

        conn = store.connect(self.db_path)
        try:
            result = scan(
                conn,
                self.config,
                progress=self._progress,
                # In one process: this one has threads (the server's, the stall watch), and a
                # child forked from it could inherit a lock one of them held (logging's, the
                # import lock, malloc's) and wait for ever. `clawtrace scan` forks its workers
                # from a process with no other thread.
                workers=1,
                **self.dirs,
            )
        finally:
            conn.close()
        self.last_result = result.as_dict() if hasattr(result, "as_dict") else None
        self.last_error = None
        if self.on_scanned is not None:
            try:
                self.on_scanned(result)
            except Exception:  # alerts must never stop ingestion
                log.exception("after-scan hook failed")
        with self.scanned:
            self.scans += 1
            self.scanned.notify_all()
        return result

    def start(self, initial_scan: bool = True, background: bool = False) -> None:
        """Scan, then watch. With `background` the first scan runs in the watcher thread, so a
        server can answer (from the store as it is) while a big first import is under way."""
        if initial_scan and not background:
            self._safe_scan()
        self._arm()
        if initial_scan and background:
            self._wake.set()
        self._thread = threading.Thread(target=self._loop, name="clawtrace-watch", daemon=True)
        self._thread.start()

    def _progress(self, *_args: Any, **_kw: Any) -> Callable[..., None]:
        """The scan's progress (scan.ProgressFactory): each tick says it is not stalled."""
        self._seen_progress()

        def tick(*_a: Any, **_k: Any) -> None:
            self._seen_progress()

        return tick

    def _seen_progress(self) -> None:
        self._progress_at = time.monotonic()
        if self.stalled:
            self.stalled = False
            log.info("the scan is moving again")

    def _stall_watch(self, done: threading.Event) -> None:
        """While a scan runs: flag it, and log once, when it shows no progress for too long."""
        while not done.wait(min(5.0, self.stall_seconds / 4)):
            quiet = time.monotonic() - self._progress_at
            if quiet > self.stall_seconds and not self.stalled:
                self.stalled = True
                log.warning(
                    "the scan has made no progress for %d s: a log directory or file that does "
                    "not answer (a network mount?) holds it; the store keeps what it has",
                    int(quiet),
                )

    def _safe_scan(self) -> None:
        self.scanning = True
        self._progress_at = time.monotonic()
        done = threading.Event()
        watcher = threading.Thread(
            target=self._stall_watch, args=(done,), name="clawtrace-stall", daemon=True
        )
        watcher.start()
        try:
            self.scan_once()
        except Exception as exc:
            # A locked or broken store must not kill the server; say so in /api/health.
            from clawtrace.failures import explain

            known = explain(exc)
            self.last_error = known or f"{exc.__class__.__name__}: {exc}"
            if known:
                log.error("scan failed: %s", known)
            else:
                log.exception("scan failed")
        finally:
            self.scanning = False
            self.stalled = False
            done.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(self.fallback_seconds)
            if self._stop.is_set():
                return
            if woke:
                # Let a burst of writes settle, but never wait more than MAX_DEBOUNCE_SECONDS.
                deadline = time.monotonic() + MAX_DEBOUNCE_SECONDS
                self._wake.clear()
                while time.monotonic() < deadline and self._wake.wait(self.debounce_seconds):
                    self._wake.clear()
            else:
                self._arm()  # roots that appeared since the last tick
            self._safe_scan()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def status(self) -> dict[str, Any]:
        return {
            "watching": self._thread is not None and self._thread.is_alive(),
            "watched_roots": sorted(self._watched),
            "scans": self.scans,
            "scanning": self.scanning,
            "stalled_seconds": round(time.monotonic() - self._progress_at)
            if self.scanning and self.stalled
            else None,
            "last_error": self.last_error,
        }

    def wait_for_scans(self, count: int, timeout: float) -> bool:
        """Block until at least `count` scans have completed (for tests and `serve --once`)."""
        with self.scanned:
            return self.scanned.wait_for(lambda: self.scans >= count, timeout)

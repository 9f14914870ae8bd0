"""`clawtrace sync` and `login`: the sender's steps, for the CLI and for `serve`."""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clawtrace.config import Config
from clawtrace.sync import outbox
from clawtrace.sync.client import Client, SyncError, machine
from clawtrace.sync.device import Device, device_save

# Batches in flight at once: while the server stores one, the next is read, logged and sent,
# so the machine's reading and the server's writing overlap (bench/sync.py: the server is the
# slower side). Two keep a server's two workers busy without letting one device take them all.
IN_FLIGHT = 2


@dataclass
class SyncResult:
    batches: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    updated: int = 0
    retracted: int = 0
    seconds: float = 0.0
    error: str | None = None
    pending: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def privacy_of(config: Config, device: Device | None) -> outbox.Privacy:
    """The config's `[privacy]` table; the hash's salt defaults to the organization, so that
    every machine of a team hashes one project to one label."""
    table = config.raw.get("privacy", {}) if isinstance(config.raw, dict) else {}
    salt = table.get("salt") or (device.organization if device else "") or "clawtrace"
    return outbox.Privacy(
        project_names=table.get("project_names", "name"),
        git_branches=table.get("git_branches", "name"),
        salt=str(salt),
    )


def sync_run(
    conn: sqlite3.Connection,
    config: Config,
    device: Device,
    *,
    client: Client | None = None,
    on_batch: Callable[[SyncResult], None] | None = None,
    max_batches: int | None = None,
    in_flight: int = IN_FLIGHT,
) -> SyncResult:
    """Send every batch the server has not acknowledged, up to `in_flight` at once; the
    cursor moves only after each acknowledgement, and in order (a batch acknowledged before
    the one ahead of it waits for it), so a stop at any point re-sends at most the batches
    that were in flight."""
    started = time.monotonic()
    result = SyncResult()
    outbox.outbox_enable(conn)
    privacy = privacy_of(config, device)
    own = client is None
    client = client or Client(device.server, device.secret)
    pool = ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix="clawtrace-send")
    sending: deque[tuple[outbox.Batch, Future | None]] = deque()
    read = 0
    try:
        while True:
            while len(sending) < max(1, in_flight) and (max_batches is None or read < max_batches):
                batch = _batch_next(conn, privacy, behind=sending[-1][0] if sending else None)
                if batch is None:
                    break
                read += 1
                future = None
                if batch.events or batch.retract:
                    body = batch.body()
                    client.egress(body)  # (here, in order: the log reads as they were sent)
                    future = pool.submit(client.ingest_post, body)
                sending.append((batch, future))
            if not sending:
                break
            batch, future = sending.popleft()
            if future is not None:
                answer = future.result()
                result.accepted += int(answer.get("accepted", 0))
                result.duplicates += int(answer.get("duplicates", 0))
                result.updated += int(answer.get("updated", 0))
                result.retracted += int(answer.get("retracted", 0))
                result.events += len(batch.events)
                result.batches += 1
            outbox.acknowledge(conn, batch)
            if on_batch is not None:
                on_batch(result)
    except SyncError as exc:
        result.error = str(exc)
    finally:
        # The batches still out finish (or fail) unacknowledged: sent again next time, which
        # the server's idempotency absorbs.
        for _, future in sending:
            if future is not None:
                future.cancel()
        pool.shutdown(wait=True)
        if own:
            client.close()
        result.seconds = time.monotonic() - started
        result.pending = outbox.pending(conn)
    return result


def _batch_next(
    conn: sqlite3.Connection, privacy: outbox.Privacy, *, behind: outbox.Batch | None
) -> outbox.Batch | None:
    """The next batch to send, or None for none now. With a batch still in flight, only new
    turns past it (a full batch of new turns says there may be more); the queued changes and
    retractions are read when nothing is in flight, so that none is ever sent twice at once."""
    if behind is None:
        batch = outbox.next_batch(conn, privacy)
    elif behind.high and len(behind.events) >= outbox.BATCH_EVENTS:
        batch = outbox.next_batch(conn, privacy, after=behind.high)
    else:
        return None
    return batch if batch else None


def dry_run_bodies(conn: sqlite3.Connection, config: Config, device: Device | None) -> Any:
    """Each body `sync` would send now, byte for byte, without sending or moving anything."""
    outbox.outbox_enable(conn)
    privacy = privacy_of(config, device)
    batch = outbox.next_batch(conn, privacy, peek=True)
    while batch.events or batch.retract:
        yield batch.body()
        if not batch.high:
            return
        batch = outbox.next_batch(conn, privacy, after=batch.high, peek=True)


def link_with_key(server: str, key: str, name: str | None) -> Device:
    info = machine()
    if name:
        info["name"] = name
    with Client(server) as client:
        answer = client.enroll(key, info)
        return _device_from(client.server, answer, info)


def link_interactively(
    server: str,
    name: str | None,
    *,
    show: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Device:
    """RFC 8628: get a code, let `show` tell the user where to enter it, poll at the server's
    interval (five seconds more after each slow_down) until approved, denied or expired."""
    info = machine()
    if name:
        info["name"] = name
    with Client(server) as client:
        grant = client.device_code(info)
        show(grant)
        interval = float(grant.get("interval", 5))
        deadline = clock() + float(grant.get("expires_in", 900))
        while clock() < deadline:
            sleep(interval)
            state, answer = client.device_token(grant["device_code"])
            if state == "ok":
                return _device_from(client.server, answer, info)
            if state == "slow_down":
                interval += 5
            elif state == "access_denied":
                raise SyncError("the request was denied on the site")
            elif state == "expired_token":
                break
        raise SyncError("the code expired before it was approved: run `clawtrace login` again")


def _device_from(server: str, answer: dict[str, Any], info: dict[str, str]) -> Device:
    org = answer.get("organization") or {}
    device = Device(
        device_id=str(answer["device_id"]),
        server=server,
        secret=str(answer["device_secret"]),
        name=str(answer.get("name") or info["name"]),
        organization=str(org.get("slug", "")),
    )
    device_save(device)
    return device


def totals_compare(local: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    """The keys on which this machine's store and the server's figures for it differ."""
    differ = []
    for key in (
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    ):
        if int(local.get(key, 0)) != int(remote.get(key, 0)):
            differ.append(f"{key}: here {local.get(key, 0):,}, server {remote.get(key, 0):,}")
    a, b = float(local.get("cost_usd", 0.0)), float(remote.get("cost_usd", 0.0))
    if abs(a - b) > max(1e-6, 1e-9 * abs(a)):
        differ.append(f"cost_usd: here {a:.6f}, server {b:.6f}")
    return differ

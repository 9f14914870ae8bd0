"""`clawtrace doctor`: what was found, what could not be read or priced, and what is at risk."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from clawtrace import reports, store
from clawtrace.config import Config
from clawtrace.paths import db_path, label
from clawtrace.sources import SOURCES


def doctor_report(
    conn: sqlite3.Connection,
    config: Config,
    roots: dict[str, list[Path]],
    database: Path | None = None,
) -> dict[str, Any]:
    database = database or db_path()
    files = conn.execute(
        "SELECT source, path, lines, malformed, turn_lines, missing_since, size, offset FROM files "
        "ORDER BY source, path"
    ).fetchall()
    per_source: dict[str, dict[str, Any]] = {}
    for name, rlist in roots.items():
        per_source[name] = {
            "roots": [{"path": label(str(r)), "exists": r.is_dir()} for r in rlist],
            "files": 0,
            "files_gone": 0,
            "lines": 0,
            "malformed": 0,
            "turns": 0,
        }
    for name, source in SOURCES.items():
        if name in per_source:
            # A listing of its own: a warm scan does not list again, and doctor must still
            # name a directory that nothing below could be read from.
            per_source[name]["unreadable"] = source.discover(roots[name]).unreadable
    malformed_files = []
    gone_files = []
    pending = []
    for source, stored, lines, malformed, _turn_lines, missing, size, offset in files:
        path = label(stored)  # (shown and written as JSON: not-UTF-8 bytes replaced)
        s = per_source.setdefault(
            source,
            {"roots": [], "files": 0, "files_gone": 0, "lines": 0, "malformed": 0, "turns": 0},
        )
        s["files"] += 1
        s["lines"] += lines
        s["malformed"] += malformed
        if malformed:
            malformed_files.append(
                {"source": source, "path": path, "malformed": malformed, "lines": lines}
            )
        if missing is not None:
            s["files_gone"] += 1
            gone_files.append(path)
        if size > offset and missing is None:
            pending.append({"path": path, "bytes": size - offset})
    for source, n in conn.execute(
        "SELECT c.source, SUM(r.turns) FROM rollup AS r JOIN contexts AS c ON c.id = r.context_id "
        "GROUP BY c.source HAVING SUM(r.turns) > 0"
    ):
        per_source.setdefault(
            source, {"roots": [], "files": 0, "files_gone": 0, "lines": 0, "malformed": 0}
        )
        per_source[source]["turns"] = n
    kept_from_gone = 0
    if gone_files:
        kept_from_gone = conn.execute(
            "SELECT COUNT(*) FROM turns WHERE file_id IN "
            "(SELECT id FROM files WHERE missing_since IS NOT NULL)"
        ).fetchone()[0]
    # What is each source's own: it says what to report of it (in the registry's order).
    facts: dict[str, Any] = {}
    for name, source in SOURCES.items():
        facts.update(source.doctor_facts(conn, roots.get(name, [])))
    unpriced = reports.unpriced_models(conn)
    for u in unpriced:
        u["override_hint"] = (
            f'[prices."{u["model"]}"]\nprovider = "{u["provider"]}"\nmodel = "{u["model"]}"\n'
            "input = 0.0  # USD per million tokens\noutput = 0.0"
        )
    from clawtrace.pricing import genai_prices_version, pricing_fingerprint

    last = store.meta_get(conn, "last_scan")
    size = database.stat().st_size if database.exists() else 0
    wal = Path(str(database) + "-wal")
    return {
        "store": {
            "path": str(database),
            "exists": database.exists(),
            "bytes": size + (wal.stat().st_size if wal.exists() else 0),
            "schema_version": store.schema_version(conn),
            "turns": conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0],
            "last_scan_ms": int(last) if last else None,
        },
        "config": {
            "path": str(config.path) if config.path else None,
            "cost_mode": config.cost_mode,
            "price_overrides": [o.name for o in config.price_overrides],
        },
        "prices": {
            "library": f"genai-prices {genai_prices_version()}",
            "fingerprint": pricing_fingerprint(config),
            "stored_fingerprint": store.meta_get(conn, "price_fingerprint"),
        },
        "sources": per_source,
        "malformed_files": malformed_files,
        "pending_partial_lines": pending,
        "files_gone": {
            "count": len(gone_files),
            "turns_kept": kept_from_gone,
            "paths": gone_files[:20],
        },
        **facts,
        "unpriced_models": unpriced,
        "environment": {
            k: os.environ[k]
            for k in ("CLAWTRACE_HOME", *(v for s in SOURCES.values() for v in s.env_vars))
            if k in os.environ
        },
    }

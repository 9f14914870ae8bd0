"""Config errors name line and key; the store migrates and keeps shared tables; doctor."""

from __future__ import annotations

import json
import sqlite3

import pytest
from clawtrace import store
from clawtrace.config import ConfigError, config_load
from clawtrace.doctor import doctor_report
from clawtrace.scan import source_roots

from .conftest import claude_assistant, oc_header, run_scan, write_lines


def _config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_invalid_toml_names_the_line(tmp_path):
    path = _config(tmp_path, '[general]\ncost_mode = "auto"\ntimezone = "Europe/Paris\n')
    with pytest.raises(ConfigError, match=r"line 3"):
        config_load(path)


def test_a_bad_value_names_the_line_and_key(tmp_path):
    path = _config(tmp_path, '[general]\ntimezone = "UTC"\n\ncost_mode = "cheapest"\n')
    with pytest.raises(ConfigError) as err:
        config_load(path)
    assert "line 4" in str(err.value) and "general.cost_mode" in str(err.value)


def test_a_bad_price_override_names_its_key(tmp_path):
    path = _config(tmp_path, '[prices.mine]\nmodel = "x"\ninput = "cheap"\noutput = 1\n')
    with pytest.raises(ConfigError) as err:
        config_load(path)
    assert "line 3" in str(err.value) and "prices.mine.input" in str(err.value)


def test_unknown_sections_are_kept_for_other_modules(tmp_path):
    path = _config(tmp_path, "[alerts]\ndaily_budget = 10\n[server]\nport = 19898\n")
    cfg = config_load(path)
    assert cfg.raw["alerts"] == {"daily_budget": 10}
    assert cfg.raw["server"] == {"port": 19898}


def test_missing_config_gives_defaults(tmp_path):
    cfg = config_load(tmp_path / "absent.toml")
    assert (cfg.cost_mode, cfg.price_overrides, cfg.timezone) == ("auto", [], None)


def test_store_is_wal_with_versioned_migrations_and_shared_tables(tmp_path):
    conn = store.connect(tmp_path / "db.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version(conn) == len(store.MIGRATIONS)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(alerts_fired)")}
    assert {
        "id",
        "rule",
        "window_key",
        "fired_at",
        "severity",
        "title",
        "message",
        "details_json",
        "channels_json",
    } <= cols
    conn.execute("INSERT INTO alerts_fired (rule, window_key, fired_at) VALUES ('r', 'w', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO alerts_fired (rule, window_key, fired_at) VALUES ('r', 'w', 2)")
    store.meta_set(conn, "k", "v")
    assert store.meta_get(conn, "k") == "v"


def test_appended_migrations_run_once_in_order(tmp_path):
    conn = store.connect(tmp_path / "db.sqlite")
    extra = [*store.MIGRATIONS, "CREATE TABLE later (x INTEGER);"]
    assert store.migrate(conn, extra) == len(extra)
    assert store.migrate(conn, extra) == len(extra)
    conn.execute("INSERT INTO later VALUES (1)")


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    conn = store.connect(tmp_path / "db.sqlite")
    conn.execute(f"PRAGMA user_version = {len(store.MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(store.StoreError, match="newer"):
        store.connect(tmp_path / "db.sqlite")


def test_doctor_reports_malformed_gone_files_cleanup_and_missing_transcripts(conn, tmp_path):
    claude_cfg = tmp_path / "claude"
    (claude_cfg).mkdir()
    (claude_cfg / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 99999}))
    f = write_lines(
        claude_cfg / "projects" / "-p" / "s.jsonl",
        [claude_assistant(msg_id="m1"), '{"type":"assistant",'],
    )
    sessions = tmp_path / "oc" / "agents" / "main" / "sessions"
    write_lines(sessions / "s.jsonl", [oc_header("s")])
    (sessions / "sessions.json").write_text(
        json.dumps({"agent:main:cron:x": {"sessionId": "gone"}})
    )
    run_scan(conn, claude_cfg, tmp_path / "oc")
    f.unlink()
    run_scan(conn, claude_cfg, tmp_path / "oc")
    from clawtrace.config import Config

    roots = source_roots(
        Config(), claude_dirs=[str(claude_cfg)], openclaw_dirs=[str(tmp_path / "oc")]
    )
    data = doctor_report(conn, Config(), roots)
    assert data["sources"]["claude-code"]["malformed"] == 1
    assert data["files_gone"]["count"] == 1 and data["files_gone"]["turns_kept"] == 1
    assert data["claude_cleanup"]["days"] == 99999 and not data["claude_cleanup"]["default"]
    assert data["openclaw_sessions_without_transcript"][0]["session_key"] == "agent:main:cron:x"
    assert data["store"]["turns"] == 1


def test_a_store_from_a_development_build_is_refused_with_advice(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, dedup_key TEXT UNIQUE)")
    old.execute(f"PRAGMA user_version = {len(store.MIGRATIONS)}")
    old.commit()
    old.close()
    with pytest.raises(store.StoreError, match="move it aside"):
        store.connect(path)

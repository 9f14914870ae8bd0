"""The scan's worker processes (clawtrace.workers): forked, fed over pipes, never waited on
forever."""

from __future__ import annotations

import os
import signal

import pytest

if not hasattr(os, "fork"):
    pytest.skip("workers are forked processes", allow_module_level=True)

from clawtrace.workers import ForkPool, SharedLock, WorkerDied

_state: dict[str, object] = {}


def _init() -> None:
    _state["pid"] = os.getpid()


def _serve(message):
    kind, value = message
    if kind == "echo":
        return (os.getpid(), value)
    if kind == "fail":
        raise ValueError(f"bad input: {value}")
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError(kind)


def _collect(pool, want):
    replies = []
    while len(replies) < want:
        replies += pool.poll(None)
    return replies


def test_every_message_gets_its_reply_from_the_worker_it_was_sent_to():
    pool = ForkPool(2, _init, _serve)
    try:
        pids = {w.pid for w in pool.workers}
        assert len(pids) == 2 and os.getpid() not in pids
        for i in range(6):
            pool.send(pool.workers[i % 2], ("echo", i))
        replies = _collect(pool, 6)
        for worker, (pid, _value) in replies:
            assert pid == worker.pid
        by_worker = {}
        for worker, (_pid, value) in replies:
            by_worker.setdefault(worker.pid, []).append(value)
        assert sorted(by_worker.values()) == [[0, 2, 4], [1, 3, 5]]  # in order, per worker
    finally:
        pool.close()
    assert pool.workers == []


def test_messages_bigger_than_a_pipe_go_both_ways_without_waiting_on_each_other():
    pool = ForkPool(1, _init, _serve)
    try:
        big = "x" * (3 << 20)  # a pipe holds 64 KiB: both sides must write in pieces
        for _ in range(3):
            pool.send(pool.workers[0], ("echo", big))
        assert [value for _w, (_pid, value) in _collect(pool, 3)] == [big] * 3
    finally:
        pool.close()


def test_an_error_in_a_worker_is_raised_in_the_scan_with_where_it_happened():
    pool = ForkPool(1, _init, _serve)
    try:
        pool.send(pool.workers[0], ("fail", "line 7"))
        with pytest.raises(ValueError, match="bad input: line 7") as raised:
            _collect(pool, 1)
        notes = "\n".join(raised.value.__notes__)
        assert f"scan worker pid {pool.workers[0].pid}" in notes
        assert "_serve" in notes
        # The worker goes on with the next message.
        pool.send(pool.workers[0], ("echo", 1))
        assert _collect(pool, 1)[0][1][1] == 1
    finally:
        pool.close()


def test_a_worker_that_could_not_start_says_why_in_its_first_reply():
    def init() -> None:
        raise OSError("the store cannot be opened")

    pool = ForkPool(1, init, _serve)
    try:
        pool.send(pool.workers[0], ("echo", 1))
        with pytest.raises(OSError, match="the store cannot be opened"):
            _collect(pool, 1)
    finally:
        pool.terminate()


def test_a_worker_that_dies_is_named_instead_of_waited_for():
    pool = ForkPool(2, _init, _serve)
    try:
        victim = pool.workers[1]
        pool.send(victim, ("die", None))
        with pytest.raises(WorkerDied, match=rf"pid {victim.pid}\) was killed by signal 9"):
            _collect(pool, 1)
    finally:
        pool.terminate()
    assert pool.workers == []


def test_terminate_stops_workers_that_are_still_busy():
    def slow(_message):
        signal.pause()

    pool = ForkPool(2, _init, slow)
    workers = list(pool.workers)
    for worker in workers:
        pool.send(worker, ("echo", 0))
    pool.terminate()
    for worker in workers:
        assert os.WIFSIGNALED(worker.status)
        with pytest.raises(ProcessLookupError):
            os.kill(worker.pid, 0)


def test_the_shared_lock_is_held_against_forked_processes_and_leaves_no_file(tmp_path):
    import fcntl

    lock = SharedLock(str(tmp_path / "store.db"))
    try:
        assert list(tmp_path.iterdir()) == []

        def probe() -> int:
            """In a forked child: 0 if it could take the lock at once, 1 if not."""
            pid = os.fork()
            if pid == 0:
                try:
                    fcntl.lockf(lock.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    code = 0
                except OSError:
                    code = 1
                os._exit(code)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

        with lock:
            assert probe() == 1
        assert probe() == 0
    finally:
        lock.close()


def _big_tree(root):
    from tests.conftest import claude_assistant, write_lines

    for s in range(6):
        write_lines(
            root / "projects" / f"-p{s}" / f"sess-{s}.jsonl",
            [claude_assistant(msg_id=f"m{s}-{i}", req_id=f"r{s}-{i}") for i in range(200)],
        )


def test_serve_scans_in_its_own_process_and_a_plain_scan_forks(tmp_path, monkeypatch):
    """`serve` has threads (the HTTP server's, the stall watch) when it scans: a child forked
    from it could inherit a lock one of them holds and never start. Its scans run in one
    process; `clawtrace scan`, single-threaded, still forks its workers."""
    from clawtrace import reports, store, watch
    from clawtrace import scan as scan_module

    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    _big_tree(tmp_path / "claude")
    forks = []
    real_fork = os.fork

    def counted_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counted_fork)
    live = watch.LiveScanner(
        tmp_path / "live.db",
        watch.Config(),
        claude_dirs=[str(tmp_path / "claude")],
        openclaw_dirs=[str(tmp_path / "none")],
        use_events=False,
    )
    live.start(background=True)
    try:
        assert live.wait_for_scans(1, timeout=60)
    finally:
        live.stop()
    assert live.last_error is None and forks == []
    conn = store.connect(tmp_path / "live.db")
    assert reports.totals(conn).turns == 1200
    conn.close()

    plain = store.connect(tmp_path / "plain.db")
    scan_module.scan(
        plain,
        watch.Config(),
        claude_dirs=[str(tmp_path / "claude")],
        openclaw_dirs=[str(tmp_path / "none")],
        workers=2,
    )
    assert forks and reports.totals(plain).turns == 1200

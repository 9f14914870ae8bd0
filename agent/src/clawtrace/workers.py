"""Worker processes forked from the scan (`scan.pool.Pool`), without `multiprocessing`.

Importing `multiprocessing` and starting its pool cost a first scan 20-25 ms before the first
file was read, and its two helper threads handed results over only when the listing thread let
go of the interpreter (every 5 ms): the workers waited for work they had asked for. Here the
main process talks to each worker over two pipes of its own, from one thread, in a poll loop it
runs between the files it lists. Messages are pickles behind their length.

A worker that dies (killed, out of memory, a crash in C) is noticed at once: its pipe closes
and the scan stops with an error that names it, instead of waiting for it forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import struct
from collections.abc import Callable
from typing import Any

_LENGTH = struct.Struct("<Q")
_READ_BYTES = 1 << 20


class WorkerDied(RuntimeError):
    """A worker process ended while it still had work."""


class SharedLock:
    """A lock for this process and the processes it forks afterwards: a POSIX record lock on a
    file without a name (made beside `near` and unlinked at once). The kernel wakes the next
    waiter as soon as it is released (SQLite's busy handler sleeps in steps of up to 20 ms),
    and releases it when its holder dies."""

    def __init__(self, near: str) -> None:
        path = f"{near}.write-lock-{os.getpid()}"
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.unlink(path)

    def __enter__(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


class Worker:
    """The main process's side of one worker."""

    __slots__ = ("pid", "received", "results", "status", "tasks", "unsent")

    def __init__(self, pid: int, tasks: int, results: int) -> None:
        self.pid = pid
        self.tasks = tasks  # write end, non-blocking
        self.results = results  # read end, non-blocking
        self.unsent = bytearray()
        self.received = bytearray()
        self.status: int | None = None


class ForkPool:
    """`n` processes forked from this one; each runs `init()` once, then `serve(message)` for
    every message sent to it, and sends back what it returned (or raised)."""

    def __init__(self, n: int, init: Callable[[], None], serve: Callable[[Any], Any]) -> None:
        self.workers: list[Worker] = []
        self._poller = select.poll()
        self._by_fd: dict[int, Worker] = {}
        try:
            for _ in range(n):
                worker = self._fork(init, serve)
                self.workers.append(worker)
                self._by_fd[worker.tasks] = self._by_fd[worker.results] = worker
                self._poller.register(worker.results, select.POLLIN)
        except BaseException:
            self.terminate()
            raise

    def _fork(self, init: Callable[[], None], serve: Callable[[Any], Any]) -> Worker:
        tasks_r, tasks_w = os.pipe()
        results_r, results_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: it never returns from here
            code = 1
            try:
                # Ctrl-C reaches the whole process group: the main process stops the workers.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                for fd in (tasks_w, results_r):
                    os.close(fd)
                for other in self.workers:  # (else a worker would never see its pipe close)
                    os.close(other.tasks)
                    os.close(other.results)
                _work(tasks_r, results_w, init, serve)
                code = 0
            finally:
                os._exit(code)  # no atexit handlers, no flush of buffers copied from the parent
        os.close(tasks_r)
        os.close(results_w)
        os.set_blocking(tasks_w, False)
        os.set_blocking(results_r, False)
        return Worker(pid, tasks_w, results_r)

    def send(self, worker: Worker, message: Any) -> None:
        """Queue `message` for `worker`; what its pipe does not take now goes out from `poll`."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        worker.unsent += _LENGTH.pack(len(data))
        worker.unsent += data
        self._write(worker)

    def _write(self, worker: Worker) -> None:
        try:
            while worker.unsent:
                written = os.write(worker.tasks, worker.unsent)
                del worker.unsent[:written]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            raise self._died(worker) from None
        events = select.POLLOUT if worker.unsent else 0
        if events:
            self._poller.register(worker.tasks, events)
        else:
            with contextlib.suppress(KeyError):
                self._poller.unregister(worker.tasks)

    def poll(self, timeout_ms: int | None) -> list[tuple[Worker, Any]]:
        """The replies that have arrived, waiting up to `timeout_ms` for one (None: until one
        does). A worker's exception is raised here."""
        replies: list[tuple[Worker, Any]] = []
        for fd, _events in self._poller.poll(timeout_ms):
            worker = self._by_fd[fd]
            if fd == worker.tasks:
                self._write(worker)
                continue
            try:
                chunk = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                continue
            if not chunk:
                raise self._died(worker)
            worker.received += chunk
            while len(worker.received) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(worker.received)
                end = _LENGTH.size + size
                if len(worker.received) < end:
                    break
                # (A pipe to a process this one forked: nothing else can write to it.)
                ok, value = pickle.loads(memoryview(worker.received)[_LENGTH.size : end])  # noqa: S301
                del worker.received[:end]
                if not ok:
                    raise value
                replies.append((worker, value))
        return replies

    def _died(self, worker: Worker) -> WorkerDied:
        _pid, status = os.waitpid(worker.pid, 0)
        worker.status = status
        if os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.waitstatus_to_exitcode(status)}"
        return WorkerDied(f"a scan worker (pid {worker.pid}) {how} before it finished its files")

    def close(self) -> None:
        """No more work: each worker ends when it has read all it was sent."""
        for worker in self.workers:
            if worker.unsent:
                os.set_blocking(worker.tasks, True)
                _write_all(worker.tasks, worker.unsent)
            os.close(worker.tasks)
        for worker in self.workers:
            if worker.status is None:
                worker.status = os.waitpid(worker.pid, 0)[1]
            os.close(worker.results)
        self.workers = []

    def terminate(self) -> None:
        """Stop every worker now (an error, Ctrl-C): what they committed stays committed."""
        for worker in self.workers:
            if worker.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            for fd in (worker.tasks, worker.results):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if worker.status is None:
                worker.status = os.waitpid(worker.pid, 0)[1]
        self.workers = []


def _work(tasks: int, results: int, init: Callable[[], None], serve: Callable[[Any], Any]) -> None:
    """A worker's loop: a reply for each message until the main process closes the pipe."""
    failed: BaseException | None = None
    try:
        init()
    except Exception as exc:  # said in reply to the first message, where the scan can raise it
        failed = exc
    while (message := _read_message(tasks)) is not None:
        if failed is not None:
            reply: tuple[bool, Any] = (False, failed)
        else:
            try:
                reply = (True, serve(pickle.loads(message)))  # noqa: S301  (from the parent)
            except Exception as exc:
                reply = (False, exc)
        if not reply[0]:
            reply = (False, _with_its_traceback(reply[1]))
        try:
            data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that cannot be pickled: its text
            data = pickle.dumps((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))
        _write_all(results, _LENGTH.pack(len(data)) + data)


def _with_its_traceback(exc: BaseException) -> BaseException:
    """The exception, with where it happened in the worker as a note (its traceback is not
    pickled)."""
    import traceback

    where = "".join(traceback.format_exception(exc)).rstrip()
    if not any(where in note for note in getattr(exc, "__notes__", ())):
        exc.add_note(f"In scan worker pid {os.getpid()}:\n{where}")
    return exc


def _read_message(fd: int) -> bytes | None:
    head = _read_exactly(fd, _LENGTH.size)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    body = _read_exactly(fd, size)
    if body is None:
        raise EOFError("the scan's pipe closed in the middle of a message")
    return body


def _read_exactly(fd: int, n: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.read(fd, min(n - got, _READ_BYTES))
        if not chunk:
            if got:
                raise EOFError("the scan's pipe closed in the middle of a message")
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

"""Calls released at the same instant, each on its own thread and so its own database
connection: how the PostgreSQL race tests make two writers meet."""

from __future__ import annotations

import threading

from django.db import connections


def run_concurrently(*calls):
    """Run each call in its own thread, all released at once; their results, in order. Any
    error of any call fails the test."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results

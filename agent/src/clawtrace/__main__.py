"""The `clawtrace` command (`python -m clawtrace`): a `scan` whose arguments `cli_scan` knows
runs without importing the CLI library; everything else goes to `clawtrace.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    try:
        _json_library_load()
        if args[:1] == ["scan"]:
            from clawtrace import cli_scan

            options = cli_scan.parse(args[1:])
            if options is not None:
                sys.exit(cli_scan.run(**options))
        from clawtrace.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        # Ctrl-C in a scan, or while a command still loads (typer's own once it runs).
        print("\nAborted!", file=sys.stderr)  # (as typer says)
        sys.exit(1)
    except Exception as exc:
        # A full disk, a damaged store, a home that cannot be written: one line, exit 2.
        from clawtrace.failures import explain

        message = explain(exc)
        if message is None:
            raise
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(2)


def _json_library_load() -> None:
    """Import orjson (every command needs it) with Ctrl-C held back until it is loaded: a
    SIGINT while its extension initialises fails one of the imports it makes then, which it
    does not expect, and the interpreter dies of a segmentation fault (ijl/orjson#310). The
    Ctrl-C is delivered as soon as it is loaded, and ends the command as any other does."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):  # (Windows)
        import orjson

        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        import orjson  # noqa: F401
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # (a Ctrl-C held back raises here)


if __name__ == "__main__":
    main()

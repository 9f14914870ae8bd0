"""The `clawtrace` command (`python -m clawtrace`): a `scan` whose arguments `cli_scan` knows
runs without importing the CLI library; everything else goes to `clawtrace.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    try:
        if args[:1] == ["scan"]:
            from clawtrace import cli_scan

            options = cli_scan.parse(args[1:])
            if options is not None:
                try:
                    code = cli_scan.run(**options)
                except KeyboardInterrupt:
                    print("\nAborted!", file=sys.stderr)  # (as typer says for the others)
                    code = 1
                sys.exit(code)
        from clawtrace.cli import main as cli_main

        cli_main()
    except Exception as exc:
        # A full disk, a damaged store, a home that cannot be written: one line, exit 2.
        from clawtrace.failures import explain

        message = explain(exc)
        if message is None:
            raise
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

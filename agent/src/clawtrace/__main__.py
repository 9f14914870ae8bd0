"""The `clawtrace` command (`python -m clawtrace`): a `scan` whose arguments `cli_scan` knows
runs without importing the CLI library; everything else goes to `clawtrace.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["scan"]:
        from clawtrace import cli_scan

        options = cli_scan.parse(args[1:])
        if options is not None:
            try:
                code = cli_scan.run(**options)
            except KeyboardInterrupt:
                print("\nAborted!", file=sys.stderr)  # (what typer says for every other command)
                code = 1
            sys.exit(code)
    from clawtrace.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()

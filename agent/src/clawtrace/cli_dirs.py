"""The sources' directory options (`--claude-dir`...), as each source declares them
(Source.dir_option, dir_help), for any command that reads logs."""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any

import typer

from clawtrace.sources import SOURCES, SourceDirs


def _param(source: Any) -> str:
    """The command's parameter of a source's option (`--claude-dir`: `claude_dir`)."""
    return source.dir_option.lstrip("-").replace("-", "_")


def dir_params() -> list[tuple[str, Any, Any]]:
    """(parameter, typer annotation, default) of each source's directory option."""
    return [
        (
            _param(s),
            Annotated[
                list[str] | None,
                typer.Option(s.dir_option, help=s.dir_help, show_default=False),
            ],
            None,
        )
        for s in SOURCES.values()
    ]


def dirs_pop(options: dict[str, Any]) -> SourceDirs:
    """Each source's directory option out of a command's `options`, by Source.dirs_key."""
    return {s.dirs_key: options.pop(_param(s)) for s in SOURCES.values()}


def with_source_dirs(fn: Any) -> Any:
    """Command `fn` with one directory option per source where it declares a `dirs`
    parameter (typer reads the signature built here); `fn` gets them as `dirs`, SourceDirs."""
    params = []
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        if p.name == "dirs":
            params += [
                inspect.Parameter(n, p.kind, annotation=a, default=d) for n, a, d in dir_params()
            ]
        else:
            params.append(p)

    @functools.wraps(fn)
    def command(**options: Any) -> Any:
        return fn(dirs=dirs_pop(options), **options)

    command.__signature__ = inspect.Signature(params, return_annotation=None)
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # typer must read the signature above, not fn's
    return command

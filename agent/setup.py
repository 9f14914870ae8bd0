"""Builds the optional C extensions; everything else is in pyproject.toml.

- `clawtrace._native`: the log parsers' hot loop (yyjson, BLAKE2b; nothing else needed);
- `clawtrace._ingest`: a big scan's writer, which links the system SQLite (sqlite3.h and
  libsqlite3, from libsqlite3-dev on Debian or the SDK on macOS).

Both are optional: where one cannot be built the install goes on without it and ClawTrace uses
its pure-Python code for that part (the same results, slower on big first scans).
"""

import sys

from setuptools import Extension, setup

extra = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fvisibility=hidden"]
link = [] if sys.platform == "win32" else ["-pthread"]  # the warm check stats on two threads
parse_sources = ["native/yyjson.c", "native/blake2b.c"]
# Headers both extensions include (a change to one rebuilds them; MANIFEST.in ships them).
shared = ["native/blake2b.h", "native/parse.h", "native/rules.h", "native/rules_py.h"]
shared += ["native/vec.h", "native/yyjson.h"]
# clawtrace._ingest: ingest.c and the headers of its one translation unit, then the parts
# compiled on their own (ingest.c says which is which).
ingest_parts = ["ingest.h", "ingest_bulk.h", "ingest_dims.h", "ingest_parts.h", "ingest_read.h"]
ingest_parts += ["ingest_rollups.h", "ingest_util.h", "ingest_writer.h"]
ingest_sources = ["ingest.c", "ingest_derive.c", "ingest_group_sum.c", "ingest_warm.c"]

setup(
    ext_modules=[
        Extension(
            "clawtrace._native",
            sources=["native/scanmodule.c", *parse_sources],
            depends=shared,
            include_dirs=["native"],
            extra_compile_args=extra,
            optional=True,
        ),
        Extension(
            "clawtrace._ingest",
            sources=[*(f"native/{f}" for f in ingest_sources), *parse_sources],
            depends=[*shared, *(f"native/{f}" for f in ingest_parts)],
            include_dirs=["native"],
            libraries=["sqlite3"],
            extra_compile_args=extra,
            extra_link_args=link,
            optional=True,
        ),
    ]
)

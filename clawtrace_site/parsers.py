"""Request parsers for the APIs (`REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]`).

A module of its own: DRF imports its parser setting while `rest_framework.views` is loading, so
this cannot live in `clawtrace_site/api.py`, which imports the views.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser turns only `ValueError` into a 400; a deeply nested body (`[[[...` a
    few thousand levels down) makes the decoder raise `RecursionError`, which became a 500.
    Found by the hostile-input walk (`clawtrace_site/tests/test_hostile_input.py`)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from error

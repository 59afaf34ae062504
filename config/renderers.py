"""Non-JSON answers (CSV exports, images) that keep the API's conventions.

* :class:`FileRenderer`: a renderer whose error answers stay JSON in the API's one
  error shape — a client that asked for ``?format=csv`` or ``?format=png`` and sent a
  bad filter gets ``{"error": {...}}`` with ``application/json``, not a broken file.
* :func:`csv_response`: streams rows as CSV (``StreamingHttpResponse``), so an export
  of every matching row never holds them all in memory, with a download file name.
* :func:`csv_cell`: makes one value safe for spreadsheets: a text cell that starts
  with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'``
  so Excel/LibreOffice show it as text instead of evaluating it as a formula (CSV or
  formula injection, OWASP). Numbers are written as numbers (a negative delay stays
  ``-3``): only text can carry a formula from a user.

Usage in a view: offer :class:`CsvRenderer` for the action (``get_renderers``), then
branch on ``request.accepted_renderer.format == "csv"`` and return
``csv_response(filename=..., header=[...], rows=iterable_of_sequences)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer, JSONRenderer

FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
# Rows are sent in chunks of about this many characters (one write per row would make
# tens of thousands of tiny chunks).
CHUNK_CHARS = 64 * 1024


def csv_cell(value: Any) -> Any:
    """One value as a CSV cell: None -> empty, booleans -> true/false (as in the JSON),
    numbers as they are, text guarded against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header and the rows as CSV text, in chunks of about CHUNK_CHARS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def csv_response(
    *, filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    """A streamed CSV download. ``rows`` is consumed lazily, while the response is
    sent: pass a queryset ``.iterator()`` (one query, rows fetched in chunks)."""
    response = StreamingHttpResponse(
        (chunk.encode("utf-8") for chunk in csv_chunks(header, rows)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class FileRenderer(BaseRenderer):
    """Base for renderers of files: error answers are rendered as JSON instead."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None and (response.exception or response.status_code >= 400):
            response["Content-Type"] = "application/json"
            return JSONRenderer().render(data, "application/json", renderer_context)
        return self.render_file(data, renderer_context or {})

    def render_file(self, data: Any, renderer_context: Mapping[str, Any]) -> bytes:
        raise NotImplementedError


class CsvRenderer(FileRenderer):
    """``text/csv`` (``?format=csv``). A view that streams answers with
    :func:`csv_response` and never reaches this; for a plain ``Response`` holding a
    list of flat dicts (or a page: ``{"results": [...]}``), it writes one row per dict
    with the first dict's keys as the header."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render_file(self, data: Any, renderer_context: Mapping[str, Any]) -> bytes:
        if isinstance(data, Mapping):
            data = data.get("results", [data])
        rows = list(data or [])
        header = list(rows[0]) if rows else []
        text = "".join(csv_chunks(header, ([row.get(h) for h in header] for row in rows)))
        return text.encode("utf-8")

"""The API's one request parser: UTF-8 JSON, bounded in size and depth, no control
characters in any text. Installed as DRF's only parser (``DEFAULT_PARSER_CLASSES``), so
every endpoint, including those added later, parses its body here.

What it refuses, before any view or serializer sees the data:

* any ``Content-Type`` but ``application/json``, and any ``charset`` but UTF-8: 415.
  Django would otherwise decode the body with whatever codec the client names
  (``charset=bz2`` decompressed 294 bytes into 300 MB; ``charset=rot13`` was a 500);
* a body longer than ``REZCOURSE_API_MAX_BODY_BYTES``: 413, checked on the declared
  length before reading and on the bytes actually read (never more than the limit + 1);
* nesting deeper than ``REZCOURSE_API_MAX_JSON_DEPTH``: 400 (``'[' * 1000`` was a
  RecursionError, a 500);
* control characters (and lone surrogates, which no database can store) in any string,
  object key or value, at any depth: 400 naming the field. Tab, line feed and carriage
  return stay allowed: notes have lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.mediatypes import _MediaType

# C0 controls but tab, LF and CR; DEL; C1 controls; UTF-16 surrogates (only reachable
# through a JSON "\ud800" escape: they cannot be encoded for the database).
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_MESSAGE = "must not contain control characters (such as NUL)."
UTF8_NAMES = frozenset({"utf-8", "utf8"})


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


def control_character_in(text: str) -> bool:
    return CONTROL_CHARACTERS.search(text) is not None


def refuse_control_characters(value: str) -> None:
    """A Django validator with the same rule, for the web app's forms."""
    if isinstance(value, str) and control_character_in(value):
        raise DjangoValidationError(CONTROL_MESSAGE, code="control_characters")


def printable_name(name: str) -> str:
    """A key as it can be named in an error (its control characters escaped)."""
    return CONTROL_CHARACTERS.sub(lambda m: repr(m.group())[1:-1], name)


def _walk(data: Any, max_depth: int) -> Iterator[str]:
    """Paths (``"note"``, ``"em_sites.1"``) of the strings in ``data`` that hold control
    characters; ParseError once the nesting passes ``max_depth``. Iterative, so the
    walk itself cannot overflow the stack."""
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, Mapping | list):
            if depth >= max_depth:
                raise ParseError(f"JSON nested more than {max_depth} levels deep.")
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, item in items:
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and control_character_in(key):
                    yield printable_name(child)
                    continue
                stack.append((child, item, depth + 1))
        elif isinstance(value, str) and control_character_in(value):
            yield path or "non_field_errors"


def check_text(data: Any) -> None:
    """400 naming every field whose text holds a control character (and 400 for data
    nested past the limit)."""
    bad = sorted(set(_walk(data, settings.REZCOURSE_API_MAX_JSON_DEPTH)))
    if bad:
        raise DRFValidationError({name: [CONTROL_MESSAGE] for name in bad})


def read_bounded(stream: IO[bytes], declared: str | None, limit: int) -> bytes:
    """The body, refusing one past ``limit`` bytes without reading more than that."""
    try:
        declared_length = int(declared or 0)
    except ValueError:
        declared_length = 0
    message = f"The request body is larger than {limit} bytes."
    if declared_length > limit:
        raise RequestTooLarge(message)
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise RequestTooLarge(message)
    return body


class JSONParser(BaseParser):
    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        charset = _MediaType(media_type or self.media_type).params.get("charset")
        if charset is not None and charset.strip('"').lower() not in UTF8_NAMES:
            # Never decode with a codec the client names (bz2, zlib, rot13 ...).
            raise UnsupportedMediaType(
                media_type, detail="Only UTF-8 JSON is accepted (charset=utf-8 or none)."
            )
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        body = read_bounded(stream, declared, settings.REZCOURSE_API_MAX_BODY_BYTES)
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
        except UnicodeDecodeError as exc:
            raise ParseError("The request body is not valid UTF-8.") from exc
        except RecursionError as exc:
            raise ParseError(
                f"JSON nested more than {settings.REZCOURSE_API_MAX_JSON_DEPTH} levels deep."
            ) from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        check_text(data)
        return data


def _refuse_constant(name: str) -> None:
    # NaN and Infinity are not JSON (DRF's STRICT_JSON refuses them the same way).
    raise ValueError(f"{name} is not a JSON number")

"""Small database functions and helpers Django lacks, written for both backends we run
on."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models import DateField, Field, Func, IntegerField, Model
from django.db.models.fields.related import ForeignObject
from django.db.models.lookups import In


class AddDays(Func):
    """``date + n days`` as a date, where n may itself be an expression.

    PostgreSQL adds an integer to a date natively; SQLite's date() takes a modifier
    string. Django's own ``F(date) + timedelta`` goes through interval arithmetic that
    SQLite renders as a datetime string, which then compares wrongly with dates."""

    output_field = DateField()
    arity = 2

    def _parts(self, compiler: Any, connection: Any) -> tuple[str, str, list[Any]]:
        day_sql, day_params = compiler.compile(self.source_expressions[0])
        n_sql, n_params = compiler.compile(self.source_expressions[1])
        return day_sql, n_sql, [*day_params, *n_params]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        day_sql, n_sql, params = self._parts(compiler, connection)
        return f"(({day_sql})::date + ({n_sql})::integer)", params

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        day_sql, n_sql, params = self._parts(compiler, connection)
        # '5 days' and '-5 days' are both valid SQLite date modifiers.
        return f"date({day_sql}, ({n_sql}) || ' days')", params

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # other vendors
        raise NotImplementedError(f"AddDays is not written for {connection.vendor}")


class DaysBetween(Func):
    """``end - start`` in whole days (an integer) for two date expressions."""

    arity = 2
    output_field = IntegerField()
    # PostgreSQL: date - date is an integer number of days.
    template = "(%(expressions)s)"
    arg_joiner = " - "

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="CAST(ROUND(julianday(%(expressions)s)) AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )


class InArray(In):
    """``field__in_array=ids``: ``field = ANY(%s)`` with the ids as one array parameter
    on PostgreSQL, so a set of tens of thousands of ids is one parameter, not one each
    (a statement takes at most 65,535); an ordinary IN list elsewhere."""

    lookup_name = "in_array"

    def as_postgresql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [v for v in self.rhs if v is not None]
        return f"{lhs} = ANY(%s)", [*lhs_params, values]

    def get_prep_lookup(self) -> Any:
        self.rhs = list(self.rhs)
        return super().get_prep_lookup()


# On every field, foreign keys included (they only look up their own class's lookups).
Field.register_lookup(InArray)
ForeignObject.register_lookup(InArray)


def insert_rows(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (tuples of values for the field ``columns``; every other NOT NULL
    field gets its default, nullable ones stay NULL) without building model instances,
    and return the ``returning`` fields of each row, in order (the primary key
    included).

    PostgreSQL: the primary keys are drawn from the table's sequence in one query and
    the rows go in with one COPY, the fastest way PostgreSQL takes rows (about half
    the time of an INSERT of the same rows as arrays, for 50,000 alerts). Elsewhere:
    bulk_create, in batches the parameter limit allows."""
    if not rows:
        return []
    fields = [model._meta.get_field(name) for name in columns]
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create(
            [model(**dict(zip([f.attname for f in fields], row, strict=True))) for row in rows]
        )
        attnames = [model._meta.get_field(name).attname for name in returning]
        return [tuple(getattr(o, name) for name in attnames) for o in objs]
    pk = model._meta.pk
    others = [
        f
        for f in model._meta.concrete_fields
        if f not in fields and not f.primary_key and not f.null
    ]
    defaults = tuple(f.get_default() for f in others)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = [f.column for f in fields + others]
    with connection.cursor() as cursor:
        ids: list[int] = []
        if returning:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [model._meta.db_table, pk.column, len(rows)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            names.insert(0, pk.column)
        sql = f"COPY {table} ({', '.join(map(quote, names))}) FROM STDIN"
        started = time.monotonic()
        with cursor.cursor.copy(sql) as copy:
            if ids:
                for pk_value, row in zip(ids, rows, strict=True):
                    copy.write_row((pk_value, *row, *defaults))
            else:
                for row in rows:
                    copy.write_row((*row, *defaults))
        if connection.queries_logged:
            # COPY does not go through execute(): logged by hand, so that query counts
            # (and django-debug-toolbar) see it.
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    if not returning:
        return []
    position = {field.name: i for i, field in enumerate(fields)}
    out = []
    for pk_value, row in zip(ids, rows, strict=True):
        out.append(
            tuple(
                pk_value
                if name in ("pk", pk.name)
                else row[position[model._meta.get_field(name).name]]
                for name in returning
            )
        )
    return out

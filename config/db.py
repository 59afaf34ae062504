"""Small database functions and helpers Django lacks, written for both backends we run
on."""

from __future__ import annotations

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
    field gets its default) as one statement, without building model instances, and return
    the ``returning`` columns of each inserted row in order.

    PostgreSQL takes one array parameter per column (INSERT ... SELECT FROM UNNEST);
    other databases go through bulk_create, in batches their parameter limit allows."""
    if not rows:
        return []
    fields = [model._meta.get_field(name) for name in columns]
    # The other NOT NULL columns get their field's default ("" for a blank text field),
    # as a model instance would; nullable ones are left NULL.
    others = [
        f
        for f in model._meta.concrete_fields
        if f not in fields and not f.primary_key and not f.null
    ]
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create(
            [model(**dict(zip([f.attname for f in fields], row, strict=True))) for row in rows]
        )
        attnames = [model._meta.get_field(name).attname for name in returning]
        return [tuple(getattr(o, name) for name in attnames) for o in objs]
    quote = connection.ops.quote_name
    names = [f.column for f in fields + others]
    arrays = [list(column) for column in zip(*rows, strict=True)]
    arrays += [[f.get_default()] * len(rows) for f in others]
    types = [(f.target_field if f.is_relation else f).db_type(connection) for f in fields + others]
    unnest = ", ".join(f"%s::{t.split('(')[0]}[]" for t in types)
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, names))}) "
        f"SELECT * FROM UNNEST({unnest})"
    )
    if returning:
        columns_out = [model._meta.get_field(name).column for name in returning]
        sql += f" RETURNING {', '.join(map(quote, columns_out))}"
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        return [tuple(row) for row in cursor.fetchall()] if returning else []

"""Small database functions Django lacks, written for both backends we run on."""

from __future__ import annotations

from typing import Any

from django.db.models import DateField, Func


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

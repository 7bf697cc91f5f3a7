"""SQL parameters as a model field prepares them (`get_db_prep_save`), with a
short cut for the plain values: the recorder prepares about twenty values
a job, and Django's path through each field's methods was the largest part
of its CPU per job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

Prepare = Callable[[Any], Any]

#: Field classes (exactly these, not subclasses) whose prepared value is the
#: value itself when it is None or of exactly this Python type.
_AS_IS: dict[type[models.Field[Any, Any]], type] = {
    models.CharField: str,
    models.TextField: str,
    models.FloatField: float,
}
#: Integer fields: an int goes through the backend's adapter (psycopg 3's
#: typed integers) as the field sends it.
_INTEGERS = (
    models.IntegerField,
    models.SmallIntegerField,
    models.BigIntegerField,
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.PositiveBigIntegerField,
)


def preparer(field: Any, connection: BaseDatabaseWrapper) -> Prepare:
    """A function that prepares one value of `field` for `connection`, as
    `field.get_db_prep_save(value, connection)` does; any value off the
    short cut takes that path."""

    def slow(value: Any) -> Any:
        return field.get_db_prep_save(value, connection)

    # A foreign key's value is its target's (ForeignKey.get_db_prep_save).
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    kind = type(target)
    if kind is models.DateTimeField:
        adapt = connection.ops.adapt_datetimefield_value

        def moment(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is datetime and value.utcoffset() is not None:
                return adapt(value)
            return slow(value)  # naive: Django warns and makes it aware

        return moment
    if kind in _INTEGERS:
        integer = connection.ops.adapt_integerfield_value
        internal = target.get_internal_type()

        def whole(value: Any) -> Any:
            if value is None:
                return None
            return integer(value, internal) if type(value) is int else slow(value)

        return whole
    plain = _AS_IS.get(kind)
    if plain is None:
        return slow

    def as_is(value: Any) -> Any:
        return value if value is None or type(value) is plain else slow(value)

    return as_is


def columns(
    fields: list[Any], connection: BaseDatabaseWrapper
) -> list[tuple[str, Prepare]]:
    """Each field's attribute name and preparer, in order: a row's parameters
    are `[prepare(getattr(row, name)) for name, prepare in columns]`."""
    return [(f.attname, preparer(f, connection)) for f in fields]

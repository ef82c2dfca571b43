"""Bulk writes for hot paths, as one `executemany` each.

Django's `bulk_update` builds a CASE expression per field and row (seconds for a few thousand rows) and
`bulk_create` spends most of its time compiling SQL. These helpers use the models' own field metadata
(column names, `pre_save`, `get_db_prep_save`), so values are converted exactly as the ORM would, and
one prepared statement is executed for every row. They run inside the caller's transaction and send no
model signals.
"""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    by_name = {f.name: f for f in model._meta.concrete_fields}
    return [by_name[n] for n in names]


# Fields whose `get_db_prep_save` gives back a value of the right plain type unchanged (text as text, a
# whole number as itself): for those, passing such a value straight through is what the ORM would send.
_PASS_THROUGH = {
    "CharField": (str,),
    "TextField": (str,),
    "SlugField": (str,),
    "BooleanField": (bool,),
    "IntegerField": (int,),
    "SmallIntegerField": (int,),
    "BigIntegerField": (int,),
    "PositiveIntegerField": (int,),
    "PositiveSmallIntegerField": (int,),
    "PositiveBigIntegerField": (int,),
    "FloatField": (float, int),
}


def _converter(field: models.Field, connection: Any) -> Callable[[Any], Any]:
    convert = partial(field.get_db_prep_save, connection=connection)
    kind = field.get_internal_type()
    if kind == "ForeignKey":
        kind = field.target_field.get_internal_type()  # type: ignore[attr-defined]
    if kind == "JSONField":  # most rows hold the same empty {} or []: convert those once
        empties: dict[type, Any] = {}

        def json_value(value: Any) -> Any:
            if type(value) in (dict, list) and not value:
                if type(value) not in empties:
                    empties[type(value)] = convert(value)
                return empties[type(value)]
            return convert(value)

        return json_value
    plain = _PASS_THROUGH.get(kind)
    if plain is None:
        return convert
    return lambda value: value if value is None or type(value) in plain else convert(value)


def bulk_insert_values(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence]) -> None:
    """INSERT rows given as values in the order of `names`, without building model instances (for the
    hottest paths). Fields not named take the database's defaults, so name every field without one."""
    if not rows:
        return
    fields = _fields(model, names)
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the thread-local proxy
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608 - quoted names from the model, values bound # nosec B608
        quote(model._meta.db_table),
        ", ".join(quote(f.column or f.attname) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    converters = [_converter(f, connection) for f in fields]
    params = [[convert(value) for convert, value in zip(converters, row, strict=True)] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def bulk_update(objs: Sequence[models.Model], names: Sequence[str]) -> None:
    """UPDATE the named fields of every object, by primary key."""
    if not objs:
        return
    model = type(objs[0])
    fields = _fields(model, names)
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    pk = model._meta.pk
    sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608 - quoted names from the model, values bound # nosec B608
        quote(model._meta.db_table),
        ", ".join(f"{quote(f.column or f.attname)} = %s" for f in fields),
        quote(pk.column or pk.attname),
    )
    params = [
        [
            *(f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields),
            pk.get_db_prep_save(obj.pk, connection),
        ]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)

"""Bulk writes for hot paths, as one `executemany` each.

Django's `bulk_update` builds a CASE expression per field and row (seconds for a few thousand rows) and
`bulk_create` spends most of its time compiling SQL. These helpers use the models' own field metadata
(column names, `pre_save`, `get_db_prep_save`), so values are converted exactly as the ORM would, and
one prepared statement is executed for every row. They run inside the caller's transaction and send no
model signals.
"""

from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connections, models


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    by_name = {f.name: f for f in model._meta.concrete_fields}
    return [by_name[n] for n in names]


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
    params = [
        [f.get_db_prep_save(value, connection) for f, value in zip(fields, row, strict=True)] for row in rows
    ]
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

"""Flink types and SQL column lists derived from the schemas. Imports pyflink: adapters only."""
from pyflink.common import Types

from flowdredge.schemas.fields import ADDR, BYTES, INT, LONG, STRING, Schema

_TYPE_INFO = {LONG: Types.LONG, INT: Types.INT, STRING: Types.STRING, ADDR: Types.STRING,
              BYTES: lambda: Types.PRIMITIVE_ARRAY(Types.BYTE())}
_SQL = {LONG: "BIGINT", INT: "INT", STRING: "STRING", ADDR: "STRING", BYTES: "BYTES"}


def row_type(schema: Schema):
    return Types.ROW_NAMED(list(schema.names), [_TYPE_INFO[f.kind]() for f in schema.fields])


def sql_columns(schema: Schema) -> str:
    return ", ".join(f"`{f.name}` {_SQL[f.kind]}" for f in schema.fields)

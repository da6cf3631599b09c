"""A tiny field/type vocabulary shared by all schemas (no pyflink import here)."""
from dataclasses import dataclass
from functools import cached_property

LONG = "long"
INT = "int"
STRING = "string"
ADDR = "addr"  # an IPv4/IPv6 address carried as a string
BYTES = "bytes"

KINDS = (LONG, INT, STRING, ADDR, BYTES)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    doc: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Schema:
    name: str
    fields: tuple

    @cached_property   # read per output line
    def names(self) -> tuple:
        return tuple(f.name for f in self.fields)

    def index(self, name: str) -> int:
        return self.names.index(name)

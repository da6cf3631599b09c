"""Group-by on integer columns in numpy: one int64 key a row from columns of codes, the rows'
groups in the order of their first row, sums and distinct counts by group. Pure Python (no
pyflink); job.attribute, job.security_columns and job.security group with it."""
from typing import NamedTuple

import numpy as np

_INT64_MAX = 2**63 - 1


def packed_key(columns, limit: int = _INT64_MAX) -> np.ndarray:
    """One int64 per row, equal where the rows' codes are, from (codes, radix) columns (codes
    in [0, radix)); every key is below `limit`, the rows' count or the product of the radixes,
    whichever is larger."""
    key, size = columns[0]
    for codes, radix in columns[1:]:
        if size * radix > limit:
            # Renumbered densely, the key so far is below the number of rows.
            key = np.unique(key, return_inverse=True)[1]
            size = len(key)
        key = key * radix + codes
        size *= radix
    return key


class Grouped(NamedTuple):
    """Rows grouped by a key: `first` the position of each group's first row, groups in the
    order of their first row, and `group` each row's group. The sort that found them is kept
    for the sums: `sorted_rows` the rows in the order of their key (stable), `starts` where
    each key's rows begin there, `by_first` the keys in the order of their group."""
    first: np.ndarray
    group: np.ndarray
    sorted_rows: np.ndarray
    starts: np.ndarray
    by_first: np.ndarray

    def counts(self) -> list:
        return np.bincount(self.group, minlength=len(self.first)).tolist()

    def sums(self, values: np.ndarray) -> list:
        """`values` (int64, one a row) summed by group, exactly (in Python past int64)."""
        if max(int(values.max()), -int(values.min())) * len(values) > _INT64_MAX:
            totals = [0] * len(self.first)
            for g, v in zip(self.group.tolist(), values.tolist()):
                totals[g] += v
            return totals
        return np.add.reduceat(values[self.sorted_rows], self.starts)[self.by_first].tolist()

    def distinct(self, codes: np.ndarray, radix: int, rows=None) -> tuple:
        """Per group, its rows' distinct `codes` (in [0, radix)), of the rows `rows` only (an
        index or mask) when given: (each group's count, and the (group, code) pairs sorted
        by group then code, as group * radix + code)."""
        group = self.group if rows is None else self.group[rows]
        pairs = np.unique(group * radix + codes)
        return np.bincount(pairs // radix, minlength=len(self.first)), pairs


def grouped(columns) -> Grouped:
    """Rows (at least one) grouped by (codes, radix) columns (packed_key)."""
    key = packed_key(columns)
    sorted_rows = np.argsort(key, kind="stable")
    sorted_keys = key[sorted_rows]
    new_key = np.empty(len(key), bool)
    new_key[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new_key[1:])
    starts = np.flatnonzero(new_key)
    # Stable: a key's first row in the sort is its first row.
    first = sorted_rows[starts]
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    group = np.empty(len(key), np.int64)
    group[sorted_rows] = rank[np.cumsum(new_key) - 1]
    return Grouped(first[by_first], group, sorted_rows, starts, by_first)

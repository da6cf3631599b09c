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
    order of their first row, and `group` each row's group."""
    first: np.ndarray
    group: np.ndarray

    def counts(self) -> list:
        return np.bincount(self.group, minlength=len(self.first)).tolist()

    def sums(self, values: np.ndarray) -> list:
        """`values` (int64, one a row) summed by group, exactly (in Python past int64)."""
        k = len(self.first)
        if max(int(values.max()), -int(values.min())) * len(values) > _INT64_MAX:
            totals = [0] * k
            for g, v in zip(self.group.tolist(), values.tolist()):
                totals[g] += v
            return totals
        order = np.argsort(self.group, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(self.group, minlength=k))[:-1]))
        return np.add.reduceat(values[order], bounds).tolist()

    def distinct(self, codes: np.ndarray, radix: int) -> tuple:
        """Per group, its rows' distinct `codes` (in [0, radix)): (each group's count, and
        the (group, code) pairs sorted by group then code, as group * radix + code)."""
        pairs = np.unique(self.group * radix + codes)
        return np.bincount(pairs // radix, minlength=len(self.first)), pairs


def grouped(columns) -> Grouped:
    """Rows (at least one) grouped by (codes, radix) columns (packed_key)."""
    _keys, first, inverse = np.unique(packed_key(columns), return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    return Grouped(first[by_first], rank[inverse.reshape(-1)])

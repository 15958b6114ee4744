"""Property columns: every image's measured properties, for the tests that need the sample.

The skew test compares tonight's images with the whole training history, and its
Kolmogorov-Smirnov and chi-squared tests need every value, not a summary. Reading
them from the train split's records would decompress every photo of the history
every night (issue 11), although the values are a dozen numbers per image. So they
are made once per span, like the span's summary (`summary.py`): ExampleGen writes
each split's into the span's Examples artifact (`names.PROPERTY_COLUMNS_FILE`),
where the ImageDistributionValidator reads them, span by span. The values are the
records' own (a float32 stays that float32 through JSON's exact round trip), so the
tests give what the records would give.

A file holds {split: {feature: [value, ...]}}: values in record order, a category
as text, the encoded image never.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from pipeline_src import features
from pipeline_src.validation.summary import CATEGORICAL, NUMERIC

NAMES = NUMERIC + CATEGORICAL

Columns = dict[str, list]


def empty() -> Columns:
    return {name: [] for name in NAMES}


def append(columns: Columns, values: Mapping[str, Any]) -> None:
    """One example's values (`summary.values_of`); every property must be there, so the
    columns stay aligned."""
    missing = [name for name in NAMES if name not in values]
    if missing:
        raise ValueError(f"an example without {missing}: its columns would not align")
    for name in NAMES:
        value = values[name]
        columns[name].append(value.decode() if isinstance(value, bytes) else value)


def extend(columns: Columns, other: Mapping[str, Sequence]) -> None:
    for name in NAMES:
        columns[name].extend(other[name])


def arrays(columns: Mapping[str, Sequence], names: Sequence[str]) -> dict[str, Any]:
    """The named columns as numpy arrays of the records' types (int64, float32, text)."""
    import numpy as np

    kinds = {**{n: np.int64 for n in features.INT_FEATURES},
             **{n: np.float32 for n in features.FLOAT_FEATURES}}
    return {name: np.asarray(columns[name], dtype=kinds.get(name, str)) for name in names}

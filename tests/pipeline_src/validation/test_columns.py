"""Property columns: aligned, typed as the records are."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline_src import features
from pipeline_src.validation import columns as property_columns


def _values(**changes):
    values = {name: 1 for name in features.INT_FEATURES}
    values.update({name: 0.1 for name in features.FLOAT_FEATURES})
    values.update({name: b"x" for name in property_columns.NAMES
                   if name in features.BYTES_FEATURES})
    values.update(changes)
    return values


def test_columns_hold_every_property_but_the_image():
    assert features.IMAGE not in property_columns.NAMES
    assert set(property_columns.NAMES) == (set(features.BYTES_FEATURES) - {features.IMAGE}) | set(
        features.INT_FEATURES) | set(features.FLOAT_FEATURES)


def test_an_example_without_a_property_is_refused_so_the_columns_stay_aligned():
    columns = property_columns.empty()
    values = _values()
    del values[features.BRIGHTNESS]
    with pytest.raises(ValueError, match="brightness"):
        property_columns.append(columns, values)
    assert all(not column for column in columns.values())


def test_arrays_have_the_records_types_and_categories_are_text():
    columns = property_columns.empty()
    property_columns.append(columns, _values(label=b"lion", brightness=0.30000001192092896))
    other = property_columns.empty()
    property_columns.append(other, _values(label=b"bear", width=640))
    property_columns.extend(columns, other)
    got = property_columns.arrays(columns, [features.WIDTH, features.BRIGHTNESS, features.LABEL])
    assert got[features.WIDTH].dtype == np.int64 and list(got[features.WIDTH]) == [1, 640]
    assert got[features.BRIGHTNESS].dtype == np.float32
    assert got[features.BRIGHTNESS][0] == np.float32(0.3)      # the float32 a record holds
    assert list(got[features.LABEL]) == ["lion", "bear"]

"""Emerald's own skew and drift detection on per-image properties (numpy and scipy only).

`stats` holds the two-sample tests; `detector` runs a night's families of tests
(skew, drift, prediction) under one false-alarm budget; `simulate` makes nights
whose truth is known, for the tests and the benchmark. The TFX component that
runs the detector is pipeline_src/components/distribution_validator.py; what
the gate makes of its findings is pipeline_src/decision/.
"""

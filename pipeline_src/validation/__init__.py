"""Emerald's own skew and drift detection on per-image properties.

`stats` holds the two-sample tests (numpy and scipy only); `detector` runs a
night's families of tests (skew, drift, prediction) with one false-alarm budget;
`component` is the TFX component that runs them inside the pipeline;
`acknowledgments` lets a person accept a lasting, legitimate shift.
"""

"""Shared by the operator and the sensor; imports nothing heavy."""
from __future__ import annotations

DEFAULT_NIGHT = "{{ params.get('night') or ds }}"


def night_uri_template(source: str, night: str) -> str:
    """The night's folder, e.g. gs://bucket/prefix/toto/{{ ds }}/ (a template itself)."""
    return source.rstrip("/") + "/toto/" + night + "/"


def default_source() -> str:
    from pipeline_src.config import load_config  # PyYAML only
    return load_config().paths.source

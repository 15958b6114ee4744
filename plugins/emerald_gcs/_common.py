"""Shared by the operator and the sensor; imports nothing heavy."""
from __future__ import annotations

from pipeline_src.config import is_true  # noqa: F401 - PyYAML only; one rule for rendered booleans

from pipeline_src.names import NIGHT as DEFAULT_NIGHT  # noqa: E402,F401 - the one night template
# The bootstrap night before Toto's first upload: corpus only, nothing to wait for.
DEFAULT_CORPUS_ONLY = "{{ params.get('corpus_only', False) }}"


def night_uri_template(source: str, night: str) -> str:
    """The night's folder, e.g. gs://bucket/prefix/toto/{{ ds }}/ (a template itself)."""
    from pipeline_src.names import TOTO_DIR

    return source.rstrip("/") + f"/{TOTO_DIR}/" + night + "/"


def default_source() -> str:
    from pipeline_src.config import load_config  # PyYAML only
    return load_config().paths.source

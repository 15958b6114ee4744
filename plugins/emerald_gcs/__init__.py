"""Emerald's GCS ingestion plugin, provider style: the hook holds the logic.

    from emerald_gcs.sensors import NightUploadCompleteSensor
    from emerald_gcs.operators import IngestNightOperator

Importing this package, `operators` or `sensors` is cheap (no Google client
library); the provider's GCS hook and sensors (~1.4 s to import) are imported
when a task runs.
"""

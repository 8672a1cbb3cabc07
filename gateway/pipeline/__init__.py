"""The pipeline: drivers' raw events to business events in the outbox (see DESIGN.md)."""

from gateway.pipeline.config import (
    ZONE_PATTERN,
    BleScannerConfig,
    BleSection,
    PipelineConfig,
    SmartLabelReaderConfig,
    SupervisionConfig,
    TelemetryConfig,
)

__all__ = [
    "ZONE_PATTERN",
    "BleScannerConfig",
    "BleSection",
    "PipelineConfig",
    "SmartLabelReaderConfig",
    "SupervisionConfig",
    "TelemetryConfig",
]

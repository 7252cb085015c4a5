"""SDK providers that export over OTLP (http/protobuf), for ``otlp_endpoint=``.

They belong to the hooks that made them and are not installed as the global
providers: a library should not change process-wide state behind the
application's back. An application that wants its own spans exported alongside
configures the SDK itself and passes ``tracer_provider=`` / ``meter_provider=``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edda.integrations.opentelemetry.propagation import install_hint

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider


def signal_url(endpoint: str, signal: str) -> str:
    """The URL of one signal: ``http://collector:4318`` becomes
    ``http://collector:4318/v1/traces``; a URL that already ends with
    ``/v1/{signal}`` is kept."""
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"otlp_endpoint must be an http(s) URL such as "
                         f"'http://localhost:4318', got {endpoint!r}")
    suffix = f"/v1/{signal}"
    base = endpoint.rstrip("/")
    return base if base.endswith(suffix) else base + suffix


def otlp_tracer_provider(service_name: str, endpoint: str) -> TracerProvider:
    """A tracer provider that batches spans to ``endpoint``.

    Raises:
        ImportError: If the SDK or the OTLP http exporter is not installed.
        ValueError: If ``endpoint`` is not an http(s) URL.
    """
    url = signal_url(endpoint, "traces")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise install_hint() from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider


def otlp_meter_provider(service_name: str, endpoint: str) -> MeterProvider:
    """A meter provider that exports to ``endpoint`` periodically (every minute,
    or as ``OTEL_METRIC_EXPORT_INTERVAL`` says) and when shut down.

    Raises:
        ImportError: If the SDK or the OTLP http exporter is not installed.
        ValueError: If ``endpoint`` is not an http(s) URL.
    """
    url = signal_url(endpoint, "metrics")
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        raise install_hint() from None
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=url))
    return MeterProvider(metric_readers=[reader],
                         resource=Resource.create({"service.name": service_name}))

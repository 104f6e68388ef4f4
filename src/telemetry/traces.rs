//! OpenTelemetry traces, off unless an OTLP endpoint is given: each request
//! and each job run is a span, exported over OTLP/HTTP; a request's span
//! continues the trace its `traceparent` header names. The trace context goes
//! into the metadata of every event the request appends, so an auditor can
//! go from an event to its trace and back.
//!
//! Off, nothing is exported and no span is made for OpenTelemetry; an
//! incoming `traceparent` is still recorded with the events as it came.

use std::sync::OnceLock;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Set once traces are exported.
static EXPORTING: OnceLock<()> = OnceLock::new();

/// Where and how spans go.
#[derive(Clone, Debug)]
pub struct Export {
    /// The collector's base URL (`http://host:4318`); spans go to `/v1/traces`.
    pub endpoint: String,
    /// `http/protobuf` (the default) or `http/json`.
    pub protocol: Protocol,
}

/// Exports spans until dropped; dropping it sends what is still queued.
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Drop for Exporting {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("tasklog: sending the last spans failed: {error}");
        }
    }
}

/// The layer that makes spans OpenTelemetry spans and exports them.
pub fn layer<S>(export: &Export) -> Result<(impl Layer<S>, Exporting), crate::Failure>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let endpoint = format!("{}/v1/traces", export.endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(export.protocol)
        .with_endpoint(endpoint)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("tasklog")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("tasklog"));
    let _ = EXPORTING.set(());
    Ok((layer, Exporting { provider }))
}

/// Checks a protocol name, for the command line.
pub fn protocol_name(name: &str) -> Result<String, String> {
    protocol(Some(name)).map(|_| name.to_owned())
}

/// The protocol `OTEL_EXPORTER_OTLP_PROTOCOL` names (`http/protobuf` or
/// `http/json`); protobuf if unset.
pub fn protocol(name: Option<&str>) -> Result<Protocol, String> {
    match name {
        None | Some("http/protobuf") => Ok(Protocol::HttpBinary),
        Some("http/json") => Ok(Protocol::HttpJson),
        Some(other) => Err(format!(
            "OTLP protocol {other:?}: tasklog sends http/protobuf or http/json"
        )),
    }
}

/// Starts a request's trace in `span`: the trace its `traceparent` names,
/// if any. Returns the trace context to record with its events.
pub fn start_request(span: &tracing::Span, headers: &HeaderMap) -> Option<String> {
    let incoming = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_traceparent(v));
    if EXPORTING.get().is_none() {
        return incoming.map(str::to_owned);
    }
    if incoming.is_some() {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
    traceparent_of(span)
}

/// Whether spans are exported.
pub fn exporting() -> bool {
    EXPORTING.get().is_some()
}

/// The trace context of `span` while traces are exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    EXPORTING.get()?;
    let context = span.context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        )
    })
}

/// The trace id in a traceparent.
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.get(3..35).unwrap_or_default()
}

/// Whether `value` is a W3C traceparent of version 00 with non-zero ids.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let zeros = |s: &str| s.bytes().all(|b| b == b'0');
    matches!(parts.as_slice(), [version, trace, span, flags]
        if *version == "00" && hex(trace, 32) && hex(span, 16) && hex(flags, 2)
            && !zeros(trace) && !zeros(span))
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_taken() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(good));
        assert_eq!(trace_id(good), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }
}

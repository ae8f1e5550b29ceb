//! Traces over OTLP (OpenTelemetry), when the environment asks for them.
//!
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! turns the exporter on for every command; `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` keeps it off. Without it nothing is built: no
//! exporter, no thread, no layer, and recon's spans (`recon.*`) are disabled
//! at their call sites, so they cost one cached check each.
//!
//! The SDK reads the standard variables itself: the endpoints,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `…_COMPRESSION` (none built
//! in), `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the service is
//! `recon` unless they name it), `OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*`.
//! Only the protocol is read here: the SDK built with both HTTP encodings
//! would default to JSON, while the specification's default is
//! `http/protobuf`. `grpc` is not built in (it would bring tonic and a
//! second HTTP stack): it is refused with a warning and protobuf over HTTP
//! is used.
//!
//! Transport: the SDK's batch processor exports from a thread of its own,
//! outside tokio, through the blocking reqwest client (the workspace's
//! reqwest, TLS by rustls with ring). Spans are flushed by
//! [`Telemetry::shutdown`] (or its drop) at the end of `main`, bounded by
//! the SDK's 5 s shutdown timeout.
//!
//! Logs are unchanged: the log layer does not see recon's spans (its lines
//! carry no span context, as before), and the trace layer has a filter of
//! its own, independent of `RUST_LOG`: recon's spans and events at `info`,
//! everything else at `warn`, the OpenTelemetry crates' own diagnostics never
//! (they would be recorded while a span is being exported).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Metadata;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets, filter_fn};
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;

/// A layer of recon's subscriber.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The prefix of recon's span names: these are for traces, not for logs.
pub const SPAN_PREFIX: &str = "recon.";

/// Whether `meta` is one of recon's spans.
fn is_recon_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.name().starts_with(SPAN_PREFIX)
}

/// What the trace layer records, whatever `RUST_LOG` says.
fn traces_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("recon", LevelFilter::INFO)
        .with_target("opentelemetry", LevelFilter::OFF)
}

/// The subscriber: `logs` filtered by `filter` and blind to recon's spans,
/// and `traces` (when exporting) filtered by [`traces_filter`].
fn subscriber(
    logs: BoxedLayer,
    filter: EnvFilter,
    traces: Option<BoxedLayer>,
) -> Layered<Vec<BoxedLayer>, Registry> {
    let no_spans = filter_fn(|m| !is_recon_span(m)).with_max_level_hint(LevelFilter::TRACE);
    let mut layers: Vec<BoxedLayer> = vec![logs.with_filter(filter.and(no_spans)).boxed()];
    if let Some(traces) = traces {
        layers.push(traces.with_filter(traces_filter()).boxed());
    }
    tracing_subscriber::registry().with(layers)
}

/// Install the global subscriber: the log layer `logs` filtered by
/// `filter`, plus the trace exporter when the environment turns it on.
/// Keep the returned guard until the end of `main`.
pub fn init(logs: BoxedLayer, filter: EnvFilter) -> Telemetry {
    let (traces, provider, problem) = match exporter_from_env() {
        Ok(None) => (None, None, None),
        Ok(Some((provider, warning))) => {
            let tracer = provider.tracer_with_scope(
                opentelemetry::InstrumentationScope::builder("recon")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            );
            let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
            (Some(layer), Some(provider), warning)
        }
        Err(e) => (None, None, Some(format!("traces are not exported: {e}"))),
    };
    let _ = subscriber(logs, filter, traces).try_init();
    if let Some(p) = problem {
        tracing::warn!("OpenTelemetry: {p}");
    }
    Telemetry(provider)
}

/// Read a variable, empty meaning unset.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The tracer provider the environment asks for (with a warning to log
/// once the subscriber is up), or `None` when it asks for none.
fn exporter_from_env() -> Result<Option<(SdkTracerProvider, Option<String>)>, String> {
    let is =
        |name: &str, value: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    if is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return Ok(None);
    }
    if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    let (protocol, warning) = protocol();
    // reqwest is built without a default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| e.to_string())?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(exporter)
        .build();
    Ok(Some((provider, warning)))
}

/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
/// else `http/protobuf`.
fn protocol() -> (Protocol, Option<String>) {
    let chosen = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|n| var(n).map(|v| (n, v)));
    match chosen {
        None => (Protocol::HttpBinary, None),
        Some((_, v)) if v.trim().eq_ignore_ascii_case("http/protobuf") => {
            (Protocol::HttpBinary, None)
        }
        Some((_, v)) if v.trim().eq_ignore_ascii_case("http/json") => (Protocol::HttpJson, None),
        Some((name, v)) => (
            Protocol::HttpBinary,
            Some(format!(
                "{name}={v:?} is not supported (recon exports over HTTP: http/protobuf or http/json); \
                 using http/protobuf (the collector's OTLP/HTTP port is usually 4318)"
            )),
        ),
    }
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the
/// SDK's own attributes), with `service.name` `recon` unless the
/// environment names the service, and recon's version unless it gives one.
fn resource() -> Resource {
    use opentelemetry::Key;
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    let versioned = detected.get(&Key::new("service.version")).is_some();
    if named && versioned {
        return detected;
    }
    let mut b = Resource::builder();
    if !named {
        b = b.with_service_name("recon");
    }
    if !versioned {
        b = b.with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
    }
    b.build()
}

/// Flushes and stops the exporter (if any) when shut down or dropped.
#[must_use = "spans are flushed when this is shut down or dropped"]
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Export what is left and stop (bounded by the SDK's 5 s timeout).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "OpenTelemetry: not every span could be exported");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::subscriber::with_default;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The names of the spans a layer saw.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<&'static str>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.lock().unwrap().push(attrs.metadata().name());
        }
    }

    fn logs(buf: &Buf, json: bool) -> BoxedLayer {
        let l = tracing_subscriber::fmt::layer()
            .with_writer(buf.clone())
            .with_ansi(false)
            .without_time();
        if json {
            l.json().flatten_event(true).boxed()
        } else {
            l.with_target(false).boxed()
        }
    }

    fn emit() {
        let span = tracing::info_span!("recon.sweep", provider = "stripe", kind = "customers");
        let _in = span.enter();
        tracing::info!(kind = "customers", "run succeeded");
    }

    #[test]
    fn without_an_exporter_recon_spans_are_disabled_and_logs_unchanged() {
        for json in [false, true] {
            let buf = Buf::default();
            let sub = subscriber(logs(&buf, json), EnvFilter::new("info"), None);
            with_default(sub, || {
                let span = tracing::info_span!("recon.page", provider = "stripe");
                assert!(
                    span.is_disabled(),
                    "a recon span costs nothing without traces"
                );
                emit();
            });
            let text = buf.text();
            assert!(text.contains("run succeeded"), "{text}");
            assert!(
                !text.contains("recon.sweep") && !text.contains("stripe"),
                "{text}"
            );
        }
        let buf = Buf::default();
        with_default(
            subscriber(logs(&buf, false), EnvFilter::new("info"), None),
            emit,
        );
        assert_eq!(buf.text().trim(), "INFO run succeeded kind=\"customers\"");
    }

    /// Events inside a span of another crate (shown in logs, as before)
    /// and, when asked, inside a recon span (never shown in logs).
    fn request(with_recon_span: bool) {
        let foreign = tracing::info_span!(target: "tower_http::trace", "request", method = "POST");
        let _f = foreign.enter();
        let recon = if with_recon_span {
            tracing::info_span!("recon.webhook", provider = "stripe")
        } else {
            tracing::Span::none()
        };
        let _r = recon.enter();
        tracing::info!(outcome = "applied", "webhook received");
        tracing::warn!("webhook refused");
    }

    /// The log lines are byte for byte those of the subscriber recon had
    /// before traces (`fmt().with_env_filter(…)`), with or without an
    /// exporter, in both formats.
    #[test]
    fn logs_are_what_they_were() {
        for json in [false, true] {
            let before = Buf::default();
            let old = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new("info"))
                .with_writer(before.clone())
                .with_ansi(false)
                .without_time();
            if json {
                with_default(old.json().flatten_event(true).finish(), || request(false));
            } else {
                with_default(old.with_target(false).finish(), || request(false));
            }
            assert!(before.text().contains("request"), "{}", before.text());
            for traces in [false, true] {
                let now = Buf::default();
                let traces = traces.then(|| Seen::default().boxed());
                let sub = subscriber(logs(&now, json), EnvFilter::new("info"), traces);
                with_default(sub, || request(true));
                assert_eq!(now.text(), before.text());
            }
        }
    }

    #[test]
    fn with_an_exporter_the_trace_layer_gets_the_spans_and_logs_stay_the_same() {
        let buf = Buf::default();
        let seen = Seen::default();
        let sub = subscriber(
            logs(&buf, false),
            EnvFilter::new("info"),
            Some(seen.clone().boxed()),
        );
        with_default(sub, || {
            emit();
            // Debug spans of other crates are not exported.
            let _ = tracing::debug_span!(target: "hyper", "connect").entered();
        });
        assert_eq!(*seen.0.lock().unwrap(), vec!["recon.sweep"]);
        assert_eq!(buf.text().trim(), "INFO run succeeded kind=\"customers\"");
    }
}

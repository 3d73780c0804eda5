//! The process-wide tracer, exporting once [`start`] installs an exporter.
//!
//! OpenTelemetry spans are built only while an exporter is installed
//! ([`recording`]): building one costs more than anything else a request
//! does in the router besides hyper's own work (about 30k instructions of
//! 155k per request for the server and attempt spans), and with nothing to
//! send them to they were thrown away. While none is, the span macros of
//! [`SPAN_TARGET`] are disabled at their callsites and the next hop's
//! context is minted instead ([`unrecorded_child`]): the same trace id,
//! flags and `tracestate` a recorded span would have passed on, and a span
//! id of its own.

use super::{TelemetryConfig, TelemetryError, SPAN_TARGET};
use opentelemetry::trace::{
    Link, SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler,
    SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// How long one export request may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest collector answer read back (it is a small protobuf message).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Parent-based sampling with a root ratio that [`start`] can set after the
/// subscriber exists (logging starts before the config is read).
#[derive(Debug, Clone)]
struct ParentOrRatio {
    ratio_bits: Arc<AtomicU64>,
}

impl ShouldSample for ParentOrRatio {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(cx) = parent_context.filter(|cx| cx.span().span_context().is_valid()) {
            let span = cx.span();
            let parent = span.span_context();
            return SamplingResult {
                decision: if parent.is_sampled() {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            };
        }
        let ratio = f64::from_bits(self.ratio_bits.load(Ordering::Relaxed));
        Sampler::TraceIdRatioBased(ratio).should_sample(
            parent_context,
            trace_id,
            name,
            span_kind,
            attributes,
            links,
        )
    }
}

/// The exporter in force, with the id of the [`Telemetry`] that owns it.
#[derive(Debug)]
struct Installed {
    id: u64,
    processor: BatchSpanProcessor,
}

/// The tracer provider's one span processor: forwards ended spans to the
/// installed exporter, drops them while there is none.
#[derive(Debug, Default)]
struct Switch {
    slot: RwLock<Option<Installed>>,
}

#[derive(Debug)]
struct SwitchProcessor(Arc<Switch>);

impl SpanProcessor for SwitchProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let slot = self.0.slot.read().unwrap_or_else(|p| p.into_inner());
        if let Some(installed) = slot.as_ref() {
            installed.processor.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let slot = self.0.slot.read().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .map_or(Ok(()), |installed| installed.processor.force_flush())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // The provider lives as long as the process; exporters are shut
        // down by their `Telemetry`.
        Ok(())
    }
}

struct Global {
    provider: SdkTracerProvider,
    ratio_bits: Arc<AtomicU64>,
    switch: Arc<Switch>,
    next_id: AtomicU64,
    /// Whether an exporter is installed (see [`recording`]).
    recording: AtomicBool,
}

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let ratio_bits = Arc::new(AtomicU64::new(1.0f64.to_bits()));
        let switch = Arc::new(Switch::default());
        let provider = SdkTracerProvider::builder()
            .with_sampler(ParentOrRatio {
                ratio_bits: ratio_bits.clone(),
            })
            .with_span_processor(SwitchProcessor(switch.clone()))
            .build();
        Global {
            provider,
            ratio_bits,
            switch,
            next_id: AtomicU64::new(1),
            recording: AtomicBool::new(false),
        }
    })
}

/// The `tracing` layer that makes [`SPAN_TARGET`] spans OpenTelemetry
/// spans (and nothing else: no events, no other targets).
/// [`crate::logging::init`] installs it; a test building its own subscriber
/// adds it the same way.
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let tracer = global().provider.tracer("hwc-ai");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        // Nothing reads OpenTelemetry's thread-local current context (trace
        // context is injected from the span itself), and activating it
        // costs work on every poll of every instrumented future.
        .with_context_activation(false)
        // Read at each callsite's registration, and again for every
        // callsite when `recording` changes (`follow_slot`).
        .with_filter(filter_fn(|meta| is_trace_only(meta) && recording()))
}

/// Whether OpenTelemetry spans are being built: an exporter is installed.
/// While not, [`SPAN_TARGET`] spans are disabled and cost next to nothing.
pub fn recording() -> bool {
    global().recording.load(Ordering::Relaxed)
}

/// Turns the building of spans on when `slot` holds an exporter, off when
/// not, and has every callsite ask the layer's filter again (its answer is
/// cached per callsite). Called with the slot's write lock held, so that
/// the flag always follows the slot and two changes never interleave
/// their rebuilds. (A callsite reached for the very first time during a
/// change may keep the answer from before it, a race inside tracing-core;
/// the daemons install their exporter before they serve, so their
/// request callsites are first reached after it.)
fn follow_slot(slot: &Option<Installed>) {
    let on = slot.is_some();
    if global().recording.swap(on, Ordering::Relaxed) != on {
        tracing::callsite::rebuild_interest_cache();
    }
}

/// The context a next hop continues when the span of the call was not
/// recorded: a child of `parent` (its trace, sampled flag and
/// `tracestate`) with a span id of its own, or without a parent a new
/// trace ([`unrecorded_root`]). What the recorded span would have passed
/// on, less the export.
pub(super) fn unrecorded_child(parent: Option<&SpanContext>) -> SpanContext {
    match parent.filter(|p| p.is_valid()) {
        Some(parent) => SpanContext::new(
            parent.trace_id(),
            RandomIdGenerator::default().new_span_id(),
            parent.trace_flags() & TraceFlags::SAMPLED,
            false,
            parent.trace_state().clone(),
        ),
        None => unrecorded_root(),
    }
}

/// A new trace started here while spans are not recorded: fresh ids,
/// sampled per `sample_ratio` by trace id as a recorded root would be.
pub(super) fn unrecorded_root() -> SpanContext {
    let ids = RandomIdGenerator::default();
    let trace_id = ids.new_trace_id();
    let ratio = f64::from_bits(global().ratio_bits.load(Ordering::Relaxed));
    let sampled = Sampler::TraceIdRatioBased(ratio)
        .should_sample(None, trace_id, "", &SpanKind::Client, &[], &[])
        .decision
        == SamplingDecision::RecordAndSample;
    SpanContext::new(
        trace_id,
        ids.new_span_id(),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        false,
        TraceState::default(),
    )
}

/// Whether `meta` is a span for [`layer`] only, which the log output skips.
pub fn is_trace_only(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target() == SPAN_TARGET
}

/// The exporter a daemon installed: flush it with [`Telemetry::shutdown`]
/// when the daemon drains. Dropping it without leaves the exporter running.
#[derive(Debug)]
#[must_use = "call shutdown on drain, or the last spans may be lost"]
pub struct Telemetry {
    id: Option<u64>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.id.is_some()
    }

    /// Exports what is still queued and removes the exporter, within
    /// `timeout`; a collector that is down costs at most that.
    pub async fn shutdown(self, timeout: Duration) {
        let Some(id) = self.id else { return };
        let taken = {
            let mut slot = global()
                .switch
                .slot
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if slot.as_ref().is_some_and(|i| i.id == id) {
                let taken = slot.take();
                follow_slot(&slot);
                taken
            } else {
                None
            }
        };
        let Some(installed) = taken else { return };
        // Blocking: the batch thread exports through the runtime, so wait
        // off the runtime's own threads.
        let job =
            tokio::task::spawn_blocking(move || installed.processor.shutdown_with_timeout(timeout));
        match tokio::time::timeout(timeout + Duration::from_millis(200), job).await {
            Ok(Ok(Ok(()))) => tracing::info!("traces flushed"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "could not flush the last traces; they are lost")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "trace flush failed"),
            Err(_) => tracing::warn!(
                timeout_s = timeout.as_secs_f64(),
                "trace flush did not finish in time; the last traces are lost"
            ),
        }
    }
}

/// Sets the root sampling ratio (clamped to 0..=1; NaN counts as 1).
fn set_sample_ratio(ratio: f64) {
    let ratio = if ratio.is_nan() {
        1.0
    } else {
        ratio.clamp(0.0, 1.0)
    };
    global()
        .ratio_bits
        .store(ratio.to_bits(), Ordering::Relaxed);
}

/// Applies `[telemetry]` for the daemon `service`: the sampling ratio, and
/// when `otlp_endpoint` is set an OTLP/HTTP protobuf exporter posting
/// batches to `<otlp_endpoint>/v1/traces`. Must run inside the tokio
/// runtime (the exporter sends through it). One exporter per process: a
/// second `start` with an endpoint replaces the first.
pub fn start(service: &str, config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    set_sample_ratio(config.sample_ratio);
    let Some(url) = config.traces_url() else {
        return Ok(Telemetry { id: None });
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient { client, runtime })
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let telemetry = export_to(service, exporter);
    tracing::info!(endpoint = %url, sample_ratio = config.sample_ratio, "exporting traces over OTLP/HTTP");
    Ok(telemetry)
}

/// Installs `exporter` behind a batch processor, with `service` as the
/// resource's `service.name`: what [`start`] does with the OTLP exporter,
/// open to tests that want to see the spans themselves.
pub fn export_to<E>(service: &str, exporter: E) -> Telemetry
where
    E: SpanExporter + 'static,
{
    let mut processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(2))
                .build(),
        )
        .build();
    processor.set_resource(
        &Resource::builder()
            .with_service_name(service.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let g = global();
    let id = g.next_id.fetch_add(1, Ordering::Relaxed);
    let old = {
        let mut slot = g.switch.slot.write().unwrap_or_else(|p| p.into_inner());
        let old = slot.replace(Installed { id, processor });
        follow_slot(&slot);
        old
    };
    if let Some(old) = old {
        // Its shutdown blocks while it exports; not on this thread.
        std::thread::spawn(move || {
            let _ = old.processor.shutdown_with_timeout(EXPORT_TIMEOUT);
        });
    }
    Telemetry { id: Some(id) }
}

/// The exporter's HTTP client: the workspace's reqwest, driven by the
/// daemon's tokio runtime (the batch processor exports from a thread of its
/// own, which has no runtime).
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let mut resp = client.execute(request).await?;
            let status = resp.status();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = http::Response::new(body.freeze());
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok::<_, reqwest::Error>(out)
        });
        Ok(task.await??)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use std::str::FromStr;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn sampler_honours_parent_and_ratio() {
        let bits = Arc::new(AtomicU64::new(0.0f64.to_bits()));
        let s = ParentOrRatio {
            ratio_bits: bits.clone(),
        };
        let trace = TraceId::from_hex(TRACE).unwrap();
        let decide = |parent: Option<&Context>| {
            s.should_sample(parent, trace, "x", &SpanKind::Server, &[], &[])
                .decision
        };
        // Root: ratio 0 drops, ratio 1 samples.
        assert_eq!(decide(None), SamplingDecision::Drop);
        bits.store(1.0f64.to_bits(), Ordering::Relaxed);
        assert_eq!(decide(None), SamplingDecision::RecordAndSample);
        // A remote parent's flag wins either way.
        let parent = |flags| {
            Context::new().with_remote_span_context(SpanContext::new(
                trace,
                SpanId::from_hex(SPAN).unwrap(),
                flags,
                true,
                TraceState::from_str("k=v").unwrap(),
            ))
        };
        let unsampled = parent(TraceFlags::default());
        assert_eq!(decide(Some(&unsampled)), SamplingDecision::Drop);
        bits.store(0.0f64.to_bits(), Ordering::Relaxed);
        let sampled = parent(TraceFlags::SAMPLED);
        let r = s.should_sample(Some(&sampled), trace, "x", &SpanKind::Server, &[], &[]);
        assert_eq!(r.decision, SamplingDecision::RecordAndSample);
        assert_eq!(r.trace_state.header(), "k=v");
    }
}

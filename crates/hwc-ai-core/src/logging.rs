//! Log output that reads well both in a terminal and in journald.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp or colour
//! (journald adds its own) and start with a `<N>` syslog priority prefix,
//! which journald turns into the entry's level, so `journalctl -p warning`
//! works. Request spans put `request_id` on every line of a request. The
//! same subscriber carries the trace layer ([`crate::telemetry`]).

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// `key=value` fields separated by spaces, the message bare: what the
/// default field format writes without colour, minus its styling calls
/// (no-op styles were still a few percent of the router's CPU, since every
/// request writes a line).
fn plain_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        if field.name() == "message" {
            write!(w, "{value:?}")
        } else {
            write!(w, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

/// Prefixes each line with its syslog priority for journald.
struct SyslogPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber: the log output (filtered by `RUST_LOG`,
/// else `default_filter`) and the trace layer of [`crate::telemetry`], which
/// exports nothing until a daemon's `[telemetry]` says where. The two are
/// filtered apart, so `RUST_LOG=warn` quiets logs without breaking
/// `traceparent` propagation. Calling it twice is harmless (tests do).
pub fn init(default_filter: &str) {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Trace-only spans would repeat the request span's fields on every line.
    let filter = filter.and(filter_fn(|meta| !crate::telemetry::is_trace_only(meta)));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let output = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_writer(std::io::stderr);
    let output = if under_journald {
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_ansi(false)
            .with_target(true);
        output
            .with_ansi(false)
            .fmt_fields(plain_fields())
            .event_format(SyslogPriority(format))
            .boxed()
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // Colour only for a person at a terminal, not for files and pipes.
        output.with_ansi(true).boxed()
    } else {
        output.with_ansi(false).fmt_fields(plain_fields()).boxed()
    };
    let result = tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .with(crate::telemetry::layer())
        .try_init();
    // Already initialised: keep the first subscriber.
    let _ = result;
}

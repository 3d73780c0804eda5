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

/// The lines of tracing-subscriber's default (`Full`) format without colour,
/// written without its styling calls: `[<N>][TIME ]LEVEL
/// span{fields}:...: target: message fields`. The default format wraps
/// the span names, the colons and the target in a no-op style even with
/// colour off, six `Display` calls a line that were 2k instructions of every
/// request the router serves. `priority` adds the journald prefix; `time`
/// the timestamp a file needs and journald does not.
struct PlainLine {
    priority: bool,
    time: bool,
}

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        use tracing_log::NormalizeEvent;
        use tracing_subscriber::fmt::time::FormatTime;
        use tracing_subscriber::fmt::FormattedFields;

        // A `log` record (sqlx, reqwest) carries its own target and level.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let level = *meta.level();
        if self.priority {
            writer.write_str(match level {
                Level::ERROR => "<3>",
                Level::WARN => "<4>",
                Level::INFO => "<6>",
                Level::DEBUG | Level::TRACE => "<7>",
            })?;
        }
        if self.time {
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut writer)?;
            writer.write_char(' ')?;
        }
        writer.write_str(match level {
            Level::ERROR => "ERROR ",
            Level::WARN => " WARN ",
            Level::INFO => " INFO ",
            Level::DEBUG => "DEBUG ",
            Level::TRACE => "TRACE ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(&fields.fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
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
    let output = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !under_journald {
        // Colour only for a person at a terminal, not for files and pipes.
        output.with_ansi(true).boxed()
    } else {
        output
            .with_ansi(false)
            .fmt_fields(plain_fields())
            .event_format(PlainLine {
                priority: under_journald,
                time: !under_journald,
            })
            .boxed()
    };
    let result = tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .with(crate::telemetry::layer())
        .try_init();
    // Already initialised: keep the first subscriber.
    let _ = result;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// A writer the test reads back.
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

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
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

    fn emit() {
        tracing::info!(answer = 42, "outside any span");
        let outer = tracing::info_span!("request", request_id = "r-1", path = "/v1/x");
        let _o = outer.enter();
        tracing::warn!(key = %"bench", stream = false, "routed");
        let inner = tracing::info_span!("attempt");
        let _i = inner.enter();
        tracing::error!(error = "boom", "failed");
        tracing::debug!("quiet");
    }

    /// What `emit` writes through `format` with the plain field format.
    macro_rules! render {
        ($format:expr) => {{
            let buf = Buf::default();
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(buf.clone())
                .fmt_fields(plain_fields())
                .event_format($format);
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
            buf.text()
        }};
    }

    #[test]
    fn plain_lines_are_the_default_format_without_colour() {
        let theirs = render!(tracing_subscriber::fmt::format()
            .without_time()
            .with_ansi(false)
            .with_target(true));
        let ours = render!(PlainLine {
            priority: false,
            time: false,
        });
        assert_eq!(ours, theirs);
        assert!(ours.contains(
            "WARN request{request_id=\"r-1\" path=\"/v1/x\"}: hwc_ai_core::logging::tests: routed key=bench stream=false\n"
        ));
    }

    #[test]
    fn journald_lines_carry_the_priority_and_files_the_time() {
        let text = render!(PlainLine {
            priority: true,
            time: false,
        });
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0]
                .starts_with("<6> INFO hwc_ai_core::logging::tests: outside any span answer=42"),
            "{text}"
        );
        assert!(lines[1].starts_with("<4> WARN request{"), "{text}");
        assert!(lines[2].starts_with("<3>ERROR request{"), "{text}");
        assert!(lines[3].starts_with("<7>DEBUG "), "{text}");

        let text = render!(PlainLine {
            priority: false,
            time: true,
        });
        // An RFC 3339 UTC timestamp, then the line as without it.
        let (time, rest) = text.split_once(' ').unwrap();
        assert!(
            time.len() >= 20 && time.ends_with('Z') && time.contains('T'),
            "{text}"
        );
        assert!(
            rest.starts_with(" INFO hwc_ai_core::logging::tests: outside any span"),
            "{text}"
        );
    }
}

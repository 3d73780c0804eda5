//! W3C Trace Context: `traceparent` and `tracestate` parsed from a
//! request and written into the next one.

use super::{TRACEPARENT, TRACESTATE};
use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::str::FromStr;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Most `tracestate` list members W3C Trace Context allows.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Parses a `traceparent` value per W3C Trace Context: version `00` is
/// exactly `00-<32 hex>-<16 hex>-<2 hex>`, lower-case, with neither id all
/// zeros; a later version may append `-...` fields, which are ignored;
/// version `ff` is invalid. Only the sampled flag is kept. `None` for
/// anything else, in which case the request starts a trace of its own.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let bytes = value.as_bytes();
    // ASCII only, so the slicing below stays on character boundaries.
    if bytes.len() < 55 || !value.is_ascii() {
        return None;
    }
    let version = hex_field(&value[0..2])?;
    if version == 0xff || (version == 0 && bytes.len() != 55) {
        return None;
    }
    if bytes.len() > 55 && bytes[55] != b'-' {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace = &value[3..35];
    let span = &value[36..52];
    if !is_lower_hex(trace) || !is_lower_hex(span) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = hex_field(&value[53..55])?;
    Some((
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
    ))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_field(s: &str) -> Option<u8> {
    if s.len() == 2 && is_lower_hex(s) {
        u8::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// Length of a version-`00` `traceparent`: `00-` 32 hex `-` 16 hex `-` 2 hex.
const TRACEPARENT_LEN: usize = 55;

/// The `traceparent` value (version `00`) for `cx` as bytes, or `None` when
/// it is not a valid context. Written into a fixed buffer: this runs for
/// every upstream call, and `format!` through the ids' `Display` was about
/// 2k instructions of the router's request.
fn traceparent_bytes(cx: &SpanContext) -> Option<[u8; TRACEPARENT_LEN]> {
    if !cx.is_valid() {
        return None;
    }
    let mut out = [b'-'; TRACEPARENT_LEN];
    out[..2].copy_from_slice(b"00");
    let flags = (cx.trace_flags() & TraceFlags::SAMPLED).to_u8();
    hex::encode_to_slice(cx.trace_id().to_bytes(), &mut out[3..35]).ok()?;
    hex::encode_to_slice(cx.span_id().to_bytes(), &mut out[36..52]).ok()?;
    hex::encode_to_slice([flags], &mut out[53..55]).ok()?;
    Some(out)
}

/// The `traceparent` value (version `00`) for `cx`, or `None` when it is
/// not a valid context.
pub fn format_traceparent(cx: &SpanContext) -> Option<String> {
    traceparent_bytes(cx).map(|b| b.iter().map(|&c| char::from(c)).collect())
}

/// The caller's span context from a request's headers: `traceparent` (one
/// header exactly; several are ambiguous and ignored) and `tracestate`
/// (dropped alone when invalid or over 32 members, as the spec allows).
pub fn extract(headers: &HeaderMap) -> Option<SpanContext> {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let parent = parents.next()?;
    if parents.next().is_some() {
        return None;
    }
    let (trace_id, span_id, flags) = parse_traceparent(parent.to_str().ok()?)?;
    let state = headers
        .get_all(TRACESTATE)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<&str>>>()
        .map(|parts| parts.join(","))
        .filter(|joined| {
            joined.split(',').filter(|m| !m.trim().is_empty()).count() <= MAX_TRACESTATE_MEMBERS
        })
        .and_then(|joined| TraceState::from_str(&joined).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// Writes `cx` into `headers` as `traceparent` (and `tracestate` when it
/// has entries), replacing what was there; nothing for an invalid context.
pub fn inject_span_context(cx: &SpanContext, headers: &mut HeaderMap) {
    let Some(parent) = traceparent_bytes(cx).and_then(|v| HeaderValue::from_bytes(&v).ok()) else {
        return;
    };
    headers.insert(TRACEPARENT, parent);
    headers.remove(TRACESTATE);
    let state = cx.trace_state().header();
    if !state.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&state) {
            headers.insert(TRACESTATE, v);
        }
    }
}

/// The OpenTelemetry context of a `tracing` span (empty when the span is
/// disabled or [`layer`](super::layer) is not installed).
pub fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

/// The context a request's outgoing calls continue, to hand to each
/// [`inject`]: the caller's ([`extract`]), or while spans are not recorded
/// and the request came without one, a root minted here once for the whole
/// request, so that all its calls (the router's attempts and fallbacks)
/// share one trace and one sampling decision, as they do under a recorded
/// server span. Take it once per request, not once per call.
pub fn request_context(headers: &HeaderMap) -> Option<SpanContext> {
    extract(headers).or_else(|| (!super::recording()).then(super::export::unrecorded_root))
}

/// Writes into `headers` the context the next hop continues, so it joins
/// this request's trace: `span`'s, with `span` as its parent, while spans
/// are recorded; otherwise ([`recording`](super::recording) is off, so
/// `span` is disabled) a span id minted under `request`, the request's
/// [`request_context`] (`None` makes this call a trace of its own).
/// Returns whether anything was written.
pub fn inject(
    span: &tracing::Span,
    request: Option<&SpanContext>,
    headers: &mut HeaderMap,
) -> bool {
    let mut cx = span_context(span);
    if !cx.is_valid() {
        cx = super::export::unrecorded_child(request);
    }
    inject_span_context(&cx, headers);
    cx.is_valid()
}

/// [`inject`] for a request being built with reqwest, the client every
/// daemon uses for its peers.
pub fn inject_reqwest(
    span: &tracing::Span,
    context: Option<&SpanContext>,
    request: reqwest::RequestBuilder,
) -> reqwest::RequestBuilder {
    let mut headers = HeaderMap::new();
    if inject(span, context, &mut headers) {
        request.headers(headers)
    } else {
        request
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    type Parsed = Option<(TraceId, SpanId, TraceFlags)>;
    /// Headers, whether a parent is found, the tracestate kept.
    type ExtractCase<'a> = (Vec<(&'a str, &'a str)>, bool, &'a str);

    #[test]
    fn traceparent_table() {
        let ok = |flags: u8| {
            Some((
                TraceId::from_hex(TRACE).unwrap(),
                SpanId::from_hex(SPAN).unwrap(),
                TraceFlags::new(flags),
            ))
        };
        let cases: &[(&str, Parsed)] = &[
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ok(1),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                ok(0),
            ),
            // Unknown flags are dropped, sampled kept.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                ok(1),
            ),
            // Surrounding blanks are allowed (OWS).
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
                ok(1),
            ),
            // A later version may add fields after a dash.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                ok(1),
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ok(1),
            ),
            // ...but not glued on.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                None,
            ),
            // Version 00 is exactly 55 characters.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                None,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            // Upper case is invalid anywhere.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                None,
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            // All-zero ids.
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            // Short fields, non-hex, wrong separators, signs.
            ("00-4bf92f3577b34da6-00f067aa0ba902b7-01", None),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                None,
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
            ),
            ("", None),
            ("garbage", None),
            // Not ASCII: refused, not a panic on a split character.
            (
                "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
                None,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_traceparent(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn format_round_trips_and_skips_invalid() {
        let cx = SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(SPAN).unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let v = format_traceparent(&cx).unwrap();
        assert_eq!(v, format!("00-{TRACE}-{SPAN}-01"));
        let (t, s, f) = parse_traceparent(&v).unwrap();
        assert_eq!((t, s, f), (cx.trace_id(), cx.span_id(), cx.trace_flags()));
        assert_eq!(format_traceparent(&SpanContext::empty_context()), None);
        // Unsampled, and the header inject writes is the same text.
        let unsampled = SpanContext::new(
            cx.trace_id(),
            cx.span_id(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        let mut h = HeaderMap::new();
        inject_span_context(&unsampled, &mut h);
        assert_eq!(h[TRACEPARENT], format!("00-{TRACE}-{SPAN}-00").as_str());
        assert_eq!(
            format_traceparent(&unsampled).as_deref(),
            Some(h[TRACEPARENT].to_str().unwrap())
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn extract_table() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let many: String = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let cases: Vec<ExtractCase> = vec![
            (vec![("traceparent", &tp)], true, ""),
            (
                vec![("traceparent", &tp), ("tracestate", "a=1,b=2")],
                true,
                "a=1,b=2",
            ),
            // Several tracestate headers are one list.
            (
                vec![
                    ("traceparent", &tp),
                    ("tracestate", "a=1"),
                    ("tracestate", "b=2"),
                ],
                true,
                "a=1,b=2",
            ),
            // A bad tracestate is dropped, the parent kept.
            (
                vec![("traceparent", &tp), ("tracestate", "not a list")],
                true,
                "",
            ),
            (
                vec![("traceparent", &tp), ("tracestate", many.as_str())],
                true,
                "",
            ),
            // Two traceparents: ambiguous.
            (vec![("traceparent", &tp), ("traceparent", &tp)], false, ""),
            (vec![("traceparent", "00-bad")], false, ""),
            (vec![("tracestate", "a=1")], false, ""),
            (vec![], false, ""),
        ];
        for (pairs, found, state) in cases {
            let got = extract(&headers(&pairs));
            assert_eq!(got.is_some(), found, "{pairs:?}");
            if let Some(cx) = got {
                assert!(cx.is_remote());
                assert!(cx.is_sampled());
                assert_eq!(cx.trace_id().to_string(), TRACE);
                assert_eq!(cx.span_id().to_string(), SPAN);
                assert_eq!(cx.trace_state().header(), state, "{pairs:?}");
            }
        }
    }

    #[test]
    fn inject_writes_both_headers_and_replaces_old_ones() {
        let cx = SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(SPAN).unwrap(),
            TraceFlags::default(),
            false,
            TraceState::from_str("vendor=x").unwrap(),
        );
        let mut h = headers(&[("traceparent", "old"), ("tracestate", "old=1")]);
        inject_span_context(&cx, &mut h);
        assert_eq!(h[TRACEPARENT], format!("00-{TRACE}-{SPAN}-00").as_str());
        assert_eq!(h[TRACESTATE], "vendor=x");
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);

        let plain = SpanContext::new(
            cx.trace_id(),
            cx.span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        inject_span_context(&plain, &mut h);
        assert!(h.get(TRACESTATE).is_none());

        let mut empty = HeaderMap::new();
        inject_span_context(&SpanContext::empty_context(), &mut empty);
        assert!(empty.is_empty());
    }
}

//! Envoy's substitution formats: text holding `%OPERATOR%`s, or JSON whose
//! string values are such text. Compiled once; rendered per logged request.
//! A value that is one operator alone keeps its type in JSON (a number, or
//! `null` when unknown), as Envoy's JSON formatter does; in text an unknown
//! value is `-`.

use super::{Entry, HeaderSel, Headers};
use crate::config::CompileError;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use std::fmt::Write;

/// The operators weft's proxy knows, by Envoy's names (`Req` and `Resp`
/// hold the header and its alternative, and a maximum length).
#[derive(Debug, Clone)]
enum Op {
    StartTime,
    Duration,
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    Protocol,
    BytesReceived,
    BytesSent,
    Req(usize, Option<usize>, Option<usize>),
    Resp(http::HeaderName, Option<http::HeaderName>, Option<usize>),
    UpstreamHost,
    UpstreamCluster,
    UpstreamLocalAddress,
    UpstreamTransportFailureReason,
    DownstreamLocalAddress,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamPeerUriSan,
    RequestedServerName,
    RouteName,
    TraceId,
    ConnectionTerminationDetails,
}

const KNOWN: &str = "START_TIME, DURATION, RESPONSE_CODE, RESPONSE_CODE_DETAILS, RESPONSE_FLAGS, PROTOCOL, \
    BYTES_RECEIVED, BYTES_SENT, REQ(h?alt):N, RESP(h?alt):N, UPSTREAM_HOST, UPSTREAM_CLUSTER, \
    UPSTREAM_LOCAL_ADDRESS, UPSTREAM_TRANSPORT_FAILURE_REASON, DOWNSTREAM_LOCAL_ADDRESS, \
    DOWNSTREAM_REMOTE_ADDRESS, DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, DOWNSTREAM_DIRECT_REMOTE_ADDRESS, \
    DOWNSTREAM_PEER_URI_SAN, REQUESTED_SERVER_NAME, ROUTE_NAME, TRACE_ID, CONNECTION_TERMINATION_DETAILS";

#[derive(Debug, Clone)]
enum Piece {
    Text(Box<str>),
    Op(Op),
}

/// A string with operators in it.
#[derive(Debug, Clone)]
pub struct Template(Box<[Piece]>);

/// A JSON object's fields: each key already serialized with its colon,
/// and its value.
type Fields = Box<[(Box<str>, Json)]>;

#[derive(Debug, Clone)]
pub enum Json {
    Template(Template),
    /// A number, bool or null, already serialized.
    Literal(Box<str>),
    Object(Fields),
}

#[derive(Debug, Clone)]
pub enum Format {
    Text(Template),
    Json(Fields),
}

/// One operator's value for one request, borrowed or small: rendering a
/// line allocates nothing but the line.
enum Val<'a> {
    None,
    Num(u64),
    Str(&'a str),
    Addr(std::net::SocketAddr),
    Ip(std::net::IpAddr),
    Time(std::time::SystemTime),
}

impl Val<'_> {
    /// As text: raw, `-` when unknown.
    fn text(&self, out: &mut String) {
        match self {
            Val::None => out.push('-'),
            Val::Num(n) => out.push_str(itoa::Buffer::new().format(*n)),
            Val::Str(s) => out.push_str(s),
            Val::Addr(a) => push_addr(*a, out),
            Val::Ip(ip) => push_ip(*ip, out),
            Val::Time(t) => start_time(*t, out),
        }
    }

    /// As a JSON value: a number, a string, or null when unknown.
    fn json(&self, out: &mut String) {
        match self {
            Val::None => out.push_str("null"),
            Val::Num(n) => out.push_str(itoa::Buffer::new().format(*n)),
            Val::Str(s) => json_string(s, out),
            // Addresses and times need no escaping.
            other => {
                out.push('"');
                other.text(out);
                out.push('"');
            }
        }
    }
}

/// Envoy's default text format (a file logger with no format).
pub const DEFAULT_TEXT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
    %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
    \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

fn header_name(s: &str) -> Result<http::HeaderName, CompileError> {
    http::HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
        .map_err(|_| CompileError::new(format!("access log format: bad header name {s:?}")))
}

/// `h?alt` and an optional `:N` after the parenthesis.
fn header_args<'a>(args: &'a str, rest: &str) -> Result<(&'a str, Option<&'a str>, Option<usize>), CompileError> {
    let (main, alt) = match args.split_once('?') {
        Some((m, a)) => (m, Some(a)),
        None => (args, None),
    };
    let max = match rest.strip_prefix(':') {
        Some(n) => Some(n.parse().map_err(|_| CompileError::new(format!("access log format: bad length {n:?}")))?),
        None if rest.is_empty() => None,
        None => return Err(CompileError::new(format!("access log format: unexpected {rest:?} after an operator"))),
    };
    Ok((main, alt, max))
}

fn request_header(name: &str, headers: &mut Headers) -> Result<usize, CompileError> {
    let sel = match name.to_ascii_lowercase().as_str() {
        ":method" => HeaderSel::Method,
        ":path" => HeaderSel::Path,
        ":authority" | "host" => HeaderSel::Authority,
        ":scheme" => HeaderSel::Scheme,
        _ => HeaderSel::Header(header_name(name)?),
    };
    Ok(headers.index(sel))
}

fn op(token: &str, headers: &mut Headers) -> Result<Op, CompileError> {
    let (name, args, rest) = match token.split_once('(') {
        Some((name, tail)) => {
            let (args, rest) = tail
                .split_once(')')
                .ok_or_else(|| CompileError::new(format!("access log format: %{token}% has no closing parenthesis")))?;
            (name, Some(args), rest)
        }
        None => (token, None, ""),
    };
    let plain = |op: Op| match args {
        None => Ok(op),
        Some(_) => {
            Err(CompileError::new(format!("access log format: %{token}%: weft's proxy takes {name} without arguments")))
        }
    };
    match name {
        "REQ" | "RESP" => {
            let (main, alt, max) = header_args(args.unwrap_or_default(), rest)?;
            if name == "REQ" {
                let main = request_header(main, headers)?;
                let alt = alt.map(|a| request_header(a, headers)).transpose()?;
                Ok(Op::Req(main, alt, max))
            } else {
                Ok(Op::Resp(header_name(main)?, alt.map(header_name).transpose()?, max))
            }
        }
        "START_TIME" => plain(Op::StartTime),
        "DURATION" => plain(Op::Duration),
        "RESPONSE_CODE" => plain(Op::ResponseCode),
        "RESPONSE_CODE_DETAILS" => plain(Op::ResponseCodeDetails),
        "RESPONSE_FLAGS" => plain(Op::ResponseFlags),
        "PROTOCOL" => plain(Op::Protocol),
        "BYTES_RECEIVED" => plain(Op::BytesReceived),
        "BYTES_SENT" => plain(Op::BytesSent),
        "UPSTREAM_HOST" => plain(Op::UpstreamHost),
        "UPSTREAM_CLUSTER" => plain(Op::UpstreamCluster),
        "UPSTREAM_LOCAL_ADDRESS" => plain(Op::UpstreamLocalAddress),
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => plain(Op::UpstreamTransportFailureReason),
        "DOWNSTREAM_LOCAL_ADDRESS" => plain(Op::DownstreamLocalAddress),
        "DOWNSTREAM_REMOTE_ADDRESS" | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => plain(Op::DownstreamRemoteAddress),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => plain(Op::DownstreamRemoteAddressWithoutPort),
        "DOWNSTREAM_PEER_URI_SAN" => plain(Op::DownstreamPeerUriSan),
        "REQUESTED_SERVER_NAME" => plain(Op::RequestedServerName),
        "ROUTE_NAME" => plain(Op::RouteName),
        "TRACE_ID" => plain(Op::TraceId),
        "CONNECTION_TERMINATION_DETAILS" => plain(Op::ConnectionTerminationDetails),
        _ => {
            Err(CompileError::new(format!("access log format: weft's proxy does not know %{token}%; it knows {KNOWN}")))
        }
    }
}

impl Template {
    fn compile(s: &str, headers: &mut Headers) -> Result<Template, CompileError> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(at) = rest.find('%') {
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].into()));
            }
            let after = &rest[at + 1..];
            let end = after
                .find('%')
                .ok_or_else(|| CompileError::new(format!("access log format: a % without its closing % in {s:?}")))?;
            pieces.push(Piece::Op(op(&after[..end], headers)?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.into()));
        }
        Ok(Template(pieces.into()))
    }

    /// The single operator this template is, if it is one alone.
    fn alone(&self) -> Option<&Op> {
        match &*self.0 {
            [Piece::Op(op)] => Some(op),
            _ => None,
        }
    }

    fn text(&self, e: &Entry, out: &mut String) {
        for piece in &*self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Op(op) => value(op, e).text(out),
            }
        }
    }
}

/// An IPv4 address by its octets: `Display` through `fmt` costs several
/// times as much, three times a line.
fn push_ip(ip: std::net::IpAddr, out: &mut String) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(n.format(o));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_addr(a: std::net::SocketAddr, out: &mut String) {
    match a {
        std::net::SocketAddr::V4(v4) => {
            push_ip(std::net::IpAddr::V4(*v4.ip()), out);
            out.push(':');
            out.push_str(itoa::Buffer::new().format(v4.port()));
        }
        std::net::SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// `s` as a JSON string (RFC 8259: quote, backslash and control
/// characters escaped), written in place. Every byte to escape is ASCII,
/// never inside a multi-byte character, and most values have none: eight
/// bytes at a time are checked for one, and runs without are copied whole.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if let Some(word) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !may_need_escape(w) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        if c == b'"' || c == b'\\' || c < b' ' {
            out.push_str(&s[start..i]);
            match c {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                c => {
                    let _ = write!(out, "\\u{:04x}", c);
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether one of the eight bytes of `w` may be a quote, a backslash or
/// below a space (never false when one is: the bytes are then looked at
/// one by one).
fn may_need_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    (below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1)) != 0
}

fn json_value(v: &Value, headers: &mut Headers) -> Result<Json, CompileError> {
    Ok(match &v.kind {
        Some(Kind::StringValue(s)) => Json::Template(Template::compile(s, headers)?),
        Some(Kind::NumberValue(n)) => Json::Literal(n.to_string().into()),
        Some(Kind::BoolValue(b)) => Json::Literal(b.to_string().into()),
        Some(Kind::NullValue(_)) | None => Json::Literal("null".into()),
        Some(Kind::StructValue(s)) => Json::Object(json_object(s, headers)?),
        Some(Kind::ListValue(_)) => {
            return Err(CompileError::new("access log json_format: a list is not a value Envoy's formatter takes"));
        }
    })
}

fn json_object(s: &Struct, headers: &mut Headers) -> Result<Fields, CompileError> {
    // Sorted, as Envoy prints them.
    let mut fields: Vec<_> = s.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        let mut key = String::new();
        json_string(k, &mut key);
        key.push(':');
        out.push((key.into(), json_value(v, headers)?));
    }
    Ok(out.into())
}

fn write_json(fields: &[(Box<str>, Json)], e: &Entry, out: &mut String) {
    out.push('{');
    for (i, (key, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        match v {
            Json::Literal(l) => out.push_str(l),
            Json::Object(o) => write_json(o, e, out),
            Json::Template(t) => match t.alone() {
                Some(op) => value(op, e).json(out),
                None => {
                    let mut s = String::new();
                    t.text(e, &mut s);
                    json_string(&s, out);
                }
            },
        }
    }
    out.push('}');
}

impl Format {
    pub fn text(s: &str, headers: &mut Headers) -> Result<Format, CompileError> {
        Ok(Format::Text(Template::compile(s, headers)?))
    }

    pub fn json(s: &Struct, headers: &mut Headers) -> Result<Format, CompileError> {
        Ok(Format::Json(json_object(s, headers)?))
    }

    /// The line for `e`, with its newline.
    #[cfg(test)]
    pub fn render(&self, e: &Entry) -> String {
        let mut out = String::with_capacity(1024);
        self.render_into(e, &mut out);
        out
    }

    /// Appends the line for `e`, with its newline, to `out`.
    pub fn render_into(&self, e: &Entry, out: &mut String) {
        match self {
            Format::Text(t) => t.text(e, out),
            Format::Json(fields) => write_json(fields, e, out),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
}

/// `2026-12-04T23:39:11.123Z`: Envoy's default START_TIME. The date and
/// time to the second are made once a second per thread (Envoy caches them
/// too); the milliseconds are added each time.
fn start_time(t: std::time::SystemTime, out: &mut String) {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = t.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(secs, text)| {
        if *secs != since.as_secs() {
            let d = time::OffsetDateTime::from(t);
            text.clear();
            let (y, mo, day, h, mi, s) = (d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second());
            let _ = write!(text, "{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}");
            *secs = since.as_secs();
        }
        out.push_str(text);
    });
    let ms = since.subsec_millis();
    out.push('.');
    out.push(char::from(b'0' + (ms / 100) as u8));
    out.push(char::from(b'0' + (ms / 10 % 10) as u8));
    out.push(char::from(b'0' + (ms % 10) as u8));
    out.push('Z');
}

fn truncated(s: &str, max: Option<usize>) -> &str {
    match max.and_then(|m| s.char_indices().nth(m)) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn value<'a>(op: &Op, e: &'a Entry) -> Val<'a> {
    let str_of = |s: Option<&'a str>| s.map_or(Val::None, Val::Str);
    let addr = |a: Option<std::net::SocketAddr>| a.map_or(Val::None, Val::Addr);
    match op {
        Op::StartTime => Val::Time(e.start),
        Op::Duration => Val::Num(e.duration.as_millis() as u64),
        Op::ResponseCode => Val::Num(u64::from(e.code)),
        Op::ResponseCodeDetails => str_of(e.details),
        Op::ResponseFlags => Val::Str(e.flags),
        Op::Protocol => str_of(e.protocol),
        Op::BytesReceived => Val::Num(e.bytes_received),
        Op::BytesSent => Val::Num(e.bytes_sent),
        Op::Req(main, alt, max) => {
            let req = e.request;
            let v = req.and_then(|r| r.get(*main)).or_else(|| alt.and_then(|a| req.and_then(|r| r.get(a))));
            str_of(v.map(|v| truncated(v, *max)))
        }
        Op::Resp(main, alt, max) => {
            let get = |n: &http::HeaderName| e.response.and_then(|h| h.get(n));
            let v = get(main).or_else(|| alt.as_ref().and_then(get)).and_then(|v| v.to_str().ok());
            str_of(v.map(|v| truncated(v, *max)))
        }
        Op::UpstreamHost => addr(e.upstream_host),
        Op::UpstreamCluster => str_of(e.upstream_cluster),
        Op::UpstreamLocalAddress | Op::UpstreamTransportFailureReason | Op::ConnectionTerminationDetails => Val::None,
        Op::DownstreamLocalAddress => Val::Addr(e.downstream_local),
        Op::DownstreamRemoteAddress => Val::Addr(e.downstream_remote),
        Op::DownstreamRemoteAddressWithoutPort => Val::Ip(e.downstream_remote.ip()),
        Op::DownstreamPeerUriSan => str_of(e.peer_identity),
        Op::RequestedServerName => str_of(e.server_name),
        Op::RouteName => str_of(e.route_name),
        Op::TraceId => str_of(e.trace_id),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_escape_what_json_requires_and_read_back_the_same() {
        let long = "a long value with \"quotes\" here, a \\ there, a\ttab and ünïcødé after sixteen bytes\n";
        for s in ["plain", "a \"quoted\" \\ path", "tab\tnew\nline\r", "bell\u{7} nul\u{0}", "ünïcødé ✓", "", long]
        {
            let mut out = String::new();
            super::json_string(s, &mut out);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
        }
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        for a in ["127.0.0.1:80", "10.255.0.9:65535", "0.0.0.0:0", "[::1]:8080", "[fe80::1%2]:1"] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            let mut out = String::new();
            super::push_addr(a, &mut out);
            assert_eq!(out, a.to_string());
        }
    }

    #[test]
    fn start_times_have_milliseconds_and_follow_the_second() {
        let at = |ms: u64| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let mut out = String::new();
        super::start_time(at(1_780_000_000_007), &mut out);
        out.push(' ');
        super::start_time(at(1_780_000_001_999), &mut out);
        assert_eq!(out, "2026-05-28T20:26:40.007Z 2026-05-28T20:26:41.999Z");
    }
}

//! Envoy's substitution formats: text holding `%OPERATOR%`s, or JSON whose
//! string values are such text. Compiled once; rendered per logged request.
//! A value that is one operator alone keeps its type in JSON (a number, or
//! `null` when unknown), as Envoy's JSON formatter does; in text an unknown
//! value is `-`.

use super::write;
use super::{Entry, HeaderSel, Headers, Sel};
use crate::config::CompileError;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

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
    Req(Sel, Option<Sel>, Option<usize>),
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

/// A compiled line: literal runs and values, in order, JSON's keys and
/// punctuation folded into the literals between its values.
#[derive(Debug, Clone)]
enum Part {
    Lit(Box<str>),
    /// An operator's value as text (`-` when unknown).
    Text(Op),
    /// An operator's value as a JSON value (`null` when unknown).
    Json(Op),
    /// A template's text as one JSON string.
    Quoted(Template),
}

#[derive(Debug, Clone)]
pub struct Format(Box<[Part]>);

/// Builds a `Format`, joining adjacent literals.
#[derive(Default)]
struct Parts(Vec<Part>);

impl Parts {
    fn lit(&mut self, s: &str) {
        match self.0.last_mut() {
            Some(Part::Lit(l)) => *l = format!("{l}{s}").into(),
            _ => self.0.push(Part::Lit(s.into())),
        }
    }

    /// The line ends with a newline, as Envoy's do.
    fn done(mut self) -> Format {
        if !matches!(self.0.last(), Some(Part::Lit(l)) if l.ends_with('\n')) {
            self.lit("\n");
        }
        Format(self.0.into())
    }
}

/// One operator's value for one request, borrowed or small: rendering a
/// line allocates nothing but the line.
enum Val<'a> {
    None,
    Num(u64),
    Str(&'a str),
    /// Text known to need no JSON escape (a protocol, hex digits, response flags).
    Plain(&'a str),
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
            Val::Plain(s) => out.push_str(s),
            Val::Addr(a) => write::push_addr(*a, out),
            Val::Ip(ip) => write::push_ip(*ip, out),
            Val::Time(t) => write::start_time(*t, out),
        }
    }

    /// As a JSON value: a number, a string, or null when unknown.
    fn json(&self, out: &mut String) {
        match self {
            Val::None => out.push_str("null"),
            Val::Num(n) => out.push_str(itoa::Buffer::new().format(*n)),
            Val::Str(s) => write::json_string(s, out),
            // Addresses, times and plain values need no escaping.
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

fn request_header(name: &str, headers: &mut Headers) -> Result<Sel, CompileError> {
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

    /// As text: its pieces, an operator known to be unknown as `-`.
    fn text_parts(&self, parts: &mut Parts) {
        for piece in &*self.0 {
            match piece {
                Piece::Text(t) => parts.lit(t),
                Piece::Op(op) if op.never_known() => parts.lit("-"),
                Piece::Op(op) => parts.0.push(Part::Text(op.clone())),
            }
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

impl Op {
    /// Values weft's proxy never has: written as literals when compiled.
    fn never_known(&self) -> bool {
        matches!(self, Op::UpstreamLocalAddress | Op::UpstreamTransportFailureReason | Op::ConnectionTerminationDetails)
    }
}

fn json_value(v: &Value, headers: &mut Headers, parts: &mut Parts) -> Result<(), CompileError> {
    match &v.kind {
        Some(Kind::StringValue(s)) => {
            let t = Template::compile(s, headers)?;
            match &*t.0 {
                [Piece::Op(op)] if op.never_known() => parts.lit("null"),
                [Piece::Op(op)] => parts.0.push(Part::Json(op.clone())),
                [] => parts.lit("\"\""),
                [Piece::Text(text)] => {
                    let mut quoted = String::new();
                    write::json_string(text, &mut quoted);
                    parts.lit(&quoted);
                }
                _ => parts.0.push(Part::Quoted(t)),
            }
        }
        Some(Kind::NumberValue(n)) => parts.lit(&n.to_string()),
        Some(Kind::BoolValue(b)) => parts.lit(&b.to_string()),
        Some(Kind::NullValue(_)) | None => parts.lit("null"),
        Some(Kind::StructValue(s)) => json_object(s, headers, parts)?,
        Some(Kind::ListValue(_)) => {
            return Err(CompileError::new("access log json_format: a list is not a value Envoy's formatter takes"));
        }
    }
    Ok(())
}

fn json_object(s: &Struct, headers: &mut Headers, parts: &mut Parts) -> Result<(), CompileError> {
    // Sorted, as Envoy prints them.
    let mut fields: Vec<_> = s.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    parts.lit("{");
    for (i, (k, v)) in fields.into_iter().enumerate() {
        let mut key = String::from(if i > 0 { "," } else { "" });
        write::json_string(k, &mut key);
        key.push(':');
        parts.lit(&key);
        json_value(v, headers, parts)?;
    }
    parts.lit("}");
    Ok(())
}

impl Format {
    pub fn text(s: &str, headers: &mut Headers) -> Result<Format, CompileError> {
        let mut parts = Parts::default();
        Template::compile(s, headers)?.text_parts(&mut parts);
        Ok(parts.done())
    }

    pub fn json(s: &Struct, headers: &mut Headers) -> Result<Format, CompileError> {
        let mut parts = Parts::default();
        json_object(s, headers, &mut parts)?;
        Ok(parts.done())
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
        for part in &*self.0 {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Json(op) => value(op, e).json(out),
                Part::Text(op) => value(op, e).text(out),
                Part::Quoted(t) => {
                    let mut s = String::new();
                    t.text(e, &mut s);
                    write::json_string(&s, out);
                }
            }
        }
    }
}

fn truncated(s: &str, max: Option<usize>) -> &str {
    match max.and_then(|m| s.char_indices().nth(m)) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[inline(always)]
fn value<'a>(op: &Op, e: &'a Entry) -> Val<'a> {
    let str_of = |s: Option<&'a str>| s.map_or(Val::None, Val::Str);
    let addr = |a: Option<std::net::SocketAddr>| a.map_or(Val::None, Val::Addr);
    match op {
        Op::StartTime => Val::Time(e.start),
        Op::Duration => Val::Num(e.duration.as_millis() as u64),
        Op::ResponseCode => Val::Num(u64::from(e.code)),
        Op::ResponseCodeDetails => str_of(e.details),
        Op::ResponseFlags => Val::Plain(e.flags),
        Op::Protocol => e.protocol.map_or(Val::None, Val::Plain),
        Op::BytesReceived => Val::Num(e.bytes_received),
        Op::BytesSent => Val::Num(e.bytes_sent),
        Op::Req(main, alt, max) => {
            let req = e.request;
            let v = req.and_then(|r| r.get(*main)).or_else(|| alt.and_then(|a| req.and_then(|r| r.get(a))));
            str_of(v.map(|v| truncated(v, *max)))
        }
        Op::Resp(main, alt, max) => {
            // A response has few headers: comparing names costs less than hashing one.
            let get = |n: &http::HeaderName| e.response.and_then(|h| h.iter().find(|(k, _)| *k == n)).map(|(_, v)| v);
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
        Op::TraceId => e.trace_id.map_or(Val::None, Val::Plain),
    }
}

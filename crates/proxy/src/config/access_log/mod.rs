//! Access logs compiled from a connection manager's or TCP proxy's
//! `access_log`: Envoy's file logger (a path, `/dev/stdout` for Istio's
//! default), its format (text or JSON with Envoy's operators) and filter.
//! A listener's logs share what they read from requests: the headers are
//! captured once, before the request moves on, and only when it logs.

mod filter;
mod format;
mod write;

use super::CompileError;
use super::matcher::{HeaderMatch, RequestView};
use crate::telemetry::access_log::{Sink, Sinks};
use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format as Substitution;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
use filter::Filter;
use format::Format;
use http::HeaderValue;
use prost::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A request value a format or filter reads.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderSel {
    Method,
    Path,
    Authority,
    Scheme,
    Header(http::HeaderName),
}

/// Where a captured request value is: the request line, or a captured
/// header by its index in `Headers::names` (`Authority` holds `host`'s,
/// for a request whose URI has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sel {
    Method,
    Path,
    Authority(usize),
    Scheme,
    Header(usize),
}

/// What a listener's logs read from requests: header values and tests.
#[derive(Debug, Default)]
pub struct Headers {
    names: Vec<http::HeaderName>,
    tests: Vec<HeaderMatch>,
}

impl Headers {
    fn slot(&mut self, name: http::HeaderName) -> usize {
        match self.names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.names.len() - 1
            }
        }
    }

    fn index(&mut self, sel: HeaderSel) -> Sel {
        match sel {
            HeaderSel::Method => Sel::Method,
            HeaderSel::Path => Sel::Path,
            HeaderSel::Authority => Sel::Authority(self.slot(http::header::HOST)),
            HeaderSel::Scheme => Sel::Scheme,
            HeaderSel::Header(name) => Sel::Header(self.slot(name)),
        }
    }
}

/// One log: where, in what format, and which requests.
#[derive(Debug)]
struct Log {
    sink: Arc<Sink>,
    format: Format,
    filter: Option<Filter>,
}

/// A listener's access logs.
#[derive(Debug)]
pub struct AccessLogs {
    logs: Box<[Log]>,
    headers: Headers,
}

/// A request's values the logs read, taken as it arrives: its method and
/// URI (cheap clones) and the headers the logs name, held inline.
pub struct Captured {
    method: http::Method,
    uri: http::Uri,
    /// By `Headers::names`' index.
    values: smallvec::SmallVec<[Option<HeaderValue>; 6]>,
    tests: u64,
    /// The route it took, once routed.
    pub route: Option<Arc<str>>,
}

impl Captured {
    fn get(&self, sel: Sel) -> Option<&str> {
        let header = |i: usize| self.values.get(i)?.as_ref()?.to_str().ok();
        match sel {
            Sel::Method => Some(self.method.as_str()),
            Sel::Path => self.uri.path_and_query().map(|p| p.as_str()),
            Sel::Authority(host) => self.uri.authority().map(|a| a.as_str()).or_else(|| header(host)),
            Sel::Scheme => Some(self.uri.scheme_str().unwrap_or("http")),
            Sel::Header(i) => header(i),
        }
    }
}

/// What is known about a request (or TCP connection) when it ends.
pub struct Entry<'a> {
    pub start: SystemTime,
    pub duration: Duration,
    /// `HTTP/1.1` or `HTTP/2`; none for TCP.
    pub protocol: Option<&'static str>,
    /// 0 for TCP, as Envoy's.
    pub code: u16,
    pub details: Option<&'a str>,
    /// Envoy's response flags (`-` for none).
    pub flags: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub request: Option<&'a Captured>,
    pub response: Option<&'a http::HeaderMap>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<&'a str>,
    pub downstream_local: SocketAddr,
    pub downstream_remote: SocketAddr,
    pub server_name: Option<&'a str>,
    pub route_name: Option<&'a str>,
    pub peer_identity: Option<&'a str>,
    pub trace_id: Option<&'a str>,
}

fn compile_one(al: &AccessLog, headers: &mut Headers, sinks: &Sinks) -> Result<Log, CompileError> {
    let Some(access_log::ConfigType::TypedConfig(any)) = &al.config_type else {
        return Err(CompileError::new(format!("access log {:?} needs a typed config", al.name)));
    };
    if !any.type_url.ends_with("envoy.extensions.access_loggers.file.v3.FileAccessLog") {
        return Err(CompileError::new(format!(
            "access log {:?}: {} is not supported; weft's proxy writes Envoy's file access log (FileAccessLog)",
            al.name, any.type_url
        )));
    }
    let file = FileAccessLog::decode(any.value.as_slice()).map_err(|e| CompileError::new(e.to_string()))?;
    let format = match &file.access_log_format {
        None => Format::text(format::DEFAULT_TEXT, headers)?,
        Some(file_access_log::AccessLogFormat::LogFormat(sfs)) => match &sfs.format {
            #[allow(deprecated)]
            Some(Substitution::TextFormat(t)) => Format::text(t, headers)?,
            Some(Substitution::JsonFormat(j)) => Format::json(j, headers)?,
            Some(Substitution::TextFormatSource(src)) => {
                use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
                let text = match &src.specifier {
                    Some(Specifier::InlineString(t)) => t.clone(),
                    Some(Specifier::InlineBytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => {
                        return Err(CompileError::new(
                            "access log format: text_format_source must be inline (inline_string or inline_bytes)",
                        ));
                    }
                };
                Format::text(&text, headers)?
            }
            None => return Err(CompileError::new("access log format: give text_format_source or json_format")),
        },
        #[allow(deprecated)]
        Some(file_access_log::AccessLogFormat::Format(t)) => Format::text(t, headers)?,
        #[allow(deprecated)]
        Some(file_access_log::AccessLogFormat::JsonFormat(j)) => Format::json(j, headers)?,
        Some(_) => return Err(CompileError::new("access log format: give text_format or json_format")),
    };
    let filter = al.filter.as_ref().map(|f| Filter::compile(f, headers)).transpose()?;
    let sink = sinks
        .open(&file.path)
        .map_err(|e| CompileError::new(format!("access log {:?}: cannot open {:?}: {e}", al.name, file.path)))?;
    Ok(Log { sink, format, filter })
}

impl AccessLogs {
    /// None when there are none.
    pub fn compile(logs: &[AccessLog], sinks: &Sinks) -> Result<Option<Box<AccessLogs>>, CompileError> {
        if logs.is_empty() {
            return Ok(None);
        }
        let mut headers = Headers::default();
        let logs = logs.iter().map(|l| compile_one(l, &mut headers, sinks)).collect::<Result<_, _>>()?;
        Ok(Some(Box::new(AccessLogs { logs, headers })))
    }

    /// Takes what the logs read from a request as it arrives, and the
    /// headers the proxy adds for the next hop (`extra`, each when set).
    pub fn capture(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        extra: &[(http::HeaderName, Option<&HeaderValue>)],
    ) -> Box<Captured> {
        let names = &self.headers.names;
        let mut values: smallvec::SmallVec<[Option<HeaderValue>; 6]> = smallvec::smallvec![None; names.len()];
        // One pass over the request's headers, the first value of each
        // name: names compare cheaply, where each lookup would hash.
        let mut left = names.len();
        let added = extra.iter().filter_map(|(n, v)| Some((n, (*v)?)));
        for (name, value) in headers.iter().chain(added) {
            if left == 0 {
                break;
            }
            for (n, slot) in names.iter().zip(values.iter_mut()) {
                if slot.is_none() && n == name {
                    *slot = Some(value.clone());
                    left -= 1;
                }
            }
        }
        let mut tests = 0u64;
        if !self.headers.tests.is_empty() {
            let view = RequestView {
                method,
                authority: super::matcher::authority_of(uri, headers).unwrap_or(""),
                scheme: uri.scheme_str().unwrap_or("http"),
                path: uri.path(),
                query: uri.query(),
                headers,
            };
            for (i, t) in self.headers.tests.iter().enumerate() {
                tests |= u64::from(t.matches(&view)) << i;
            }
        }
        Box::new(Captured { method: method.clone(), uri: uri.clone(), values, tests, route: None })
    }

    /// Writes `e` to each log whose filter takes it.
    pub fn log(&self, e: &Entry) {
        let tests = e.request.map_or(0, |r| r.tests);
        for log in &*self.logs {
            if log.filter.as_ref().is_none_or(|f| f.matches(e, tests)) {
                // Rendered into this thread's buffer: a line allocates nothing.
                LINE.with_borrow_mut(|line| {
                    line.clear();
                    log.format.render_into(e, line);
                    log.sink.offer(line.as_bytes());
                });
            }
        }
    }
}

thread_local! {
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(1024));
}

#[cfg(test)]
mod tests;

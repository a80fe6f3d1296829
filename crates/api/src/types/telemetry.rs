//! Istio's `Telemetry` (telemetry.istio.io): access logging per mesh
//! (root namespace), namespace or workload, the most specific winning; and
//! the filter expression weft understands, a documented subset of CEL that
//! Envoy's own access log filters can express.

use super::{PolicyTargetRef, WorkloadSelector};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<PolicyTargetRef>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetRef>,
    #[serde(default)]
    pub access_logging: Vec<AccessLogging>,
    #[serde(default)]
    pub tracing: Vec<TracingSpec>,
    #[serde(default)]
    pub metrics: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    pub disabled: Option<bool>,
    pub filter: Option<LogFilterSpec>,
    #[serde(rename = "match")]
    pub match_: Option<WorkloadMatch>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Percent of requests sampled when the caller did not decide.
    pub random_sampling_percentage: Option<f64>,
    /// Decide and propagate, report no span.
    pub disable_span_reporting: Option<bool>,
    #[serde(default)]
    pub custom_tags: BTreeMap<String, CustomTag>,
    #[serde(rename = "match")]
    pub match_: Option<WorkloadMatch>,
    pub use_request_id_for_trace_sampling: Option<bool>,
}

/// A span attribute an operator adds: one of `literal`, `environment`, `header`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomTag {
    pub literal: Option<LiteralTag>,
    pub environment: Option<NamedTag>,
    pub header: Option<NamedTag>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct LiteralTag {
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamedTag {
    pub name: String,
    pub default_value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProviderRef {
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogFilterSpec {
    pub expression: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct WorkloadMatch {
    /// `CLIENT_AND_SERVER` (the default), `CLIENT` or `SERVER`.
    pub mode: Option<String>,
}

/// Which side of a proxy's traffic: Istio's `WorkloadMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Outbound requests (a sidecar's outbound listeners; a gateway's).
    Client,
    /// Inbound requests (a sidecar's inbound listeners).
    Server,
}

impl WorkloadMatch {
    /// Whether `side` is matched; `Err` names an unknown mode.
    pub fn takes(&self, side: Side) -> Result<bool, &str> {
        match self.mode.as_deref().unwrap_or("CLIENT_AND_SERVER") {
            "CLIENT_AND_SERVER" => Ok(true),
            "CLIENT" => Ok(side == Side::Client),
            "SERVER" => Ok(side == Side::Server),
            other => Err(other),
        }
    }
}

/// A comparison: `==`, `!=`, `>=`, `>`, `<=`, `<`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFilter {
    /// `response.code <op> N`.
    Code(CmpOp, u32),
    /// `response.duration <op> duration("…")`, in milliseconds.
    Duration(CmpOp, u32),
    /// `request.headers['name'] == 'v'` (`!=` when the bool is false).
    Header(String, String, bool),
    /// `has(request.headers.name)` or `'name' in request.headers`.
    HasHeader(String),
    Not(Box<LogFilter>),
    And(Box<LogFilter>, Box<LogFilter>),
    Or(Box<LogFilter>, Box<LogFilter>),
}

/// What the filter expression may say, for error messages.
pub const FILTER_SUBSET: &str = "response.code and response.duration compared with ==, !=, <, <=, >, >= \
     (response.duration to duration(\"250ms\")), request.headers['name'] == or != 'value', \
     has(request.headers.name), combined with &&, ||, ! and parentheses";

/// Parses a filter expression of weft's subset.
pub fn parse_filter(expr: &str) -> Result<LogFilter, String> {
    let tokens = lex(expr)?;
    let mut p = Parser { tokens: &tokens, at: 0 };
    let f = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(f),
        Some(t) => Err(format!("unexpected {t} after a complete expression")),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(u64),
    Op(&'static str),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Ident(i) => write!(f, "`{i}`"),
            Tok::Str(s) => write!(f, "the string '{s}'"),
            Tok::Num(n) => write!(f, "`{n}`"),
            Tok::Op(o) => write!(f, "`{o}`"),
        }
    }
}

/// A token as an error shows it, or the expression's end.
fn shown(t: Option<&Tok>) -> String {
    t.map_or_else(|| "the end of the expression".to_owned(), Tok::to_string)
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Ident(s[start..i].to_owned()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Num(s[start..i].parse().map_err(|_| format!("number {} is too large", &s[start..i]))?));
        } else if c == '\'' || c == '"' {
            let end = s[i + 1..].find(c).ok_or_else(|| format!("a string opened at column {} is not closed", i + 1))?;
            out.push(Tok::Str(s[i + 1..i + 1 + end].to_owned()));
            i += end + 2;
        } else {
            let op = ["&&", "||", "==", "!=", ">=", "<=", ">", "<", "!", "(", ")", "[", "]"]
                .into_iter()
                .find(|op| s[i..].starts_with(op))
                .ok_or_else(|| format!("unexpected {c:?} at column {}", i + 1))?;
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Tok],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) { Ok(()) } else { Err(format!("expected `{op}`, found {}", shown(self.peek()))) }
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.peek().cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<LogFilter, String> {
        let mut f = self.and()?;
        while self.eat("||") {
            f = LogFilter::Or(Box::new(f), Box::new(self.and()?));
        }
        Ok(f)
    }

    fn and(&mut self) -> Result<LogFilter, String> {
        let mut f = self.unary()?;
        while self.eat("&&") {
            f = LogFilter::And(Box::new(f), Box::new(self.unary()?));
        }
        Ok(f)
    }

    fn unary(&mut self) -> Result<LogFilter, String> {
        if self.eat("!") {
            return Ok(LogFilter::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let f = self.or()?;
            self.expect(")")?;
            return Ok(f);
        }
        self.term()
    }

    fn cmp(&mut self) -> Result<CmpOp, String> {
        let op = match self.next() {
            Some(Tok::Op("==")) => CmpOp::Eq,
            Some(Tok::Op("!=")) => CmpOp::Ne,
            Some(Tok::Op(">=")) => CmpOp::Ge,
            Some(Tok::Op(">")) => CmpOp::Gt,
            Some(Tok::Op("<=")) => CmpOp::Le,
            Some(Tok::Op("<")) => CmpOp::Lt,
            other => return Err(format!("expected a comparison, found {}", shown(other.as_ref()))),
        };
        Ok(op)
    }

    fn term(&mut self) -> Result<LogFilter, String> {
        match self.next() {
            Some(Tok::Ident(id)) if id == "response.code" => {
                let op = self.cmp()?;
                match self.next() {
                    Some(Tok::Num(n)) if n <= 999 => Ok(LogFilter::Code(op, n as u32)),
                    other => Err(format!("response.code compares with a status code, found {}", shown(other.as_ref()))),
                }
            }
            Some(Tok::Ident(id)) if id == "response.duration" => {
                let op = self.cmp()?;
                let ok = matches!(self.next(), Some(Tok::Ident(f)) if f == "duration") && self.eat("(");
                let Some(Tok::Str(d)) = self.next().filter(|_| ok) else {
                    return Err("response.duration compares with duration(\"250ms\")".into());
                };
                self.expect(")")?;
                let ms = crate::types::Duration::parse(&d).map_err(|e| format!("duration({d:?}): {e}"))?.0.as_millis();
                Ok(LogFilter::Duration(op, u32::try_from(ms).map_err(|_| format!("duration({d:?}) is too long"))?))
            }
            Some(Tok::Ident(id)) if id == "request.headers" => {
                self.expect("[")?;
                let Some(Tok::Str(name)) = self.next() else { return Err("request.headers['name']".into()) };
                self.expect("]")?;
                let eq = match self.cmp()? {
                    CmpOp::Eq => true,
                    CmpOp::Ne => false,
                    _ => return Err("a header compares with == or !=".into()),
                };
                let Some(Tok::Str(v)) = self.next() else { return Err("a header compares with a 'string'".into()) };
                Ok(LogFilter::Header(name.to_ascii_lowercase(), v, eq))
            }
            Some(Tok::Ident(id)) if id == "has" => {
                self.expect("(")?;
                let name = match self.next() {
                    Some(Tok::Ident(p)) => p.strip_prefix("request.headers.").map(str::to_owned),
                    _ => None,
                };
                self.expect(")")?;
                name.map(|n| LogFilter::HasHeader(n.replace('_', "-").to_ascii_lowercase()))
                    .ok_or_else(|| "has() takes request.headers.<name>".into())
            }
            Some(Tok::Str(name)) if matches!(self.peek(), Some(Tok::Ident(i)) if i == "in") => {
                self.at += 1;
                match self.next() {
                    Some(Tok::Ident(h)) if h == "request.headers" => {
                        Ok(LogFilter::HasHeader(name.to_ascii_lowercase()))
                    }
                    _ => Err("`'name' in` takes request.headers".into()),
                }
            }
            Some(t) => Err(format!("{t} is not in weft's filter subset")),
            None => Err("the expression ends too soon".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset_with_cel_precedence() {
        use LogFilter::*;
        assert_eq!(parse_filter("response.code >= 400").unwrap(), Code(CmpOp::Ge, 400));
        assert_eq!(
            parse_filter("response.code >= 500 || response.code == 0 && !has(request.headers.x_debug)").unwrap(),
            Or(
                Box::new(Code(CmpOp::Ge, 500)),
                Box::new(And(Box::new(Code(CmpOp::Eq, 0)), Box::new(Not(Box::new(HasHeader("x-debug".into()))))))
            )
        );
        assert_eq!(parse_filter("response.duration > duration(\"1s\")").unwrap(), Duration(CmpOp::Gt, 1000));
        assert_eq!(
            parse_filter("(request.headers['X-Canary'] != 'yes')").unwrap(),
            Header("x-canary".into(), "yes".into(), false)
        );
        assert_eq!(parse_filter("'x-b3' in request.headers").unwrap(), HasHeader("x-b3".into()));
    }

    #[test]
    fn refuses_what_it_cannot_express_and_says_where() {
        for bad in [
            "response.code >= '400'",
            "response.code >=",
            "request.url_path.startsWith('/x')",
            "response.code >= 400 )",
            "request.headers['a'] > 'b'",
            "'unclosed",
            "xds.cluster_name == 'a'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        let e = parse_filter("response.code >= '400'").unwrap_err();
        assert_eq!(e, "response.code compares with a status code, found the string '400'");
        assert_eq!(
            parse_filter("response.code >=").unwrap_err(),
            "response.code compares with a status code, found the end of the expression"
        );
    }
}

//! Envoy's access log filters, the ones a request's outcome decides:
//! status code, duration, response flags, request headers, and their
//! `and`/`or`. A header condition is tested when the request arrives
//! (its headers move on with it) and kept as one bit.

use super::{Entry, Headers};
use crate::config::CompileError;
use crate::config::matcher::HeaderMatch;
use envoy_types::pb::envoy::config::accesslog::v3::{AccessLogFilter, ComparisonFilter, access_log_filter};

#[derive(Debug, Clone, Copy)]
pub enum Cmp {
    Eq,
    Ge,
    Le,
}

#[derive(Debug, Clone)]
pub enum Filter {
    Status(Cmp, u64),
    /// Milliseconds.
    Duration(Cmp, u64),
    /// Any of these flags; any flag at all when empty.
    Flags(Box<[Box<str>]>),
    /// The request header test at this bit.
    Header(u32),
    /// Health checks never reach weft's proxy as requests: always true.
    NotHealthCheck,
    And(Box<[Filter]>),
    Or(Box<[Filter]>),
}

/// Header conditions a listener's filters may test, at most 64.
pub const MAX_HEADER_TESTS: usize = 64;

fn comparison(c: &Option<ComparisonFilter>, what: &str) -> Result<(Cmp, u64), CompileError> {
    let c = c.as_ref().ok_or_else(|| CompileError::new(format!("access log {what} filter needs a comparison")))?;
    let op = match c.op {
        0 => Cmp::Eq,
        1 => Cmp::Ge,
        2 => Cmp::Le,
        n => return Err(CompileError::new(format!("access log {what} filter: unknown operator {n}"))),
    };
    Ok((op, u64::from(c.value.as_ref().map_or(0, |v| v.default_value))))
}

impl Filter {
    pub fn compile(f: &AccessLogFilter, headers: &mut Headers) -> Result<Filter, CompileError> {
        use access_log_filter::FilterSpecifier as F;
        let all = |fs: &[AccessLogFilter], headers: &mut Headers| -> Result<Box<[Filter]>, CompileError> {
            fs.iter().map(|f| Filter::compile(f, headers)).collect()
        };
        Ok(match &f.filter_specifier {
            Some(F::StatusCodeFilter(s)) => {
                let (op, v) = comparison(&s.comparison, "status code")?;
                Filter::Status(op, v)
            }
            Some(F::DurationFilter(d)) => {
                let (op, v) = comparison(&d.comparison, "duration")?;
                Filter::Duration(op, v)
            }
            Some(F::ResponseFlagFilter(r)) => Filter::Flags(r.flags.iter().map(|f| f.as_str().into()).collect()),
            Some(F::HeaderFilter(h)) => {
                let m =
                    h.header.as_ref().ok_or_else(|| CompileError::new("access log header filter needs a header"))?;
                if headers.tests.len() == MAX_HEADER_TESTS {
                    return Err(CompileError::new(format!(
                        "access log filters test more than {MAX_HEADER_TESTS} headers"
                    )));
                }
                headers.tests.push(HeaderMatch::compile(m)?);
                Filter::Header(headers.tests.len() as u32 - 1)
            }
            Some(F::NotHealthCheckFilter(_)) => Filter::NotHealthCheck,
            Some(F::AndFilter(a)) => Filter::And(all(&a.filters, headers)?),
            Some(F::OrFilter(o)) => Filter::Or(all(&o.filters, headers)?),
            Some(other) => {
                let name = format!("{other:?}");
                let name = name.split('(').next().unwrap_or("?");
                return Err(CompileError::new(format!(
                    "access log filter {name} is not supported by weft's proxy; it takes status code, duration, \
                     response flag, header, not-health-check, and, or"
                )));
            }
            None => return Err(CompileError::new("an access log filter needs a filter")),
        })
    }

    /// Whether `e` is logged; `tests` holds the header tests' results.
    pub fn matches(&self, e: &Entry, tests: u64) -> bool {
        let cmp = |c: Cmp, have: u64, want: u64| match c {
            Cmp::Eq => have == want,
            Cmp::Ge => have >= want,
            Cmp::Le => have <= want,
        };
        match self {
            Filter::Status(c, v) => cmp(*c, u64::from(e.code), *v),
            Filter::Duration(c, v) => cmp(*c, e.duration.as_millis() as u64, *v),
            Filter::Flags(any) if any.is_empty() => e.flags != "-",
            Filter::Flags(any) => e.flags.split(',').any(|f| any.iter().any(|a| **a == *f)),
            Filter::Header(bit) => tests & (1 << bit) != 0,
            Filter::NotHealthCheck => true,
            Filter::And(all) => all.iter().all(|f| f.matches(e, tests)),
            Filter::Or(any) => any.iter().any(|f| f.matches(e, tests)),
        }
    }
}

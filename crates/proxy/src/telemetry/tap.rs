//! Live request metadata for `weft tap` and `weft top`: while a tap is
//! open (an admin request, `/tap`), each finished request that matches its
//! filter is offered to it — method, authority, path, status, flags,
//! duration, where it went and who called — never a body or a header's
//! value. A tap holds a bounded queue: a request never waits for it, and
//! what does not fit is counted dropped. With no tap open, a request pays
//! one relaxed atomic load.

use parking_lot::Mutex;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use tokio::sync::mpsc;

/// One request, as a tap shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub unix_ms: u64,
    pub direction: &'static str,
    pub method: String,
    pub authority: String,
    pub path: String,
    pub status: u16,
    pub flags: &'static str,
    pub duration_ms: f64,
    pub source: String,
    pub destination_service: String,
    pub destination: String,
    pub upstream_host: Option<String>,
}

/// What a request was, taken at its start while a tap is open.
pub struct Seen {
    pub method: String,
    pub authority: String,
    pub path: String,
}

/// Which requests a tap takes: each set field must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// A path prefix.
    pub path: Option<String>,
    pub method: Option<String>,
    pub authority: Option<String>,
}

impl Filter {
    fn takes(&self, e: &Event) -> bool {
        self.path.as_deref().is_none_or(|p| e.path.starts_with(p))
            && self.method.as_deref().is_none_or(|m| e.method.eq_ignore_ascii_case(m))
            && self.authority.as_deref().is_none_or(|a| e.authority.eq_ignore_ascii_case(a))
    }
}

struct Tap {
    filter: Filter,
    tx: mpsc::Sender<Event>,
    dropped: AtomicU64,
}

#[derive(Default)]
pub struct Taps {
    open: AtomicUsize,
    taps: Mutex<Vec<Arc<Tap>>>,
}

/// An open tap: events arrive on `rx` until it is dropped.
pub struct Opened<'a> {
    taps: &'a Taps,
    tap: Arc<Tap>,
    pub rx: mpsc::Receiver<Event>,
}

impl Opened<'_> {
    pub fn dropped(&self) -> u64 {
        self.tap.dropped.load(Relaxed)
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        let mut taps = self.taps.taps.lock();
        taps.retain(|t| !Arc::ptr_eq(t, &self.tap));
        self.taps.open.store(taps.len(), Relaxed);
    }
}

impl Taps {
    /// Whether a request should be looked at: a tap is open.
    pub fn open(&self) -> bool {
        self.open.load(Relaxed) > 0
    }

    /// Opens a tap holding at most `queue` events not yet read.
    pub fn tap(&self, filter: Filter, queue: usize) -> Opened<'_> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let tap = Arc::new(Tap { filter, tx, dropped: AtomicU64::new(0) });
        let mut taps = self.taps.lock();
        taps.push(tap.clone());
        self.open.store(taps.len(), Relaxed);
        Opened { taps: self, tap, rx }
    }

    /// Gives a finished request to the taps it matches; never waits.
    pub fn offer(&self, e: Event) {
        let taps: Vec<Arc<Tap>> = self.taps.lock().iter().filter(|t| t.filter.takes(&e)).cloned().collect();
        for t in taps {
            if t.tx.try_send(e.clone()).is_err() {
                t.dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, method: &str) -> Event {
        Event {
            unix_ms: 0,
            direction: "inbound",
            method: method.into(),
            authority: "web".into(),
            path: path.into(),
            status: 200,
            flags: "-",
            duration_ms: 1.0,
            source: "a.default".into(),
            destination_service: "web.default.svc.cluster.local".into(),
            destination: "web.default".into(),
            upstream_host: None,
        }
    }

    #[test]
    fn a_tap_takes_what_matches_until_full_and_closes_when_dropped() {
        let taps = Taps::default();
        assert!(!taps.open());
        {
            let filter = Filter { path: Some("/api".into()), method: Some("get".into()), authority: None };
            let mut t = taps.tap(filter, 2);
            assert!(taps.open());
            taps.offer(event("/api/x", "GET"));
            taps.offer(event("/other", "GET"));
            taps.offer(event("/api/y", "POST"));
            taps.offer(event("/api/z", "GET"));
            taps.offer(event("/api/full", "GET"));
            assert_eq!(t.rx.try_recv().unwrap().path, "/api/x");
            assert_eq!(t.rx.try_recv().unwrap().path, "/api/z");
            assert!(t.rx.try_recv().is_err());
            assert_eq!(t.dropped(), 1, "the queue held two");
        }
        assert!(!taps.open(), "closed with its handle");
    }
}

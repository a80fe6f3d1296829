//! Where access log lines go: one writer thread per path (`/dev/stdout`
//! or a file). A request appends its line to the path's buffer; the
//! writer takes the buffer every `FLUSH` (or once it holds `WAKE` bytes)
//! and writes it in one go, as Envoy's file logger does (its flush
//! interval is a second). A request never waits on the disk, and wakes no
//! thread for its line: when the writer falls behind (a full disk, a
//! stalled pipe) and the buffer reaches `MAX_BYTES`, lines are dropped and
//! counted.

use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH: Duration = Duration::from_millis(100);
/// A buffer this full is written without waiting for `FLUSH`.
const WAKE: usize = 64 * 1024;
/// A buffer this full takes no more lines (dropped, counted).
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// The writers open now, by path. Used when config is compiled, never per
/// request; a writer lives while a compiled access log holds it.
#[derive(Default)]
pub struct Sinks {
    open: Mutex<HashMap<String, Weak<Sink>>>,
    /// Lines dropped because a writer's buffer was full.
    pub dropped: Counter,
    /// Lines written.
    pub written: Counter,
}

/// One path's writer.
pub struct Sink {
    path: String,
    shared: Arc<Shared>,
    dropped: Counter,
}

/// What the requests and the writer thread share.
#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: u64,
    /// The last `Sink` handle is gone: write what is left and end.
    closed: bool,
}

impl Sinks {
    /// The writer for `path`, opened (the file created, appended to) if no
    /// compiled config holds it yet.
    pub fn open(&self, path: &str) -> std::io::Result<Arc<Sink>> {
        let mut open = self.open.lock();
        if let Some(sink) = open.get(path).and_then(Weak::upgrade) {
            return Ok(sink);
        }
        open.retain(|_, w| w.strong_count() > 0);
        let out: Box<dyn Write + Send> = match path {
            "/dev/stdout" => Box::new(std::io::stdout()),
            "/dev/stderr" => Box::new(std::io::stderr()),
            _ => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let shared = Arc::new(Shared::default());
        let (theirs, written) = (shared.clone(), self.written.clone());
        std::thread::Builder::new().name("access-log".into()).spawn(move || write_lines(&theirs, out, &written))?;
        let sink = Arc::new(Sink { path: path.to_owned(), shared, dropped: self.dropped.clone() });
        open.insert(path.to_owned(), Arc::downgrade(&sink));
        Ok(sink)
    }
}

impl Sink {
    /// Appends a line (with its newline); drops it if the buffer is full.
    pub fn offer(&self, line: &[u8]) {
        let mut p = self.shared.pending.lock();
        if p.bytes.len() + line.len() > MAX_BYTES {
            drop(p);
            self.dropped.inc();
            return;
        }
        let was = p.bytes.len();
        p.bytes.extend_from_slice(line);
        p.lines += 1;
        if was < WAKE && p.bytes.len() >= WAKE {
            self.shared.wake.notify_one();
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.pending.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({})", self.path)
    }
}

/// The writer thread: every `FLUSH`, or when woken by a full buffer,
/// swaps the buffer for an empty one and writes it; ends, having written
/// the rest, when the last `Sink` handle is gone.
fn write_lines(shared: &Shared, mut out: Box<dyn Write + Send>, written: &Counter) {
    let mut spare = Vec::new();
    loop {
        let (lines, closed) = {
            let mut p = shared.pending.lock();
            if p.bytes.len() < WAKE && !p.closed {
                shared.wake.wait_for(&mut p, FLUSH);
            }
            std::mem::swap(&mut p.bytes, &mut spare);
            (std::mem::take(&mut p.lines), p.closed)
        };
        if !spare.is_empty() {
            match out.write_all(&spare).and_then(|()| out.flush()) {
                Ok(()) => {
                    written.inc_by(lines);
                }
                Err(e) => tracing::warn!(error = %e, "access log: cannot write"),
            }
            // The buffer's memory is kept for the next turn, unless a
            // backlog grew it far past what a turn usually holds.
            spare.clear();
            if spare.capacity() > 4 * WAKE {
                spare.shrink_to(WAKE);
            }
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-al-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_the_rest_when_the_sink_goes() {
        let shared = Arc::new(Shared::default());
        let sink = Sink { path: "x".into(), shared: shared.clone(), dropped: Counter::default() };
        sink.offer(b"one\n");
        sink.offer(b"two\n");
        drop(sink);
        let (out, written) = (Buffer::default(), Counter::default());
        write_lines(&shared, Box::new(out.clone()), &written);
        assert_eq!(&*out.0.lock(), b"one\ntwo\n");
        assert_eq!(written.get(), 2);
    }

    // A plain test thread polling the file the writer thread writes.
    #[allow(clippy::disallowed_methods)]
    #[test]
    fn a_line_reaches_the_file_within_the_flush_interval() {
        let dir = tempfile_dir("flush");
        let path = dir.join("access.log");
        let sinks = Sinks::default();
        let sink = sinks.open(path.to_str().unwrap()).unwrap();
        sink.offer(b"soon\n");
        let mut waited = Duration::ZERO;
        while std::fs::read(&path).unwrap_or_default() != b"soon\n" {
            assert!(waited < FLUSH * 50, "the line was not written");
            std::thread::sleep(FLUSH / 10);
            waited += FLUSH / 10;
        }
        assert_eq!(sinks.written.get(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_has_one_writer_and_a_full_queue_drops() {
        let dir = tempfile_dir("one");
        let path = dir.join("access.log");
        let sinks = Sinks::default();
        let a = sinks.open(path.to_str().unwrap()).unwrap();
        let b = sinks.open(path.to_str().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one writer per path");
        let full = Sink { path: "x".into(), shared: Arc::default(), dropped: sinks.dropped.clone() };
        let big = vec![b'x'; MAX_BYTES - 10];
        full.offer(&big);
        full.offer(b"kept\n");
        full.offer(b"dropped\n");
        assert_eq!(sinks.dropped.get(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

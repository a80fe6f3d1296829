//! Where access log lines go: one writer thread per path (`/dev/stdout`
//! or a file), fed through a bounded queue. A request only formats its
//! line and offers it; when the writer falls behind (a full disk, a
//! stalled pipe) lines are dropped and counted, never waited for.

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Weak};

/// Lines a writer may have queued before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;

/// The writers open now, by path. Used when config is compiled, never per
/// request; a writer lives while a compiled access log holds it.
#[derive(Default)]
pub struct Sinks {
    open: Mutex<HashMap<String, Weak<Sink>>>,
    /// Lines dropped because a writer's queue was full.
    pub dropped: Counter,
    /// Lines written.
    pub written: Counter,
}

/// One path's writer.
pub struct Sink {
    path: String,
    tx: SyncSender<String>,
    dropped: Counter,
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
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let written = self.written.clone();
        std::thread::Builder::new().name("access-log".into()).spawn(move || write_lines(rx, out, &written))?;
        let sink = Arc::new(Sink { path: path.to_owned(), tx, dropped: self.dropped.clone() });
        open.insert(path.to_owned(), Arc::downgrade(&sink));
        Ok(sink)
    }
}

impl Sink {
    /// Queues a line (with its newline); drops it if the queue is full.
    pub fn offer(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.dropped.inc();
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({})", self.path)
    }
}

/// The writer thread: writes what is queued, flushing whenever the queue
/// is empty; ends when the last `Sink` handle is gone.
fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>, written: &Counter) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let mut n = u64::from(out.write_all(line.as_bytes()).is_ok());
        while let Ok(line) = rx.try_recv() {
            n += u64::from(out.write_all(line.as_bytes()).is_ok());
        }
        if let Err(e) = out.flush() {
            tracing::warn!(error = %e, "access log: cannot write");
        }
        written.inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queued_lines_are_written_in_order_until_the_senders_go() {
        let (tx, rx) = sync_channel(4);
        tx.send("one\n".to_string()).unwrap();
        tx.send("two\n".to_string()).unwrap();
        drop(tx);
        let (out, written) = (Shared::default(), Counter::default());
        write_lines(rx, Box::new(out.clone()), &written);
        assert_eq!(&*out.0.lock(), b"one\ntwo\n");
        assert_eq!(written.get(), 2);
    }

    #[test]
    fn a_path_has_one_writer_and_a_full_queue_drops() {
        let dir = std::env::temp_dir().join(format!("weft-al-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let sinks = Sinks::default();
        let a = sinks.open(path.to_str().unwrap()).unwrap();
        let b = sinks.open(path.to_str().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one writer per path");
        let (tx, _rx) = sync_channel(1);
        let full = Sink { path: "x".into(), tx, dropped: sinks.dropped.clone() };
        full.offer("kept\n".into());
        full.offer("dropped\n".into());
        assert_eq!(sinks.dropped.get(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

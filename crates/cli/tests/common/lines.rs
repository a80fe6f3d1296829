//! What a child process prints on stdout (an access log, spans a receiver
//! got), read line by line as it comes.

use super::{Proc, weft};
use std::process::{Command, Stdio};

/// The lines a process printed on stdout so far.
#[derive(Clone, Default)]
pub struct Lines(std::sync::Arc<parking_lot::Mutex<Vec<String>>>);

impl Lines {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().clone()
    }

    /// Reads `out` line by line, on a thread of its own, until it closes.
    pub fn follow(&self, out: std::process::ChildStdout) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().push(line);
            }
        });
    }

    /// The lines that parse as JSON objects.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.all().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// As `spawn`, with stdout read line by line into `lines`.
pub fn spawn_logged(args: &[&str], lines: &Lines) -> Proc {
    let mut child = Command::new(weft())
        .args(args)
        .env("WEFT_LOG", std::env::var("WEFT_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    lines.follow(child.stdout.take().unwrap());
    Proc(child)
}

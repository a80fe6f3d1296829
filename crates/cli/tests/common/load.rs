//! Steady load through a proxy while a test changes things under it
//! (restarts, rotations): ~50 requests a second, for at most 120 s, each
//! failure kept with its reason.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct Load {
    ok: Arc<AtomicUsize>,
    errors: Arc<parking_lot::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// GETs `url` through `out` until stopped.
    pub fn start(out: &str, url: &str) -> Load {
        let errors: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
        let (ok, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (o, e, s, out, url) = (ok.clone(), Arc::clone(&errors), stop.clone(), out.to_owned(), url.to_owned());
        let task = tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                match try_request(&out, "GET", &url, &[], Default::default()).await {
                    Ok(r) if r.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => e.lock().push(format!("{} {}", r.status, r.instance())),
                    Err(err) => e.lock().push(err),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Load { ok, errors, stop, task }
    }

    /// Stops it: how many requests were served, and why each other failed.
    pub async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (self.ok.load(Ordering::Relaxed), self.errors.lock().clone())
    }
}

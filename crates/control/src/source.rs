//! The folder source: loads every YAML/JSON file under a directory and
//! reloads on change. A broken edit is rejected with its diagnostics and the
//! last good config keeps serving.

use crate::hub::Hub;
use notify::{RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;
use tokio::sync::mpsc;
use weft_api::load::{LoadLimits, load_files_within, load_paths_within, over_bytes, over_documents};
use weft_api::{Diagnostic, Loaded, validate};

/// A watched folder with its parsed files, reused while a file's length and
/// modification time are unchanged: an edit re-parses the files it touched,
/// not the whole folder (validation still looks at everything).
pub struct Folder {
    pub dir: PathBuf,
    files: HashMap<PathBuf, (SystemTime, u64, Loaded)>,
    limits: LoadLimits,
}

impl Folder {
    pub fn new(dir: PathBuf, limits: LoadLimits) -> Self {
        Folder { dir, files: HashMap::new(), limits }
    }

    fn read(&mut self) -> Loaded {
        let dir = std::slice::from_ref(&self.dir);
        let paths = match weft_api::load::config_files(dir) {
            Ok(p) => p,
            Err(_) => return load_paths_within(dir, &self.limits), // reports the error
        };
        let bytes: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        if let Some(d) = over_bytes(dir, bytes, &self.limits) {
            return Loaded { resources: Vec::new(), diagnostics: vec![d] };
        }
        let mut out = Loaded::default();
        let mut fresh = HashMap::new();
        for path in paths {
            let stamp = std::fs::metadata(&path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
            let loaded = match (stamp, self.files.remove(&path)) {
                (Some((t, n)), Some((t0, n0, l))) if t == t0 && n == n0 => l,
                _ => load_files_within(std::slice::from_ref(&path), &self.limits),
            };
            out.resources.extend(loaded.resources.iter().cloned());
            out.diagnostics.extend(loaded.diagnostics.iter().cloned());
            if let Some((t, n)) = stamp {
                fresh.insert(path, (t, n, loaded));
            }
        }
        self.files = fresh;
        if let Some(d) = over_documents(dir, out.resources.len(), &self.limits) {
            return Loaded { resources: Vec::new(), diagnostics: vec![d] };
        }
        weft_api::gateway_api::lower(&mut out);
        out
    }

    /// Loads and validates, reusing unchanged files.
    pub fn load(&mut self) -> Result<(Vec<weft_api::Resource>, Vec<Diagnostic>), Vec<Diagnostic>> {
        checked(self.read())
    }

    /// Applies the folder's config to the hub; false if it was rejected.
    pub fn apply(&mut self, hub: &Hub) -> bool {
        let dir = self.dir.clone();
        let start = std::time::Instant::now();
        let loaded = self.read();
        let parsed = start.elapsed();
        let result = checked(loaded);
        let checked_at = start.elapsed();
        let ok = report(&dir, result, hub);
        tracing::info!(
            parse_ms = parsed.as_millis() as u64,
            validate_ms = (checked_at - parsed).as_millis() as u64,
            publish_ms = (start.elapsed() - checked_at).as_millis() as u64,
            "config reload timings"
        );
        ok
    }
}

/// Loads and validates; the resources if there was no error, else every diagnostic.
pub fn load(dir: &Path, limits: &LoadLimits) -> Result<(Vec<weft_api::Resource>, Vec<Diagnostic>), Vec<Diagnostic>> {
    checked(load_paths_within(&[dir.to_path_buf()], limits))
}

fn checked(loaded: Loaded) -> Result<(Vec<weft_api::Resource>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut diags = loaded.diagnostics;
    diags.extend(validate(&loaded.resources));
    if diags.iter().any(Diagnostic::is_error) { Err(diags) } else { Ok((loaded.resources, diags)) }
}

fn report(dir: &Path, result: Result<(Vec<weft_api::Resource>, Vec<Diagnostic>), Vec<Diagnostic>>, hub: &Hub) -> bool {
    match result {
        Ok((resources, warnings)) => {
            for w in &warnings {
                if w.is_warning() {
                    tracing::warn!("{w}");
                } else {
                    tracing::info!("{w}");
                }
            }
            tracing::info!(resources = resources.len(), dir = %dir.display(), "config applied");
            let warned = warnings.iter().filter(|w| w.is_warning()).map(ToString::to_string).collect();
            hub.set_config(resources, warned);
            true
        }
        Err(diags) => {
            let errors = diags.iter().filter(|d| d.is_error()).count();
            for d in &diags {
                tracing::error!("{d}");
            }
            tracing::error!(errors, "config rejected; the last good config keeps serving");
            hub.set_rejected(diags.iter().map(ToString::to_string).collect());
            false
        }
    }
}

/// Watches `dir` and re-applies it after each burst of changes (debounced
/// by 100 ms, so an edit is live well within a second).
pub async fn watch(mut folder: Folder, hub: Arc<Hub>) -> anyhow::Result<()> {
    let dir = folder.dir.clone();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    while rx.recv().await.is_some() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        folder.apply(&hub);
    }
    Ok(())
}

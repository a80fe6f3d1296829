//! The folder source: loads every YAML/JSON file under a directory and
//! reloads on change. A broken edit is rejected with its diagnostics and the
//! last good config keeps serving.

use crate::hub::Hub;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use weft_api::{Diagnostic, load_paths, validate};

/// Loads and validates; the resources if there was no error, else every diagnostic.
pub fn load(dir: &Path) -> Result<(Vec<weft_api::Resource>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let loaded = load_paths(&[dir.to_path_buf()]);
    let mut diags = loaded.diagnostics;
    diags.extend(validate(&loaded.resources));
    if diags.iter().any(Diagnostic::is_error) { Err(diags) } else { Ok((loaded.resources, diags)) }
}

/// Applies the folder's config to the hub; false if it was rejected.
pub fn apply(dir: &Path, hub: &Hub) -> bool {
    match load(dir) {
        Ok((resources, warnings)) => {
            for w in &warnings {
                tracing::warn!("{w}");
            }
            tracing::info!(resources = resources.len(), dir = %dir.display(), "config applied");
            hub.set_config(resources);
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
pub async fn watch(dir: PathBuf, hub: Arc<Hub>) -> anyhow::Result<()> {
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
        apply(&dir, &hub);
    }
    Ok(())
}

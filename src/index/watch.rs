//! `codeq index --watch`: re-index whenever files under the root change.

use super::*;

/// How long the tree must stay quiet after a change before `watch` re-indexes.
pub(super) const WATCH_QUIET: Duration = Duration::from_millis(500);

/// Calls `on_change` each time files under `root` (outside `index_dir`) changed and then
/// stayed unchanged for [`WATCH_QUIET`]; returns only when watching fails.
pub fn watch(root: &Path, index_dir: &Path, mut on_change: impl FnMut()) -> Result<()> {
    use notify::{RecursiveMode, Watcher};
    let index_dir = index_dir
        .canonicalize()
        .unwrap_or_else(|_| index_dir.to_path_buf());
    let (sender, events) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(sender)
        .map_err(|e| Error::Watch(format!("cannot watch {}: {e}", root.display())))?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| Error::Watch(format!("cannot watch {}: {e}", root.display())))?;
    let outside_index = |event: &notify::Result<notify::Event>| match event {
        Ok(event) => event.paths.iter().any(|p| !p.starts_with(&index_dir)),
        // An overflowed or failed watch: re-index to be safe.
        Err(_) => true,
    };
    loop {
        let Ok(first) = events.recv() else {
            return Err(Error::Watch("the file watcher stopped".into()));
        };
        let mut changed = outside_index(&first);
        loop {
            match events.recv_timeout(WATCH_QUIET) {
                Ok(event) => changed |= outside_index(&event),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Watch("the file watcher stopped".into()));
                }
            }
        }
        if changed {
            on_change();
        }
    }
}

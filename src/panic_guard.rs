//! A boundary for code codeq does not control: a storage library reading damaged files, or
//! a grammar meeting input it was not built for, may panic. [`catch`] turns such a panic
//! into a message the caller reports as an error (the index is damaged, the file is
//! skipped), and keeps the default panic output — a backtrace meant for developers — off
//! the user's terminal while it does. Panics anywhere else are reported as usual.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// How many [`catch`] calls this thread is inside.
    static GUARDED: Cell<usize> = const { Cell::new(0) };
    /// The message of the last panic caught on this thread.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic inside it comes back as `Err` with the panic's message and location.
/// The closure's state is not used after a panic, so unwind safety is not a concern.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    GUARDED.with(|g| g.set(g.get() + 1));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    outcome.map_err(|payload| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()))
    })
}

/// Installs, once per process, a hook that records panics inside [`catch`] instead of
/// printing them and hands every other panic to the hook that was there before.
fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if GUARDED.with(Cell::get) > 0 {
                let at = info
                    .location()
                    .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
                let text = format!("{}{at}", payload_text(info.payload()));
                CAUGHT.with(|c| *c.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let err = catch(|| -> u32 { panic!("subtract with overflow") }).unwrap_err();
        assert!(err.starts_with("subtract with overflow at "), "{err}");
        assert!(err.contains("panic_guard.rs"), "{err}");
        // Nested boundaries report to the innermost one.
        let outer = catch(|| catch(|| -> u32 { panic!("inner") }).unwrap_err());
        assert!(outer.unwrap().starts_with("inner"));
    }
}

//! The process's async runtime, which the storage libraries (LanceDB, Lance) and the LLM
//! client need, and [`block_on`], the one way library code waits on it.
//!
//! codeq's library API is blocking. It may be called from plain threads (the CLI, the TUI's
//! worker, tests) and from inside an async runtime (a server's handler): blocking a thread
//! of a running runtime on another runtime panics in tokio, so there the wait happens on a
//! scoped helper thread instead. Servers should still call the library from their blocking
//! pool (`spawn_blocking`): a query holds its thread until it is answered.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// Worker threads of the runtime: the storage libraries' I/O and decoding.
const WORKER_THREADS: usize = 2;

/// The runtime, started on first use.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("codeq-storage")
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                panic!("cannot start the storage runtime (the system refuses threads: {e})")
            })
    })
}

/// Runs `future` to completion on the runtime and returns its output. Safe to call from
/// any thread, an async runtime's included. Panics only when the runtime cannot start at
/// all (the system refuses new threads) or when `future` itself panics.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(future);
    }
    std::thread::scope(|scope| match scope.spawn(|| rt.block_on(future)).join() {
        Ok(output) => output,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_waits_from_plain_threads_and_from_inside_a_runtime() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inside = outer.block_on(async { block_on(async { 40 + 2 }) });
        assert_eq!(inside, 42);
    }
}

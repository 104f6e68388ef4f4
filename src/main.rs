//! The `tasklog` binary: parses the command line and hands over to [`tasklog::cli`].

use clap::Parser;

/// mimalloc: the server allocates many small short-lived values per request,
/// where it is measurably faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tasklog::cli::run(tasklog::cli::Cli::parse(), give_back_freed_memory)
}

/// Run as a worker thread goes idle: at most once a second per thread, gives
/// what mimalloc holds freed in this thread's heap back to the system. It
/// would otherwise wait for the thread's next allocations, so a server left
/// idle after a burst (a thousand subscribers gone) would keep it.
fn give_back_freed_memory() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local!(static LAST: Cell<Option<Instant>> = const { Cell::new(None) });
    let now = Instant::now();
    if LAST
        .get()
        .is_some_and(|last| now - last < Duration::from_secs(1))
    {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: takes no pointers; collects this thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

//! Test failpoints: make a compaction pass stop (as if the process died)
//! after a step of the swap protocol. `failpoint!` compiles to nothing
//! outside tests.

#[cfg(test)]
use std::cell::Cell;

/// Steps of the swap protocol after which a test can stop a pass.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    CleanedWritten,
    SwapRenamed,
    OldIndexesRemoved,
    LogReplaced,
    SegmentReopened,
    EmptyLogRemoved,
    BeforeCheckpoint,
}

#[cfg(test)]
thread_local! {
    static ARMED: Cell<Option<(Step, u32)>> = const { Cell::new(None) };
}

/// Fails the `nth` (0-based) time `step` is reached on this thread.
#[cfg(test)]
pub(crate) fn arm(step: Step, nth: u32) {
    ARMED.with(|a| a.set(Some((step, nth))));
}
#[cfg(test)]
pub(crate) fn disarm() {
    ARMED.with(|a| a.set(None));
}
#[cfg(test)]
pub(crate) fn fires(step: Step) -> bool {
    ARMED.with(|a| match a.get() {
        Some((s, 0)) if s == step => {
            a.set(None);
            true
        }
        Some((s, n)) if s == step => {
            a.set(Some((s, n - 1)));
            false
        }
        _ => false,
    })
}

/// Returns an injected I/O error from the enclosing function when the test
/// armed this step.
#[cfg(test)]
macro_rules! failpoint {
    ($step:ident, $dir:expr) => {
        if $crate::cleaner::failpoint::fires($crate::cleaner::failpoint::Step::$step) {
            return Err($crate::error::Error::Io {
                op: "failpoint",
                path: $dir.to_path_buf(),
                source: std::io::Error::other(concat!("injected crash after ", stringify!($step))),
            });
        }
    };
}
#[cfg(not(test))]
macro_rules! failpoint {
    ($step:ident, $dir:expr) => {};
}

//! Thread priorities. Background work (encoding snapshots) runs at a lower
//! priority than the threads that serve requests (the async workers, the
//! engine and log threads), so on a busy machine the scheduler runs those
//! first. Lower, never higher: that needs no privileges.
//!
//! Tried and dropped: lowering the threads that parse large ingest batches
//! as well (nice 5) made acknowledgement and read tails worse, not better,
//! in three open-loop runs at 50,000 events/s (docs/PERFORMANCE.md).

/// Raises the calling thread's `nice` value by `increment`, to at most 19
/// (Linux gives each thread its own). Best effort: a refusal costs latency only, so it
/// is logged at debug level and ignored. No-op elsewhere.
pub fn lower_current_thread(increment: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, getpriority, setpriority and the errno location
        // take no pointers of ours and act on the calling thread only.
        let result = unsafe {
            let tid = libc::gettid() as libc::id_t;
            // getpriority may return -1 as a value: errno tells.
            *libc::__errno_location() = 0;
            let current = libc::getpriority(libc::PRIO_PROCESS, tid);
            if current == -1 && *libc::__errno_location() != 0 {
                -1
            } else {
                libc::setpriority(libc::PRIO_PROCESS, tid, (current + increment).min(19))
            }
        };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower a thread's priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = increment;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn own_nice() -> i32 {
        // SAFETY: as in lower_current_thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn lowering_adds_to_the_threads_own_niceness_only() {
        let before = own_nice();
        let (once, twice) = std::thread::spawn(|| {
            super::lower_current_thread(3);
            let once = own_nice();
            super::lower_current_thread(30);
            (once, own_nice())
        })
        .join()
        .unwrap();
        assert_eq!(once, (before + 3).min(19));
        assert_eq!(twice, 19, "capped at the lowest priority");
        assert_eq!(own_nice(), before, "other threads keep theirs");
    }
}

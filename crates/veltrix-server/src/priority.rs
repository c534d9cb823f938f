//! Thread priorities. Background work (encoding snapshots) runs at a lower
//! priority than the threads that serve requests (the async workers, the
//! engine and log threads), so on a busy machine the scheduler runs those
//! first; request threads ask for short time slices, so a woken one runs
//! soon; busy threads step aside by themselves every 0.5 ms
//! ([`StepAside`]: the snapshot encoder and writer, and parsers of large
//! batches). Lower, never higher, and no more CPU for anyone: that needs no
//! privileges.
//!
//! Tried and dropped: lowering the threads that parse large ingest batches
//! as well (nice 5) made acknowledgement and read tails worse, not better,
//! in three open-loop runs at 50,000 events/s (docs/PERFORMANCE.md).

use std::time::Instant;

/// A busy background thread's way of stepping aside: [`StepAside::step`]
/// yields the CPU once `engine::YIELD_INTERVAL` has passed since it last
/// did. On this kernel (no kernel preemption, a 4 ms tick) a thread woken
/// for a request on the same core otherwise waits until the busy one's
/// time slice ends, even at nice 10.
pub struct StepAside {
    last: Instant,
}

impl Default for StepAside {
    fn default() -> Self {
        StepAside {
            last: Instant::now(),
        }
    }
}

impl StepAside {
    pub fn step(&mut self) {
        if self.last.elapsed() >= crate::engine::YIELD_INTERVAL {
            std::thread::yield_now();
            self.last = Instant::now();
        }
    }
}

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

/// The kernel's `struct sched_attr` as of Linux 3.14 (`SCHED_ATTR_SIZE_VER0`,
/// 48 bytes); later fields are optional and left out.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default, Debug)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

#[cfg(target_os = "linux")]
fn get_attr() -> std::io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most `size` (48) bytes into `attr`, a
    // live value of that size; pid 0 is the calling thread.
    let result = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            std::mem::size_of::<SchedAttr>() as u32,
            0,
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(attr)
}

/// Asks the scheduler to treat the calling thread as latency-sensitive: a
/// time slice of `slice` instead of the kernel's base slice
/// (`Duration::ZERO` asks for the base slice again). Under the EEVDF
/// scheduler (Linux 6.6 and later) a shorter slice means an earlier virtual
/// deadline, so a thread that wakes for a short piece of work (a read
/// request) runs before a busy thread finishes its slice; since Linux 6.12 it
/// may preempt it outright. The thread gets no more CPU in total than its
/// weight (nice value, unchanged) allows. Best effort, like
/// [`lower_current_thread`]: older kernels ignore the field, and a refusal
/// is logged at debug level. Returns the slice the kernel reports back, if
/// any (0 where it keeps no per-thread slice).
pub fn request_short_slice(slice: std::time::Duration) -> Option<std::time::Duration> {
    #[cfg(target_os = "linux")]
    {
        let attempt = || -> std::io::Result<u64> {
            let mut attr = get_attr()?;
            if attr.policy != libc::SCHED_OTHER as u32 && attr.policy != libc::SCHED_BATCH as u32 {
                // Real-time or idle threads: leave them alone.
                return Ok(attr.runtime);
            }
            attr.size = std::mem::size_of::<SchedAttr>() as u32;
            attr.runtime = slice.as_nanos().min(u64::MAX as u128) as u64;
            // SAFETY: the kernel reads `size` bytes from `attr`, a live value
            // of that size; pid 0 is the calling thread.
            let result =
                unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
            if result != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(get_attr()?.runtime)
        };
        match attempt() {
            Ok(runtime) => Some(std::time::Duration::from_nanos(runtime)),
            Err(error) => {
                tracing::debug!(%error, "could not request a short time slice");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = slice;
        None
    }
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

    #[test]
    fn a_short_slice_keeps_the_threads_niceness() {
        let (nice_before, nice_after, slice) = std::thread::spawn(|| {
            super::lower_current_thread(2);
            let before = own_nice();
            let slice = super::request_short_slice(std::time::Duration::from_micros(300));
            (before, own_nice(), slice)
        })
        .join()
        .unwrap();
        assert_eq!(
            nice_after, nice_before,
            "the slice request must not reset nice"
        );
        let slice = slice.expect("sched_setattr is available on Linux");
        // Kernels before 6.6 report no slice; EEVDF kernels report the one set.
        assert!(
            slice.is_zero() || slice == std::time::Duration::from_micros(300),
            "unexpected slice {slice:?}"
        );
    }
}

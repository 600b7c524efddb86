//! The CPU scheduling policy of a thread and of every thread it starts
//! afterwards (Linux threads inherit it): `SCHED_BATCH` or the default
//! `SCHED_OTHER`. Owned here because the API applies it to itself and the
//! submit bench to its load generators, and both must mean the same thing.
//!
//! Why batch: a submission wakes a thread four times in turn (the API on
//! the request, Redis on the script call, the API again on Redis's reply,
//! then the client on the response). Under `SCHED_OTHER` a woken thread may
//! preempt the one that woke it, so on a box where the API shares cores with
//! Redis every write trades the CPU back and forth, and Redis, the single
//! thread every request waits on, is pushed off the CPU for tens of
//! milliseconds. `SCHED_BATCH` keeps the thread's fair share (its nice weight
//! is unchanged) but a wake-up of it never preempts the running thread: it
//! runs at the next scheduling point. Redis and anything else left at
//! `SCHED_OTHER` still preempt it. Measured in docs/BENCHMARKS.md
//! ("Scheduling policy and the dist build").

use std::fmt;
use std::str::FromStr;

/// A thread's CPU scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPolicy {
    /// `SCHED_BATCH`: woken without preempting the running thread.
    Batch,
    /// `SCHED_OTHER`, the kernel's default: left as it is.
    Normal,
}

impl FromStr for CpuPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batch" => Ok(Self::Batch),
            "normal" => Ok(Self::Normal),
            other => Err(format!("`{other}`: expected `batch` or `normal`")),
        }
    }
}

impl fmt::Display for CpuPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Batch => "batch",
            Self::Normal => "normal",
        })
    }
}

/// Why a policy could not be applied (the thread keeps the one it had).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The thread runs at a nice value other than 0: setting the policy would
    /// also reset it (the call takes both), so the operator's choice is kept.
    #[error("the thread runs at nice {0}; its scheduling policy is left as it is")]
    Niced(i32),
    /// The kernel refused.
    #[error("the kernel refused the scheduling policy: {0}")]
    Os(String),
}

/// Applies `policy` to the calling thread (and so to the threads it starts
/// later). `Normal` leaves the thread as it is. Call it before changing the
/// thread's nice value: the two are set together at nice 0.
pub fn apply_to_current_thread(policy: CpuPolicy) -> Result<(), PolicyError> {
    use thread_priority::unix::{set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    use thread_priority::{ThreadPriority, ThreadPriorityOsValue};
    if policy == CpuPolicy::Normal {
        return Ok(());
    }
    let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid())).map_err(|e| PolicyError::Os(e.to_string()))?;
    if nice != 0 {
        return Err(PolicyError::Niced(nice));
    }
    // For the normal policies the crate sets the policy, then the nice value
    // (`ThreadPriorityOsValue::default()` is nice 0, the one the thread has).
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    )
    .map_err(|e| PolicyError::Os(format!("{e:?}")))
}

/// The calling thread's policy as `batch`, `normal` (SCHED_OTHER) or another name.
pub fn current() -> String {
    use thread_priority::unix::{thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    match thread_schedule_policy() {
        Ok(ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch)) => "batch".into(),
        Ok(ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other)) => "normal".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("unknown ({e:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_names_and_refuses_others() {
        assert_eq!("batch".parse::<CpuPolicy>(), Ok(CpuPolicy::Batch));
        assert_eq!("normal".parse::<CpuPolicy>(), Ok(CpuPolicy::Normal));
        assert!("fifo".parse::<CpuPolicy>().is_err());
        assert_eq!(CpuPolicy::Batch.to_string(), "batch");
    }

    #[test]
    fn batch_is_applied_to_the_thread_and_inherited_by_threads_it_starts() {
        // A thread of its own, so the test runner's threads keep their policy.
        let seen = std::thread::spawn(|| {
            let before = current();
            apply_to_current_thread(CpuPolicy::Batch).expect("SCHED_BATCH needs no privilege at nice 0");
            let child = std::thread::spawn(current).join().expect("child thread");
            (before, current(), child)
        })
        .join()
        .expect("thread");
        assert_eq!(seen, ("normal".to_string(), "batch".to_string(), "batch".to_string()));
    }

    #[test]
    fn normal_leaves_the_thread_as_it_is() {
        let seen = std::thread::spawn(|| {
            apply_to_current_thread(CpuPolicy::Normal).expect("no-op");
            current()
        })
        .join()
        .expect("thread");
        assert_eq!(seen, "normal");
    }
}

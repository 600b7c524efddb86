//! [store] black-box test of `CPU_POLICY`: the API's threads run under
//! `SCHED_BATCH` by default (so its wake-ups never preempt a co-located
//! Redis; see common::cpu_policy) and under the kernel's default with
//! `CPU_POLICY=normal`, read from /proc for every thread of the process.
#![allow(clippy::unwrap_used, missing_docs)]

use couplet_tests::*;

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// The scheduling policy of every thread of `pid` (field 41 of /proc/PID/task/TID/stat).
fn thread_policies(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap();
        // Fields after the command name's closing parenthesis start at field 3.
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        out.push(after.split_whitespace().nth(41 - 3).unwrap().parse().unwrap());
    }
    out
}

async fn policies_of_api(opts: StackOptions) -> Vec<u32> {
    let s = Stack::start(opts.workers(0)).await;
    // A request first, so the runtime's threads have all started.
    let (st, _) = s.job("01JXXXXXXXXXXXXXXXXXXXXXXX", None).await;
    assert_eq!(st, 404);
    let pid = s.api.as_ref().unwrap().id();
    thread_policies(pid)
}

#[tokio::test]
async fn the_api_runs_every_thread_under_sched_batch_by_default() {
    let p = policies_of_api(StackOptions::default()).await;
    assert!(p.len() >= 3, "expected the main thread and the runtime's workers, got {p:?}");
    assert!(p.iter().all(|&x| x == SCHED_BATCH), "thread policies {p:?}");
}

#[tokio::test]
async fn cpu_policy_normal_leaves_the_kernels_default() {
    let p = policies_of_api(StackOptions::default().api("CPU_POLICY", "normal")).await;
    assert!(p.iter().all(|&x| x == SCHED_OTHER), "thread policies {p:?}");
}

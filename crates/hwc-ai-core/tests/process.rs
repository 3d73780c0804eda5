//! Real children under the guard: a shell script that forks grandchildren
//! leaves zero processes after a stop, after it crashes, after it ignores
//! SIGTERM, and after its parent is SIGKILLed; rlimits reach the program;
//! the supervisor restarts with backoff and gives up at its cap.
#![allow(clippy::unwrap_used, missing_docs)]

use hwc_ai_core::process::{
    group_members, Child, ChildSpec, ChildState, Limits, RestartPolicy, Supervisor,
};
use hwc_ai_core::tasks::TaskGroup;
use std::io::BufRead;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const GUARD: &str = env!("CARGO_BIN_EXE_hwc-ai-guard");
/// Forks two grandchildren, says so, then waits for a line on stdin and
/// exits with it as its status.
const FORKS: &str = "sleep 300 & sleep 300 & echo ready; read code; exit $code";

fn spec(script: &str) -> ChildSpec {
    let mut s = ChildSpec::new("test", "/bin/sh", ["-c", script]);
    s.guard = Some(GUARD.into());
    s.grace = Duration::from_millis(500);
    s
}

fn assert_group_empties(pgid: i32, what: &str) {
    let t0 = Instant::now();
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: processes {left:?} of group {pgid} still alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn started(child: &mut Child) -> (tokio::process::ChildStdin, i32) {
    let out = child.take_stdout().unwrap();
    let mut lines = BufReader::new(out).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
    let group = child.group();
    assert_eq!(group_members(group).len(), 4, "guard, sh and two sleeps");
    (child.take_stdin().unwrap(), group)
}

#[tokio::test]
async fn stop_leaves_no_process() {
    let mut child = Child::spawn(&spec(FORKS)).unwrap();
    let (_stdin, group) = started(&mut child).await;
    child.stop().await.unwrap();
    assert_group_empties(group, "after stop");
}

#[tokio::test]
async fn a_crash_leaves_no_process() {
    let mut child = Child::spawn(&spec(FORKS)).unwrap();
    let (mut stdin, group) = started(&mut child).await;
    stdin.write_all(b"3\n").await.unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(3), "the program's own status");
    assert_group_empties(group, "after the program exited");
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
    let mut child = Child::spawn(&spec(&format!("trap '' TERM; {FORKS}"))).unwrap();
    let (_stdin, group) = started(&mut child).await;
    let t0 = Instant::now();
    child.stop().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "waited the grace"
    );
    assert_group_empties(group, "after stop past the grace");
}

#[tokio::test]
async fn dropping_a_child_kills_its_group() {
    let mut child = Child::spawn(&spec(FORKS)).unwrap();
    let (_stdin, group) = started(&mut child).await;
    drop(child);
    assert_group_empties(group, "after drop");
}

/// Run in a separate process by `a_sigkilled_parent_leaves_no_process`:
/// starts the forking child, prints its group, then waits to be killed.
#[tokio::test]
#[ignore = "helper process for a_sigkilled_parent_leaves_no_process"]
async fn parent_helper() {
    if std::env::var_os("HWC_TEST_PARENT_HELPER").is_none() {
        return;
    }
    let mut child = Child::spawn(&spec(FORKS)).unwrap();
    let (_stdin, group) = started(&mut child).await;
    println!("group={group}");
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[test]
fn a_sigkilled_parent_leaves_no_process() {
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "parent_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HWC_TEST_PARENT_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(parent.stdout.take().unwrap()).lines();
    let group: i32 = loop {
        let line = lines.next().expect("helper ended without a group").unwrap();
        // libtest prints `test parent_helper ... ` on the same line.
        if let Some((_, g)) = line.split_once("group=") {
            break g.trim().parse().unwrap();
        }
    };
    assert_eq!(group_members(group).len(), 4);
    parent.kill().unwrap(); // SIGKILL: no cleanup code of the parent runs
    parent.wait().unwrap();
    assert_group_empties(group, "after the parent was SIGKILLed");
}

#[tokio::test]
async fn rlimits_reach_the_program() {
    let mut s = spec("ulimit -n; ulimit -t");
    s.limits = Limits {
        open_files: Some(37),
        cpu_seconds: Some(7),
        address_space_bytes: Some(2 << 30),
    };
    let mut child = Child::spawn(&s).unwrap();
    let mut lines = BufReader::new(child.take_stdout().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("37"));
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("7"));
    assert_eq!(child.wait().await.unwrap().code(), Some(0));

    // A CPU-time limit ends a busy loop with SIGXCPU.
    let mut s = spec("while :; do :; done");
    s.limits.cpu_seconds = Some(1);
    let mut child = Child::spawn(&s).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 24),
        "SIGXCPU, reported by the guard"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_clear_exit() {
    let mut child = Child::spawn(&ChildSpec {
        guard: Some(GUARD.into()),
        ..ChildSpec::new("ghost", "/nonexistent/mcp-server", Vec::<String>::new())
    })
    .unwrap();
    assert_eq!(child.wait().await.unwrap().code(), Some(126));
}

fn quick_policy(max_restarts: u32) -> RestartPolicy {
    let mut p = RestartPolicy {
        max_restarts,
        ..RestartPolicy::default()
    };
    p.backoff.base = Duration::from_millis(10);
    p.backoff.max = Duration::from_millis(40);
    p
}

#[tokio::test]
async fn supervisor_restarts_then_gives_up_at_the_cap() {
    let sup = Supervisor::new(spec("echo up; exit 1"), quick_policy(2));
    let state = sup.state();
    let starts = Arc::new(AtomicU32::new(0));
    let tasks = TaskGroup::new();
    let n = starts.clone();
    tasks.spawn("supervisor", move |cancel| {
        sup.run(cancel, move |_child| {
            n.fetch_add(1, Ordering::SeqCst);
            async {}
        })
    });
    let t0 = Instant::now();
    while !matches!(*state.lock().unwrap(), ChildState::Failed { .. }) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never gave up: {:?}",
            state.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *state.lock().unwrap(),
        ChildState::Failed {
            last_exit: "exited 1".into()
        }
    );
    assert_eq!(
        starts.load(Ordering::SeqCst),
        3,
        "first start and two restarts"
    );
    assert!(tasks.shutdown(Duration::from_secs(5)).await.is_empty());
}

#[tokio::test]
async fn supervisor_stops_its_child_and_group_on_drain() {
    let sup = Supervisor::new(spec(FORKS), quick_policy(5));
    let state = sup.state();
    let (tx, rx) = std::sync::mpsc::channel();
    let tasks = TaskGroup::new();
    tasks.spawn("supervisor", move |cancel| {
        sup.run(cancel, move |child| {
            let tx = tx.clone();
            let group = child.group();
            let out = child.take_stdout().unwrap();
            async move {
                let mut lines = BufReader::new(out).lines();
                if let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send((group, l));
                }
            }
        })
    });
    let (group, line) =
        tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(line, "ready");
    assert!(matches!(*state.lock().unwrap(), ChildState::Running { .. }));
    assert!(tasks.shutdown(Duration::from_secs(5)).await.is_empty());
    assert_eq!(*state.lock().unwrap(), ChildState::Stopped);
    assert_group_empties(group, "after the drain");
}

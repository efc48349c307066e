//! Runs every example end to end, so the examples can never rot.
//!
//! `cargo test` builds the examples next to the test binaries (`target/<profile>/examples`);
//! each one must exit 0. A watchdog kills an example that hangs and fails the test with a
//! message instead of hanging the suite.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(180);

fn example_path(name: &str) -> PathBuf {
    // target/<profile>/deps/seeds-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

fn run_example(name: &str, args: &[&str]) -> String {
    let path = example_path(name);
    assert!(path.exists(), "example {name} was not built at {}; run `cargo test --workspace`", path.display());
    let mut child = Command::new(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                status.success(),
                "example {name} {args:?} failed with {status}\n--- stdout\n{stdout}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return stdout;
        }
        if started.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: example {name} {args:?} hung for {WATCHDOG:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tour() {
    let out = run_example("tour", &[]);
    assert!(out.contains("tour finished"), "{out}");
}

#[test]
fn process() {
    let out = run_example("process", &[]);
    assert!(out.contains("worker 2 computed 30"), "{out}");
}

#[test]
fn ticket_lock() {
    let out = run_example("ticket_lock", &[]);
    assert!(!out.contains("OVERSOLD"), "{out}");
    // Without the lock the example shows the oversell and still exits 0.
    run_example("ticket_lock", &["--no-lock"]);
}

#[test]
fn shared_value() {
    run_example("shared_value", &[]);
}

#[test]
fn producer_consumer() {
    run_example("producer_consumer", &[]);
}

#[test]
fn joinable_queue() {
    run_example("joinable_queue", &[]);
}

#[test]
fn pool() {
    let out = run_example("pool", &[]);
    assert!(out.contains("pool example finished"), "{out}");
}

#[test]
fn cpu_speedup() {
    // A small N: the test checks the sums and the report, not the speed.
    let out = run_example("cpu_speedup", &["2000000"]);
    assert!(out.contains("speedup:"), "{out}");
}

#[test]
fn executor() {
    let out = run_example("executor", &[]);
    assert!(out.contains("as_completed order: [100, 250, 500]"), "{out}");
}

#[test]
fn echo_server_pool() {
    let out = run_example("echo_server_pool", &[]);
    assert!(out.contains("120 lines echoed to 6 clients"), "{out}");
}

#[test]
fn pipe() {
    run_example("pipe", &[]);
}

#[test]
fn echo_server() {
    run_example("echo_server", &[]);
}

#[test]
fn manager_counter() {
    run_example("manager_counter", &[]);
}

#[test]
fn remote_manager() {
    run_example("remote_manager", &[]);
}

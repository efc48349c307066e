//! Remote managers across two programs: one serves (`Manager::serve`), the other
//! connects (`Manager::connect`) with the authkey, over TCP on 127.0.0.1 and over a Unix
//! socket file. The second program is this test binary run again in a helper role
//! (`--multiproc-manager-helper ROLE ...`, read in a constructor before the test
//! harness starts).

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiproc_manager::{DictProxy, Manager, ProxyError, QueueProxy, Shared, SharedProxy};
use multiproc_pipe::Address;
use multiproc_sync::Lock;
use serde::{Deserialize, Serialize};
use watchdog::watchdog;

const FLAG: &str = "--multiproc-manager-helper";
const KEY: &[u8] = b"remote manager test key";
const JOBS: u32 = 200;
const STOP: u32 = u32::MAX;
const PROMPT: Duration = Duration::from_secs(60);

/// A registered type both programs know (they are the same binary).
struct Log(Vec<String>);

#[derive(Serialize, Deserialize)]
enum LogRequest {
    Append(String),
    Len,
}

impl Shared for Log {
    const TYPEID: &'static str = "Log";
    type Init = ();
    type Request = LogRequest;
    type Response = usize;
    fn create(_: ()) -> Log {
        Log(Vec::new())
    }
    fn handle(&mut self, r: LogRequest) -> usize {
        if let LogRequest::Append(s) = r {
            self.0.push(s);
        }
        self.0.len()
    }
}

fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

// ---- the helper program ----

#[used]
#[unsafe(link_section = ".init_array")]
static HELPER: extern "C" fn() = {
    extern "C" fn helper() {
        // The command line, read from /proc: std's own view of it may not be set up
        // yet in a constructor. Processes the helper starts see only argv[0].
        let Ok(raw) = std::fs::read("/proc/self/cmdline") else { return };
        let args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.get(1).map(String::as_str) == Some(FLAG) {
            std::process::exit(run_helper(&args[2..]));
        }
    }
    helper
};

fn run_helper(args: &[String]) -> i32 {
    let role = args.first().map(String::as_str).unwrap_or("");
    let address: Option<Address> = args.get(1).and_then(|a| a.parse().ok());
    let key = args.get(2).map(|k| k.as_bytes().to_vec()).unwrap_or_default();
    let result = match (role, address) {
        ("consume", Some(a)) => consume(&a, &key),
        ("serve", Some(a)) => serve(&a),
        ("connect", Some(a)) => match Manager::connect(&a, Some(&key)) {
            Ok(_) => Ok("connected".to_owned()),
            Err(e) => {
                println!("refused: {e}");
                return 3;
            }
        },
        _ => Err(format!("bad helper arguments {args:?}")),
    };
    match result {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(e) => {
            eprintln!("helper {role} failed: {e}");
            1
        }
    }
}

/// Takes jobs from the served queue until STOP and counts them in the served dict
/// with `update_with` (over TCP: after proving it runs the same executable).
fn consume(address: &Address, key: &[u8]) -> Result<String, String> {
    let m = Manager::connect(address, Some(key)).map_err(|e| e.to_string())?;
    let jobs: QueueProxy<u32> = m.get("jobs").map_err(|e| e.to_string())?;
    let results: DictProxy<u32, u64> = m.get("results").map_err(|e| e.to_string())?;
    let log: SharedProxy<Log> = m.get("log").map_err(|e| e.to_string())?;
    let tcp = matches!(address, Address::Tcp(_));
    if jobs.is_local() == tcp {
        return Err(format!("a queue over {address} should be local: {}", !tcp));
    }
    let mut taken = 0;
    loop {
        let job = jobs.get().map_err(|e| e.to_string())?;
        if job == STOP {
            break;
        }
        results.update_with(&(job % 10), add_one).map_err(|e| e.to_string())?;
        taken += 1;
    }
    log.call(LogRequest::Append(format!("consumer took {taken}"))).map_err(|e| e.to_string())?;
    // Shared-memory primitives only exist over a Unix socket.
    match (m.lock(), tcp) {
        (Err(ProxyError::Unsupported(_)), true) | (Ok(_), false) => {}
        (other, _) => return Err(format!("lock() over {address}: {other:?}")),
    }
    Ok(format!("took {taken}"))
}

/// Serves a manager with a job queue until its standard input closes.
fn serve(address: &Address) -> Result<String, String> {
    let m = Manager::builder()
        .address(address.clone())
        .authkey(KEY)
        .register::<Log>()
        .serve()
        .map_err(|e| e.to_string())?;
    let jobs: QueueProxy<u32> = m.queue().map_err(|e| e.to_string())?;
    m.register("jobs", &jobs).map_err(|e| e.to_string())?;
    println!("listening on {}", m.address());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    m.shutdown().map_err(|e| e.to_string())?;
    Ok("served".to_owned())
}

// ---- the test side ----

fn helper(args: &[String]) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .arg(FLAG)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the helper program")
}

/// Waits for a helper to exit (killing it if it hangs) and returns its status code and
/// output.
fn finish(mut child: Child) -> (i32, String, String) {
    drop(child.stdin.take());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > PROMPT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: the helper program hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    (status.code().unwrap_or(-1), out, err)
}

fn key_arg() -> String {
    String::from_utf8(KEY.to_vec()).expect("utf-8 key")
}

/// This process serves; another program consumes the jobs.
fn serve_here_consume_there(address: Address) {
    let m = Manager::builder().address(address).authkey(KEY).register::<Log>().serve().expect("serve");
    let jobs: QueueProxy<u32> = m.queue().unwrap();
    let results: DictProxy<u32, u64> = m.dict().unwrap();
    let log: SharedProxy<Log> = m.create(()).unwrap();
    m.register("jobs", &jobs).unwrap();
    m.register("results", &results).unwrap();
    m.register("log", &log).unwrap();
    let consumer = helper(&["consume".to_owned(), m.address().to_string(), key_arg()]);
    for job in 0..JOBS {
        jobs.put(job).unwrap();
    }
    jobs.put(STOP).unwrap();
    let (code, out, err) = finish(consumer);
    assert_eq!(code, 0, "the consumer failed\n--- stdout\n{out}\n--- stderr\n{err}");
    assert!(out.contains(&format!("took {JOBS}")), "{out}");
    let counts = results.items().unwrap();
    assert_eq!(counts.len(), 10);
    assert!(counts.iter().all(|&(_, n)| n == u64::from(JOBS / 10)), "{counts:?}");
    assert_eq!(log.call(LogRequest::Len).unwrap(), 1);
}

#[test]
fn another_program_uses_a_manager_served_over_tcp() {
    watchdog("serve over tcp", || serve_here_consume_there(Address::localhost_any_port()));
}

#[test]
fn another_program_uses_a_manager_served_on_a_unix_socket_file() {
    watchdog("serve over a unix socket", || {
        let address = Address::unique_unix();
        let Address::Unix(path) = &address else { unreachable!() };
        let path = path.clone();
        serve_here_consume_there(address);
        // The manager was dropped: its socket file went with it.
        assert!(!path.exists(), "{} was left behind", path.display());
    });
}

#[test]
fn this_program_uses_a_manager_another_program_serves_over_tcp() {
    watchdog("connect over tcp", || {
        let mut server = helper(&["serve".to_owned(), "127.0.0.1:0".to_owned()]);
        let mut line = String::new();
        BufReader::new(server.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("the address");
        let address: Address = line.trim().strip_prefix("listening on ").expect(&line).parse().expect("an address");
        assert!(matches!(address, Address::Tcp(a) if a.ip().is_loopback()));

        let m = Manager::connect(&address, Some(KEY)).expect("connect");
        let jobs: QueueProxy<u32> = m.get("jobs").unwrap();
        assert!(!jobs.is_local());
        for n in 0..50 {
            jobs.put(n).unwrap();
        }
        let got: Vec<u32> = (0..50).map(|_| jobs.get_timeout(PROMPT).unwrap()).collect();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        // update_with across programs: the same executable, proven over TCP.
        let d: DictProxy<String, u64> = m.dict().unwrap();
        assert_eq!(d.update_with("n", add_one).unwrap(), 1);
        assert_eq!(d.update_with("n", add_one).unwrap(), 2);
        // Handles with descriptors cannot cross TCP.
        assert!(matches!(m.lock(), Err(ProxyError::Unsupported(_))));
        let local_lock = Lock::new().unwrap();
        assert!(m.register("lock", &local_lock).is_err());
        let log: SharedProxy<Log> = m.create(()).unwrap();
        assert_eq!(log.call(LogRequest::Append("hi".into())).unwrap(), 1);
        assert!(m.shutdown().is_err(), "a connected handle does not own the server");

        let (code, out, err) = finish(server);
        assert_eq!(code, 0, "the server program failed\n--- stdout\n{out}\n--- stderr\n{err}");
        // Its server is gone with it.
        assert!(jobs.put(1).is_err());
    });
}

#[test]
fn a_program_with_the_wrong_authkey_is_refused() {
    watchdog("wrong key", || {
        let m = Manager::builder().address(Address::localhost_any_port()).authkey(KEY).serve().expect("serve");
        let d: DictProxy<u8, u8> = m.dict().unwrap();
        let intruder = helper(&["connect".to_owned(), m.address().to_string(), "not the key".to_owned()]);
        let (code, out, err) = finish(intruder);
        assert_eq!(code, 3, "the intruder was let in\n--- stdout\n{out}\n--- stderr\n{err}");
        assert!(out.contains("authentication failed"), "{out}");
        d.insert(1, 2).unwrap();
        assert_eq!(d.get(&1).unwrap(), Some(2));
    });
}

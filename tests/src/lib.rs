//! A harness that runs a real pickleball cluster as OS processes on loopback.
//!
//! [`TestCluster::start`] launches `pickleball-scheduler` and N `pickleball-executor` processes
//! with ephemeral ports and waits until every executor is registered. Dropping the cluster
//! kills them all, also when a test panics; children also die with the test process
//! (`PR_SET_PDEATHSIG`), so a killed test run leaks nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

/// Directory holding the workspace's binaries (the test executable lives in `<dir>/deps`).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PICKLEBALL_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from 127.0.0.1:`port`; status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(2),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn spawn(binary: &str, args: &[String]) -> Child {
    let path = bin_dir().join(binary);
    let mut command = Command::new(&path);
    command
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("PICKLEBALL_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null());
    // The executors' embedded Python needs the venv's cloudpickle for its sub-interpreters, as
    // in a deployment (scripts/env.sh exports the venv's path).
    if let Ok(venv) = std::env::var("PICKLEBALL_VENV") {
        command.env("VIRTUAL_ENV", venv);
    }
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child when its
    // parent (this test process) dies.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {}: {e} (run `make test` to build it)",
            path.display()
        )
    })
}

/// Flags of the scheduler process; defaults suit tests (dead executors noticed quickly).
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub executors: usize,
    pub vcores: usize,
    pub executor_timeout_seconds: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            executors: 2,
            vcores: 2,
            executor_timeout_seconds: 6,
        }
    }
}

/// A scheduler and executors running as child processes.
pub struct TestCluster {
    pub scheduler_port: u16,
    scheduler: Child,
    executors: Vec<Option<Child>>,
}

impl TestCluster {
    /// Starts a scheduler and `options.executors` executors and waits until all registered.
    pub fn start(options: ClusterOptions) -> Self {
        let scheduler_port = free_port();
        let scheduler = spawn(
            "pickleball-scheduler",
            &[
                "--bind-host=127.0.0.1".into(),
                format!("--bind-port={scheduler_port}"),
                "--external-host=127.0.0.1".into(),
                format!(
                    "--executor-timeout-seconds={}",
                    options.executor_timeout_seconds
                ),
                "--expire-dead-executor-interval-seconds=1".into(),
            ],
        );
        let mut cluster = Self {
            scheduler_port,
            scheduler,
            executors: vec![],
        };
        for _ in 0..options.executors {
            let executor = spawn(
                "pickleball-executor",
                &[
                    "--scheduler-host=127.0.0.1".into(),
                    format!("--scheduler-port={scheduler_port}"),
                    "--bind-host=127.0.0.1".into(),
                    "--external-host=127.0.0.1".into(),
                    format!("--port={}", free_port()),
                    format!("--grpc-port={}", free_port()),
                    "--health-port=0".into(),
                    format!("--vcores={}", options.vcores),
                    "--heartbeat-interval-seconds=1".into(),
                ],
            );
            cluster.executors.push(Some(executor));
        }
        cluster.wait_for_executors(options.executors, Duration::from_secs(60));
        cluster
    }

    /// Number of executors the scheduler currently lists as alive.
    pub fn registered_executors(&self) -> usize {
        http_get(self.scheduler_port, "/api/executors")
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body.matches("\"id\"").count())
            .unwrap_or(0)
    }

    fn wait_for_executors(&mut self, n: usize, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.registered_executors() >= n {
                return;
            }
            if let Ok(Some(status)) = self.scheduler.try_wait() {
                panic!("the scheduler exited during start-up: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{n} executors did not register within {limit:?}");
    }

    /// `df://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler_port)
    }

    /// A client context with pickleball's codecs, connected to this cluster.
    pub async fn client(&self) -> SessionContext {
        use ballista::prelude::SessionContextExt;
        let state = SessionStateBuilder::new()
            .with_config(pickleball_codec::session::pickleball_session_config())
            .with_default_features()
            .build();
        SessionContext::remote_with_state(&self.url(), state)
            .await
            .expect("client context")
    }

    /// Kills executor `index` with SIGKILL, as a crash would.
    pub fn kill_executor(&mut self, index: usize) {
        if let Some(mut child) = self.executors[index].take() {
            child.kill().expect("SIGKILL executor");
            child.wait().expect("reap executor");
        }
    }

    /// Process ids of the scheduler and live executors.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.scheduler.id())
            .chain(self.executors.iter().flatten().map(Child::id))
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in self
            .executors
            .iter_mut()
            .flatten()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A local (non-distributed) context, the reference every cluster result is compared with.
pub fn local_context() -> SessionContext {
    SessionContext::new()
}

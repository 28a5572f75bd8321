//! A `vigilo serve slack` child process for the tests that run the real binary: its stderr
//! lines as they come (JSON logs), waiting for a given log line, SIGTERM with a deadline, and
//! never left running when a test fails half-way.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running child and the stderr lines it printed so far.
pub struct BotProcess {
    /// Names the process in failure messages (`replica-a`).
    pub name: String,
    /// The child itself.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl BotProcess {
    /// Spawns `cmd` with stdout discarded and stderr read line by line on a thread.
    pub fn spawn(name: &str, mut cmd: Command) -> BotProcess {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        BotProcess {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `within`) for a JSON log line whose message is `message`; returns it.
    pub fn wait_log(&mut self, message: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && v["fields"]["message"] == message
                    {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: no {message:?} log line; stderr so far:\n{:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// The address from the "Slack surface listening" log line (`--listen 127.0.0.1:0`).
    pub fn listening_addr(&mut self, within: Duration) -> SocketAddr {
        let listening = self.wait_log("Slack surface listening", within);
        listening["fields"]["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Every stderr line so far.
    pub fn log(&mut self) -> &[String] {
        self.seen.extend(self.lines.try_iter());
        &self.seen
    }

    /// Sends SIGTERM and waits for the exit (at most 10 s); returns the exit code.
    pub fn terminate(&mut self) -> i32 {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{}: did not stop within 10 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        // Only if a test failed half-way: never leave the child running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

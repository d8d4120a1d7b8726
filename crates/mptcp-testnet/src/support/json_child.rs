//! A child process that writes one JSON document per line on stdout (`mptcp --json
//! pm run`, `mptcp --json monitor`, ...): its lines are read on a thread as they come,
//! each with the instant it arrived; stderr is kept for failure messages.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running child whose JSON lines are collected. Killed on drop.
#[derive(Debug)]
pub struct JsonChild {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, Value)>>>,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl JsonChild {
    /// Starts `command` with stdout and stderr piped.
    ///
    /// # Panics
    /// When it cannot start (the test cannot run), naming the command. A line that is
    /// not JSON panics the reader thread and is reported by the next [`wait_for`].
    ///
    /// [`wait_for`]: Self::wait_for
    pub fn spawn(command: &mut Command) -> JsonChild {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let l = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            let Some(out) = out else { return };
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                l.lock().unwrap().push((Instant::now(), v));
            }
        });
        let e = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let Some(err) = err else { return };
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut e = e.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        JsonChild {
            child,
            lines,
            stderr,
            reader: Some(reader),
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Every line read so far, with when it came.
    pub fn lines(&self) -> Vec<(Instant, Value)> {
        self.lines.lock().unwrap().clone()
    }

    /// What the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a line matching `pred` among those read after the first `since`;
    /// its instant and the line.
    ///
    /// # Panics
    /// When the child exits first or `timeout` passes, with every line and stderr.
    pub fn wait_for(
        &mut self,
        what: &str,
        since: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Instant, Value) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.lines().into_iter().skip(since).find(|(_, v)| pred(v)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the child exited ({status}) before {what}; lines {:#?}\nstderr {}",
                    self.lines(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; lines {:#?}\nstderr {}",
                self.lines().iter().map(|(_, v)| v).collect::<Vec<_>>(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl JsonChild {
    /// Waits for the child to exit (after a signal the test sent, say) and for its
    /// last lines to be read; its exit status.
    ///
    /// # Panics
    /// When it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the child still runs after {timeout:?}; stderr {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.reader.take() {
            // The pipe is closed once the child and whatever inherited it are gone.
            let _ = reader.join();
        }
        status
    }
}

impl Drop for JsonChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_they_come() {
        let mut child = JsonChild::spawn(Command::new("sh").args([
            "-c",
            "echo '{\"n\": 1}'; echo oops >&2; echo '{\"n\": 2}'; sleep 5",
        ]));
        let (_, v) = child.wait_for("n = 2", 0, Duration::from_secs(5), |v| v["n"] == 2);
        assert_eq!(v["n"], 2);
        assert_eq!(child.lines().len(), 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.stderr().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(child.stderr(), "oops\n");
    }
}

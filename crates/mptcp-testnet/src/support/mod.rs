//! Helpers every crate's integration tests share: a byte pattern that cannot compare
//! equal when shifted, echo servers, a send-and-read-back round trip, fixed-seed
//! fuzzing ([`fuzz`]), two interfaces in a namespace, a test's temporary directory,
//! a web server and `curl` inside a namespace, and (feature `json`) a child process
//! whose JSON lines are read as they come.
//!
//! They live here, once, rather than in each crate's `tests/common`, so a fix reaches
//! every test. Most of them need no namespace; combine them with [`crate::Netns::run`]
//! to use them inside one.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Netns;

pub mod fuzz;
#[cfg(feature = "json")]
mod json_child;
#[cfg(feature = "json")]
pub use json_child::JsonChild;

/// How long an echo or a round trip waits for the next bytes.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Deterministic, non-repeating-looking bytes (xorshift64), so a shifted or dropped
/// chunk cannot compare equal. The same `len` gives the same bytes in every crate.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts `got == want` without printing megabytes on failure: the lengths, or the
/// first byte that differs.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

/// Echoes `stream` until EOF (waiting at most [`IO_TIMEOUT`] for each read), then
/// half-closes it.
pub fn echo_stream(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n])?;
    }
    stream.shutdown(Shutdown::Write)
}

/// Serves `n` connections on `listener`, one after the other, each echoed by
/// [`echo_stream`].
pub fn echo(listener: TcpListener, n: usize) -> JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        for _ in 0..n {
            let (mut stream, _) = listener.accept()?;
            echo_stream(&mut stream)?;
        }
        Ok(())
    })
}

/// Sends `data` (from a second thread, so a large echo cannot deadlock), half-closes,
/// and reads everything that comes back.
pub fn round_trip(stream: &TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let data_owned = data.to_vec();
    let sender = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&data_owned)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(data.len());
    (&*stream).read_to_end(&mut back)?;
    sender
        .join()
        .map_err(|_| io::Error::other("sender thread panicked"))??;
    Ok(back)
}

/// `ip -n NS ARGS...` (iproute2, the independent reference tests compare with); its
/// stdout.
///
/// # Panics
/// When `ip` cannot run or fails, with its stderr.
pub fn ip(ns: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (install iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip -n {ns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two usable interfaces in the namespace `ns`: a veth pair `x0`/`x1`, up, with
/// `198.18.<a>.1/24` and `198.18.<b>.1/24` (a multi-homed host in one namespace).
///
/// # Panics
/// As [`ip`].
pub fn two_interfaces(ns: &str, a: u8, b: u8) {
    ip(
        ns,
        &["link", "add", "x0", "type", "veth", "peer", "name", "x1"],
    );
    for (dev, net) in [("x0", a), ("x1", b)] {
        ip(
            ns,
            &["addr", "add", &format!("198.18.{net}.1/24"), "dev", dev],
        );
        ip(ns, &["link", "set", dev, "up"]);
    }
}

/// A fresh directory path under the system's temporary directory, for one test's
/// files (a daemon's state directory, ...): nothing is there at first; on drop it is
/// removed, with every file or directory the test put beside it as `<dir>.<ext>`.
#[derive(Debug)]
pub struct TestDir(PathBuf);

impl TestDir {
    /// `<tmp>/mptcp-<label>-<pid>`, emptied.
    pub fn new(label: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("mptcp-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestDir(dir)
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let (Some(parent), Some(name)) = (self.0.parent(), self.0.file_name()) else {
            return;
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
            }
        }
    }
}

/// A child process, killed (and reaped) on drop.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python's `http.server` (python3) in `ns`, serving the files of `dir` on
/// `bind`:`port` (`0.0.0.0`; `::` serves both families); returns once it answers,
/// on `ns`'s loopback for a wildcard `bind` (10 s at most).
///
/// # Panics
/// When python3 cannot start or the server does not answer in time.
pub fn http_server(ns: &Netns, dir: &Path, bind: IpAddr, port: u16) -> KillOnDrop {
    let child = ns
        .command("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind"])
        .arg(bind.to_string())
        .arg("--directory")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 -m http.server (install python3): {e}"));
    let server = KillOnDrop(child);
    let probe = if bind.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bind
    };
    let addr = SocketAddr::new(probe, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ns.run(|| TcpStream::connect(addr).is_ok()).unwrap() {
        assert!(
            Instant::now() < deadline,
            "python3 http.server did not answer on {addr} in {}",
            ns.name()
        );
        thread::sleep(Duration::from_millis(50));
    }
    server
}

/// `curl -sS --max-time 20 -o OUT EXTRA... URL` in `ns`; its output (the body is in
/// `out`).
///
/// # Panics
/// When `ip netns exec` cannot run.
pub fn curl(ns: &Netns, extra: &[&str], url: &str, out: &Path) -> Output {
    ns.command("curl")
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(out)
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl in {}: {e}", ns.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_stable_and_echo_round_trips() {
        assert_eq!(pattern(4), pattern(8)[..4]);
        assert_ne!(pattern(64)[..32], pattern(64)[32..]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo(listener, 1);
        let data = pattern(1 << 20);
        let back = round_trip(&TcpStream::connect(addr).unwrap(), &data).unwrap();
        assert_same(&back, &data, "echo");
        server.join().unwrap().unwrap();
    }

    #[test]
    fn a_test_dir_goes_with_what_is_beside_it() {
        let dir = TestDir::new("support-selftest");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let aside = dir.with_extension("toml");
        std::fs::write(&aside, "x").unwrap();
        let path = dir.to_path_buf();
        drop(dir);
        assert!(!path.exists() && !aside.exists());
    }
}

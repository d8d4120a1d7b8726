//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mptcp_net::{MptcpExt, MptcpStatus};

/// Deterministic, non-repeating-looking bytes (xorshift), so a shifted or
/// dropped chunk cannot compare equal.
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

/// Accepts one connection, echoes it until EOF, and returns the accepted
/// stream's status.
pub fn echo_server(listener: TcpListener) -> JoinHandle<io::Result<MptcpStatus>> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let status = stream.mptcp_status()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n])?;
        }
        stream.shutdown(Shutdown::Write)?;
        Ok(status)
    })
}

/// Sends `data` (from a second thread), half-closes, and reads the echo.
pub fn round_trip(stream: &TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
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

/// Asserts `got == want` without printing megabytes on failure.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

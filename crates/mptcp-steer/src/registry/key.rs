//! The shared secret that authenticates registry messages.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use hmac::Mac;

use super::wire::HmacSha256;

/// The shortest secret accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The HMAC-SHA256 key shared by the balancer and its backends.
///
/// Any secret of at least [`MIN_KEY_LEN`] bytes. [`Debug`](fmt::Debug) never
/// shows it.
#[derive(Clone)]
pub struct Key(Box<[u8]>);

impl Key {
    /// A key from raw bytes; fails with `InvalidInput` when shorter than [`MIN_KEY_LEN`].
    pub fn new(secret: impl Into<Vec<u8>>) -> io::Result<Key> {
        let secret = secret.into();
        if secret.len() < MIN_KEY_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "registry key is {} bytes, at least {MIN_KEY_LEN} are needed (e.g. `head -c 32 /dev/urandom > KEYFILE`)",
                    secret.len()
                ),
            ));
        }
        Ok(Key(secret.into_boxed_slice()))
    }

    /// Reads the key file: its whole content, less one trailing line end
    /// (`\n` or `\r\n`), so a key written by an editor or by `openssl rand -hex
    /// 32 > FILE` is the same secret on every host.
    ///
    /// Errors name the file: unreadable (kind of the `read` error), or shorter
    /// than [`MIN_KEY_LEN`] (`InvalidInput`). A file other users can read is
    /// accepted with a tracing warning.
    pub fn from_file(path: impl AsRef<Path>) -> io::Result<Key> {
        let path = path.as_ref();
        let mut bytes = fs::read(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read registry key file {}: {e}", path.display()),
            )
        })?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        warn_if_shared(path);
        Key::new(bytes).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("registry key file {}: {e}", path.display()),
            )
        })
    }

    pub(crate) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(
                file = %path.display(),
                "registry key file is readable by every user; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_missing_files_name_the_file() {
        let dir = std::env::temp_dir().join(format!("mptcp-steer-key-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        fs::write(&short, b"0123456789abcde\n").unwrap();
        let e = Key::from_file(&short).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains(&short.display().to_string()), "{e}");
        assert!(e.to_string().contains("15 bytes"), "{e}");

        let missing = dir.join("missing");
        let e = Key::from_file(&missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );

        let good = dir.join("good");
        fs::write(&good, b"0123456789abcdef\r\n").unwrap();
        let k = Key::from_file(&good).unwrap();
        assert_eq!(format!("{k:?}"), "Key(16 bytes)");
        fs::remove_dir_all(&dir).unwrap();
    }
}

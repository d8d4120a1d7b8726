//! Value parsers that several commands' arguments share. Below both `cli.rs` and the
//! `cmd/` modules: they import from here, never from each other.

use std::time::Duration;

use mptcp_net::duration;

/// The longest duration a `SECONDS` argument takes, unless its command has a shorter
/// limit: a day.
pub const MAX_SECONDS: Duration = Duration::from_secs(86_400);

/// A duration more than 0 and at most [`MAX_SECONDS`]: seconds as a decimal number
/// (`2`, `0.5`) or with units (`500ms`, `2m`), read by the workspace's one duration
/// parser ([`mptcp_net::duration`]); a clap value parser.
pub fn seconds(s: &str) -> Result<Duration, String> {
    seconds_up_to(MAX_SECONDS)(s)
}

/// [`seconds`] with a shorter limit, for a command whose peer refuses longer ones
/// (`bench`: the protocol's hour).
pub fn seconds_up_to(max: Duration) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s: &str| duration::parse_within(s, duration::POSITIVE, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_values() {
        assert_eq!(seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("NaN").is_err());
        assert!(seconds("1e9").is_err());
        assert!(seconds("86400").is_ok());
        assert!(seconds("86401").is_err());
        assert_eq!(seconds("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(seconds("1d").unwrap(), MAX_SECONDS);
        assert_eq!(seconds("0s"), Err("`0s` is not more than 0 seconds".into()));
        assert!(seconds("").is_err());
        assert!(seconds("2 fortnights").is_err());
        let bench = seconds_up_to(Duration::from_secs(3600));
        assert_eq!(bench("3601"), Err("`3601` is longer than 1h".into()));
    }
}

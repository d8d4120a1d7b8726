//! Value parsers that several commands' arguments share. Below both `cli.rs` and the
//! `cmd/` modules: they import from here, never from each other.

use std::time::Duration;

/// The longest duration a `SECONDS` argument takes, unless its command has a shorter
/// limit: a day.
pub const MAX_SECONDS: Duration = Duration::from_secs(86_400);

/// Seconds as a decimal number (`2`, `0.5`), more than 0 and at most [`MAX_SECONDS`]
/// (a clap value parser; the one parser of the command's `SECONDS` arguments).
pub fn seconds(s: &str) -> Result<Duration, String> {
    seconds_up_to(MAX_SECONDS)(s)
}

/// [`seconds`] with a shorter limit, for a command whose peer refuses longer ones
/// (`bench`: the protocol's hour).
pub fn seconds_up_to(max: Duration) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s: &str| {
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        if !(v > 0.0 && v <= max.as_secs_f64()) {
            return Err(format!(
                "{s} is not between 0 and {} seconds",
                max.as_secs()
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
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
    }
}

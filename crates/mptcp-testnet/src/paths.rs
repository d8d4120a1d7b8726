//! What a [`TestNet`](crate::TestNet) and a [`Fleet`](crate::Fleet) share in their
//! builders: the client's paths, their rate limits and the address families, checked
//! once here.

use crate::Error;

/// The path options of a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathOptions {
    /// How many paths the client has.
    pub(crate) paths: usize,
    /// The rate of every path, unless `path_rates` names it.
    pub(crate) rate_mbit: Option<u32>,
    /// Per-path rates (path, Mbit/s).
    pub(crate) path_rates: Vec<(usize, u32)>,
    pub(crate) ipv4: bool,
    pub(crate) ipv6: bool,
}

impl PathOptions {
    /// `paths` paths, unshaped, IPv4 only.
    pub(crate) fn new(paths: usize) -> PathOptions {
        PathOptions {
            paths,
            rate_mbit: None,
            path_rates: Vec::new(),
            ipv4: true,
            ipv6: false,
        }
    }

    /// Checks the path count (1 to `max`, `what` naming the network in the message),
    /// that a family is on and the rates; each path's rate.
    pub(crate) fn check(&self, max: usize, what: &str) -> Result<Vec<Option<u32>>, Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if !(1..=max).contains(&self.paths) {
            return invalid(format!(
                "{} paths requested; {what} has 1 to {max}",
                self.paths
            ));
        }
        if !self.ipv4 && !self.ipv6 {
            return invalid("neither IPv4 nor IPv6 enabled".into());
        }
        let mut rates = vec![self.rate_mbit; self.paths];
        for &(path, mbit) in &self.path_rates {
            let Some(rate) = rates.get_mut(path) else {
                return invalid(format!(
                    "rate for path {path}, but there are only {} paths",
                    self.paths
                ));
            };
            *rate = Some(mbit);
        }
        if rates.contains(&Some(0)) {
            return invalid("a rate of 0 Mbit/s; leave the rate unset for an unshaped path".into());
        }
        Ok(rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let mut o = PathOptions::new(3);
        o.rate_mbit = Some(10);
        o.path_rates.push((1, 30));
        assert_eq!(o.check(4, "a net").unwrap(), [Some(10), Some(30), Some(10)]);
        for bad in [
            PathOptions::new(0),
            PathOptions::new(5),
            PathOptions {
                ipv4: false,
                ..PathOptions::new(1)
            },
            PathOptions {
                path_rates: vec![(2, 10)],
                ..PathOptions::new(2)
            },
            PathOptions {
                rate_mbit: Some(0),
                ..PathOptions::new(2)
            },
        ] {
            let e = bad.check(4, "a net").unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad:?}");
        }
        assert_eq!(
            PathOptions::new(5)
                .check(4, "a net")
                .unwrap_err()
                .to_string(),
            Error::InvalidConfig("5 paths requested; a net has 1 to 4".into()).to_string()
        );
    }
}

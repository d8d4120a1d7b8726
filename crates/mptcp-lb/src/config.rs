//! The balancer's configuration: the virtual services, the backends, the mode.
//! Given on the command line (`--vip`, `--backend`, `--mode`) or in a TOML file
//! (`--config lb.toml`, re-read on SIGHUP); every mistake is refused, with its reason,
//! before anything is touched.
//!
//! ```toml
//! mode = "route"                  # "route": ECMP anycast; "nat": nftables dnat by jhash
//! vip = ["198.18.200.1:80", "[2001:db8:200::1]:80"]
//! registry = "198.19.0.254:7010"  # token steering: where backends publish their tokens
//! key = "/etc/mptcp/lb.key"       # the registry's shared secret (16 bytes or more)
//! ingress = ["c0", "c1"]          # token steering: client-facing interfaces (default:
//!                                 # every interface but lo and those towards backends)
//!
//! [[backend]]
//! address = "198.19.0.2"
//! join_port = 20000               # the port this backend announces with the VIP
//!
//! [[backend]]
//! address = "198.19.1.2"
//! join_port = 20001
//! drain = true                    # no new connections; live ones and their joins stay
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How new connections reach a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// ECMP anycast: every backend holds the VIP on `lo`; a multipath route to the VIP
    /// over the backends, hashed on the 5-tuple (`fib_multipath_hash_policy=1`), picks
    /// one. An operator's existing route is kept; one is made when there is none.
    #[default]
    Route,
    /// An nftables `dnat` to `jhash(5-tuple) mod N` over the active backends' own
    /// (private) addresses.
    Nat,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Route => "route",
            Mode::Nat => "nat",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "route" => Ok(Mode::Route),
            "nat" => Ok(Mode::Nat),
            _ => Err(format!("mode {s:?}: use route or nat")),
        }
    }
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// Its own address: the next hop (route mode) or the `dnat` target (nat mode), and
    /// the address its `mptcp pm` publishes tokens from.
    pub address: IpAddr,
    /// The port it announces with the VIP (`mptcp pm run --role server --join-port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_port: Option<u16>,
    /// Draining: no new connections; live ones, and their joins, stay.
    pub drain: bool,
}

impl FromStr for Backend {
    type Err = String;

    /// `ADDR[,join-port=P][,drain]`.
    fn from_str(s: &str) -> Result<Backend, String> {
        let mut parts = s.split(',');
        let addr = parts.next().unwrap_or_default().trim();
        let address = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("backend {s:?}: {addr:?} is not an IP address"))?;
        let mut b = Backend {
            address,
            join_port: None,
            drain: false,
        };
        for opt in parts {
            match opt.trim().split_once('=') {
                Some(("join-port", p)) => {
                    b.join_port = Some(p.parse().map_err(|_| {
                        format!("backend {s:?}: join-port {p:?} is not a port number")
                    })?)
                }
                None if opt.trim() == "drain" => b.drain = true,
                _ => {
                    return Err(format!(
                        "backend {s:?}: unknown option {opt:?} (use join-port=P or drain)"
                    ))
                }
            }
        }
        Ok(b)
    }
}

/// Token steering: the registry backends publish to, and where the program runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Steering {
    /// Where backends' `mptcp pm` send their tokens (UDP).
    pub registry: SocketAddr,
    /// The shared secret's file.
    pub key: PathBuf,
    /// Client-facing interfaces (empty: every interface but `lo` and those towards
    /// backends).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<String>,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Route or nat.
    pub mode: Mode,
    /// The virtual services (VIP:port).
    pub vips: Vec<SocketAddr>,
    /// The backends, in the order given.
    pub backends: Vec<Backend>,
    /// Token steering, when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering: Option<Steering>,
}

/// A configuration refused: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Option<Mode>,
    #[serde(default)]
    vip: Vec<String>,
    registry: Option<String>,
    key: Option<PathBuf>,
    #[serde(default)]
    ingress: Vec<String>,
    #[serde(default)]
    backend: Vec<RawBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: String,
    join_port: Option<u16>,
    #[serde(default)]
    drain: bool,
}

impl Config {
    /// Parses and checks a TOML configuration; `name` prefixes the errors.
    ///
    /// # Errors
    /// [`ConfigError`] for bad TOML, an unknown key, or what [`Config::check`] refuses.
    ///
    /// ```
    /// let c = mptcp_lb::Config::from_toml(
    ///     "vip = [\"198.18.200.1:80\"]\n[[backend]]\naddress = \"198.19.0.2\"\njoin_port = 20000\n",
    ///     "lb.toml",
    /// )?;
    /// assert_eq!(c.backends[0].join_port, Some(20000));
    /// # Ok::<(), mptcp_lb::ConfigError>(())
    /// ```
    pub fn from_toml(text: &str, name: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ConfigError(format!(
                "{name}{}: {}",
                line.map(|l| format!(":{l}")).unwrap_or_default(),
                e.message().trim().replace('\n', " ")
            ))
        })?;
        let bad = |m: String| ConfigError(format!("{name}: {m}"));
        let vips = raw
            .vip
            .iter()
            .map(|v| parse_vip(v).map_err(bad))
            .collect::<Result<_, _>>()?;
        let backends = raw
            .backend
            .into_iter()
            .map(|b| {
                let address = b.address.parse().map_err(|_| {
                    bad(format!(
                        "backend address {:?} is not an IP address",
                        b.address
                    ))
                })?;
                Ok(Backend {
                    address,
                    join_port: b.join_port,
                    drain: b.drain,
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        let steering = match (raw.registry, raw.key) {
            (None, None) => None,
            (Some(r), Some(key)) => Some(Steering {
                registry: r
                    .parse()
                    .map_err(|_| bad(format!("registry {r:?} is not ADDR:PORT")))?,
                key,
                ingress: raw.ingress,
            }),
            _ => return Err(bad("registry and key go together".into())),
        };
        let c = Config {
            mode: raw.mode.unwrap_or_default(),
            vips,
            backends,
            steering,
        };
        c.check().map_err(|e| bad(e.0))?;
        Ok(c)
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`ConfigError`] when it cannot be read or is refused.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{name}: cannot read the configuration: {e}")))?;
        Config::from_toml(&text, &name)
    }

    /// Checks what no host needs to be asked about.
    ///
    /// # Errors
    /// No VIP or no backend; a VIP or backend given twice; two backends with one join
    /// port, or a join port equal to a service port; a backend of a family no VIP has;
    /// more than [`MAX_BACKENDS`] backends; a short key file is checked at start.
    pub fn check(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.vips.is_empty() {
            return err("no VIP: give --vip ADDR:PORT".into());
        }
        if self.backends.is_empty() {
            return err("no backend: give --backend ADDR[,join-port=P]".into());
        }
        if self.backends.len() > MAX_BACKENDS {
            return err(format!(
                "{} backends: at most {MAX_BACKENDS}",
                self.backends.len()
            ));
        }
        for (i, v) in self.vips.iter().enumerate() {
            if v.port() == 0 {
                return err(format!("VIP {v}: port 0"));
            }
            if self.vips[..i].contains(v) {
                return err(format!("VIP {v} given twice"));
            }
        }
        for (i, b) in self.backends.iter().enumerate() {
            if let Some(o) = self.backends[..i].iter().find(|o| o.address == b.address) {
                return err(format!("backend {} given twice", o.address));
            }
            if let Some(p) = b.join_port {
                if p == 0 {
                    return err(format!("backend {}: join-port 0", b.address));
                }
                if let Some(o) = self.backends[..i].iter().find(|o| o.join_port == Some(p)) {
                    return err(format!(
                        "backends {} and {} both have join port {p}: each backend needs its own",
                        o.address, b.address
                    ));
                }
                if let Some(v) = self.vips.iter().find(|v| v.port() == p) {
                    return err(format!(
                        "backend {}: join port {p} is the service port of VIP {v}",
                        b.address
                    ));
                }
            }
            if !self.vips.iter().any(|v| v.is_ipv4() == b.address.is_ipv4()) {
                return err(format!(
                    "backend {}: no VIP of its address family",
                    b.address
                ));
            }
        }
        if self.backends.iter().all(|b| b.drain) {
            tracing::warn!("every backend drains: new connections have nowhere to go");
        }
        Ok(())
    }

    /// The VIP addresses, each once.
    pub fn vip_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.vips.iter().map(|s| s.ip()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The most backends one balancer keeps (each gets a mark, a routing table and a rule).
pub const MAX_BACKENDS: usize = 64;

/// `ADDR:PORT` or `[V6]:PORT`.
pub fn parse_vip(s: &str) -> Result<SocketAddr, String> {
    let v: SocketAddr = s
        .parse()
        .map_err(|_| format!("VIP {s:?} is not ADDR:PORT (IPv6: [ADDR]:PORT)"))?;
    let ip = v.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(format!("VIP {s}: {ip} cannot be a service address"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vips: &[&str], backends: &[&str]) -> Result<Config, ConfigError> {
        let c = Config {
            mode: Mode::Route,
            vips: vips.iter().map(|v| parse_vip(v).unwrap()).collect(),
            backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
            steering: None,
        };
        c.check().map(|()| c)
    }

    #[test]
    fn backend_specs() {
        let b: Backend = "198.19.0.2,join-port=20000,drain".parse().unwrap();
        assert_eq!(
            b,
            Backend {
                address: "198.19.0.2".parse().unwrap(),
                join_port: Some(20000),
                drain: true
            }
        );
        let b: Backend = "[2001:db8:b0::2],join-port=20000".parse().unwrap();
        assert!(b.address.is_ipv6());
        assert!("198.19.0.2,port=1"
            .parse::<Backend>()
            .unwrap_err()
            .contains("unknown option"));
        assert!("198.19.0.2,join-port=x"
            .parse::<Backend>()
            .unwrap_err()
            .contains("not a port"));
        assert!("host".parse::<Backend>().unwrap_err().contains("not an IP"));
    }

    #[test]
    fn refusals_are_one_line_each() {
        let e = |r: Result<Config, ConfigError>| r.unwrap_err().0;
        assert!(e(cfg(&[], &["198.19.0.2"])).contains("no VIP"));
        assert!(e(cfg(&["198.18.200.1:80"], &[])).contains("no backend"));
        assert_eq!(
            e(cfg(
                &["198.18.200.1:80"],
                &["198.19.0.2,join-port=20000", "198.19.1.2,join-port=20000"]
            )),
            "backends 198.19.0.2 and 198.19.1.2 both have join port 20000: each backend needs its own"
        );
        assert!(e(cfg(&["198.18.200.1:80"], &["198.19.0.2", "198.19.0.2"])).contains("twice"));
        assert!(e(cfg(&["198.18.200.1:80"], &["198.19.0.2,join-port=80"])).contains("service port"));
        assert!(e(cfg(&["198.18.200.1:80"], &["2001:db8:b0::2"])).contains("address family"));
        assert!(parse_vip("198.18.200.1").unwrap_err().contains("ADDR:PORT"));
        assert!(parse_vip("0.0.0.0:80").unwrap_err().contains("cannot be"));
        assert!(cfg(
            &["198.18.200.1:80", "[2001:db8:200::1]:80"],
            &[
                "198.19.0.2,join-port=20000",
                "2001:db8:b0::2,join-port=20000"
            ]
        )
        .is_err());
    }

    #[test]
    fn toml_file() {
        let c = Config::from_toml(
            "mode = \"nat\"\nvip = [\"198.18.200.1:80\"]\nregistry = \"198.19.0.254:7010\"\n\
             key = \"/k\"\n[[backend]]\naddress = \"198.19.0.2\"\njoin_port = 20000\n\
             [[backend]]\naddress = \"198.19.1.2\"\ndrain = true\n",
            "lb.toml",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Nat);
        assert!(c.backends[1].drain);
        assert_eq!(c.steering.unwrap().registry.port(), 7010);
        let e = Config::from_toml("vip = [\"x\"]\n", "lb.toml").unwrap_err();
        assert_eq!(
            e.0,
            "lb.toml: VIP \"x\" is not ADDR:PORT (IPv6: [ADDR]:PORT)"
        );
        let e = Config::from_toml("bogus = 1\n", "lb.toml").unwrap_err();
        assert!(
            e.0.starts_with("lb.toml:1: unknown field `bogus`"),
            "{}",
            e.0
        );
        let e = Config::from_toml("registry = \"1.2.3.4:5\"\n", "lb.toml").unwrap_err();
        assert!(e.0.contains("go together"));
    }
}

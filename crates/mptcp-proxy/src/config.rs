//! Routes and their settings, built in code or read from TOML.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use mptcp_net::duration::Written;
use serde::{Deserialize, Deserializer};

/// Which PROXY protocol header, if any, is sent to the upstream before the
/// client's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ProxyProtocol {
    /// No header (the default).
    #[default]
    None,
    /// Version 1, the text line (`PROXY TCP4 ...\r\n`).
    V1,
    /// Version 2, binary, with the MPTCP TLV (see
    /// [`proxy_protocol`](crate::proxy_protocol)).
    V2,
}

impl FromStr for ProxyProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" | "off" => Ok(ProxyProtocol::None),
            "v1" | "1" => Ok(ProxyProtocol::V1),
            "v2" | "2" => Ok(ProxyProtocol::V2),
            _ => Err(format!(
                "unknown PROXY protocol version `{s}`: expected v1, v2 or none"
            )),
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyProtocol::None => "none",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        })
    }
}

impl<'de> Deserialize<'de> for ProxyProtocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Default for [`Route::max_conns`].
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// The most a route's [`Route::max_conns`] may be (as `mptcp proxy --max-conns`).
pub const MAX_CONNS_LIMIT: usize = 1_000_000_000;
/// Largest [`Route::copy_buffer`] and [`Route::bulk_buffer`]: 64 MiB, the
/// process-wide budget of bulk buffers.
pub const MAX_BUFFER: usize = 64 << 20;
/// Default for [`Route::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`Route::idle_timeout`]: 5 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default for [`Route::copy_buffer`]: 64 KiB per direction.
pub const DEFAULT_COPY_BUFFER: usize = 64 * 1024;
/// Default for [`Route::bulk_buffer`]: 1 MiB per direction in a bulk burst.
pub const DEFAULT_BULK_BUFFER: usize = 1024 * 1024;
/// Default for [`Route::backlog`].
pub const DEFAULT_BACKLOG: i32 = 4096;
/// Default for [`Route::notsent_lowat`]: 1 MiB written but not yet sent per
/// socket.
pub const DEFAULT_NOTSENT_LOWAT: u32 = 1024 * 1024;

/// One listening address relayed to one upstream.
///
/// ```
/// use std::time::Duration;
/// use mptcp_proxy::{ProxyProtocol, Route};
///
/// let route = Route::new("[::]:8443".parse()?, "backend.internal:443")
///     .to_tcp(true)
///     .proxy_protocol(ProxyProtocol::V2)
///     .idle_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(route.upstream, "backend.internal:443");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// A name for logs and metrics (default: the listen address).
    pub name: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// `HOST:PORT` to relay to; resolved at each connection.
    pub upstream: String,
    /// Listen with plain TCP only (default: MPTCP, which also takes TCP clients).
    pub listen_tcp: bool,
    /// Dial the upstream with plain TCP only (default: MPTCP, falling back to TCP
    /// where the host cannot make MPTCP sockets, and on the wire where the peer does
    /// not speak it).
    pub to_tcp: bool,
    /// The PROXY protocol header sent to the upstream.
    pub proxy_protocol: ProxyProtocol,
    /// Most connections relayed at once; past it the accept loop waits.
    pub max_conns: usize,
    /// How long a dial to the upstream may take.
    pub connect_timeout: Duration,
    /// Close a connection after this long without a byte either way (neither
    /// relayed nor acknowledged by a peer); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Bytes of the user-space buffer a direction copies through, until one read
    /// fills it.
    pub copy_buffer: usize,
    /// Bytes of the buffer a direction copies through once one read has filled
    /// its `copy_buffer` (a bulk transfer), held only while bytes flow and within
    /// a process-wide budget of 64 MiB of bulk buffers (past it, `copy_buffer`).
    /// Not more than `copy_buffer` turns bulk buffers off.
    pub bulk_buffer: usize,
    /// Splice(2) bulk transfers between two plain TCP sockets instead of copying
    /// them (off by default: copying through the bulk buffer measured faster and
    /// cheaper on Linux 6.18; see the crate docs). Never used with MPTCP sockets.
    pub splice: bool,
    /// The listen backlog (capped by the kernel at `net.core.somaxconn`).
    pub backlog: i32,
    /// The most bytes each relayed socket holds written but not yet sent
    /// (`TCP_NOTSENT_LOWAT`) before the relay stops reading from the other side;
    /// `None`: the kernel's default (`net.ipv4.tcp_notsent_lowat`, no limit but the
    /// send buffer). See the crate docs, "Bytes held in send buffers".
    pub notsent_lowat: Option<u32>,
}

impl Route {
    /// A route from `listen` to `upstream` (`HOST:PORT`) with the defaults.
    pub fn new(listen: SocketAddr, upstream: impl Into<String>) -> Route {
        Route {
            name: listen.to_string(),
            listen,
            upstream: upstream.into(),
            listen_tcp: false,
            to_tcp: false,
            proxy_protocol: ProxyProtocol::None,
            max_conns: DEFAULT_MAX_CONNS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            copy_buffer: DEFAULT_COPY_BUFFER,
            bulk_buffer: DEFAULT_BULK_BUFFER,
            splice: false,
            backlog: DEFAULT_BACKLOG,
            notsent_lowat: Some(DEFAULT_NOTSENT_LOWAT),
        }
    }

    /// Sets [`Route::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets [`Route::listen_tcp`].
    pub fn listen_tcp(mut self, on: bool) -> Self {
        self.listen_tcp = on;
        self
    }
    /// Sets [`Route::to_tcp`].
    pub fn to_tcp(mut self, on: bool) -> Self {
        self.to_tcp = on;
        self
    }
    /// Sets [`Route::proxy_protocol`].
    pub fn proxy_protocol(mut self, version: ProxyProtocol) -> Self {
        self.proxy_protocol = version;
        self
    }
    /// Sets [`Route::max_conns`] (1 to [`MAX_CONNS_LIMIT`]).
    pub fn max_conns(mut self, n: usize) -> Self {
        self.max_conns = n.clamp(1, MAX_CONNS_LIMIT);
        self
    }
    /// Sets [`Route::connect_timeout`].
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    /// Sets [`Route::idle_timeout`].
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }
    /// Sets [`Route::copy_buffer`] (at least 1 KiB).
    pub fn copy_buffer(mut self, bytes: usize) -> Self {
        self.copy_buffer = bytes.clamp(1024, MAX_BUFFER);
        self
    }
    /// Sets [`Route::bulk_buffer`] (at most [`MAX_BUFFER`]).
    pub fn bulk_buffer(mut self, bytes: usize) -> Self {
        self.bulk_buffer = bytes.min(MAX_BUFFER);
        self
    }
    /// Sets [`Route::notsent_lowat`] (`None` or `Some(0)`: the kernel's default).
    pub fn notsent_lowat(mut self, bytes: Option<u32>) -> Self {
        self.notsent_lowat = bytes.filter(|&b| b > 0);
        self
    }
    /// Sets [`Route::splice`].
    pub fn splice(mut self, on: bool) -> Self {
        self.splice = on;
        self
    }
    /// Sets [`Route::backlog`].
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Checks what the types cannot: an upstream of the form `HOST:PORT`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_upstream(&self.upstream).map_err(|reason| ConfigError::Invalid {
            route: self.name.clone(),
            reason,
        })
    }
}

/// `HOST:PORT` with a port 1-65535 and a non-empty host (`[v6]:port` for IPv6).
pub fn check_upstream(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not HOST:PORT (no port)"))?;
    if host.is_empty() || host == "[]" {
        return Err(format!("`{s}` is not HOST:PORT (no host)"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "`{s}`: an IPv6 address needs brackets, as in [2001:db8::1]:443"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{s}`: the port `{port}` is not 1-65535")),
    }
}

/// The longest timeout accepted: a year ([`mptcp_net::duration::MAX`]). A deadline is
/// the clock plus the timeout, and past the clock's range that addition panics.
pub const MAX_TIMEOUT: Duration = mptcp_net::duration::MAX;

/// The TOML file of `mptcp proxy --config`: settings for the whole proxy and
/// one `[[route]]` table per route. Unknown keys are refused.
///
/// ```
/// use mptcp_proxy::Config;
///
/// let config = Config::from_toml(r#"
///     metrics = "127.0.0.1:9100"
///     drain_timeout = "10s"
///
///     [[route]]
///     name = "web"
///     listen = "[::]:443"
///     to = "127.0.0.1:8443"
///     to_tcp = true
///     proxy_protocol = "v2"
///     idle_timeout = "2m"
/// "#)?;
/// assert_eq!(config.routes.len(), 1);
/// assert!(config.routes[0].to_tcp);
/// # Ok::<(), mptcp_proxy::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The routes, at least one.
    pub routes: Vec<Route>,
    /// Where to serve Prometheus `/metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Worker threads (`None`: one per CPU), 1 to [`MAX_THREADS`].
    pub threads: Option<usize>,
    /// How long to let connections finish after a stop is asked.
    pub drain_timeout: Duration,
}

/// The most worker threads a configuration may ask for (as `mptcp proxy --threads`).
pub const MAX_THREADS: usize = 1024;

/// Default for [`Config::drain_timeout`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or has a wrong or unknown key; the message names
    /// the line and column.
    #[error("{0}")]
    Toml(String),
    /// A route's value is out of range.
    #[error("route {route}: {reason}")]
    Invalid {
        /// The route's name.
        route: String,
        /// What is wrong.
        reason: String,
    },
    /// No `[[route]]` at all.
    #[error("no [[route]] in the configuration: nothing to relay")]
    NoRoutes,
    /// A setting of the whole proxy is out of range.
    #[error("{key}: {reason}")]
    Setting {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    metrics: Option<SocketAddr>,
    threads: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    drain_timeout: Option<Duration>,
    #[serde(default)]
    route: Vec<FileRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    name: Option<String>,
    listen: SocketAddr,
    to: String,
    #[serde(default)]
    listen_tcp: bool,
    #[serde(default)]
    to_tcp: bool,
    #[serde(default)]
    proxy_protocol: ProxyProtocol,
    max_conns: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    connect_timeout: Option<Duration>,
    /// `"0"` or `"off"` for no idle timeout.
    #[serde(default, deserialize_with = "opt_idle")]
    idle_timeout: Option<Option<Duration>>,
    copy_buffer: Option<usize>,
    bulk_buffer: Option<usize>,
    #[serde(default)]
    splice: bool,
    /// Accepted from older files; copying is the default now.
    #[serde(default)]
    #[allow(dead_code)]
    force_copy: bool,
    backlog: Option<i32>,
    /// Bytes; 0 for the kernel's default.
    notsent_lowat: Option<u32>,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Written::deserialize(d)?
        .duration()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn opt_idle<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Duration>>, D::Error> {
    let v = Written::deserialize(d)?;
    if matches!(&v, Written::Text(t) if t == "off" || t == "none") {
        return Ok(Some(None));
    }
    let t = v.duration().map_err(serde::de::Error::custom)?;
    Ok(Some((!t.is_zero()).then_some(t)))
}

impl Config {
    /// A configuration of these routes and the defaults.
    pub fn new(routes: Vec<Route>) -> Config {
        Config {
            routes,
            metrics: None,
            threads: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Parses the TOML text of a configuration file and checks it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::Toml(one_line(&e.to_string())))?;
        if file.route.is_empty() {
            return Err(ConfigError::NoRoutes);
        }
        if let Some(n) = file.threads {
            // tokio's runtime builder panics on 0 workers.
            if !(1..=MAX_THREADS).contains(&n) {
                return Err(ConfigError::Setting {
                    key: "threads",
                    reason: format!("{n} is not 1 to {MAX_THREADS}"),
                });
            }
        }
        let mut routes = Vec::with_capacity(file.route.len());
        for r in file.route {
            let mut route = Route::new(r.listen, r.to)
                .listen_tcp(r.listen_tcp)
                .to_tcp(r.to_tcp)
                .proxy_protocol(r.proxy_protocol)
                .splice(r.splice);
            if let Some(name) = r.name {
                route = route.name(name);
            }
            if let Some(n) = r.max_conns {
                // The slots are a tokio semaphore, which panics past 2^61 permits.
                if !(1..=MAX_CONNS_LIMIT).contains(&n) {
                    return Err(ConfigError::Invalid {
                        route: route.name,
                        reason: format!("max_conns must be 1 to {MAX_CONNS_LIMIT}"),
                    });
                }
                route = route.max_conns(n);
            }
            if let Some(t) = r.connect_timeout {
                route = route.connect_timeout(t);
            }
            if let Some(t) = r.idle_timeout {
                route = route.idle_timeout(t);
            }
            for (key, value) in [
                ("copy_buffer", r.copy_buffer),
                ("bulk_buffer", r.bulk_buffer),
            ] {
                // A buffer is allocated whole at a connection's first burst.
                if value.is_some_and(|b| b > MAX_BUFFER) {
                    return Err(ConfigError::Invalid {
                        route: route.name,
                        reason: format!("{key} must be at most {MAX_BUFFER} bytes"),
                    });
                }
            }
            if let Some(b) = r.copy_buffer {
                route = route.copy_buffer(b);
            }
            if let Some(b) = r.bulk_buffer {
                route = route.bulk_buffer(b);
            }
            if let Some(b) = r.backlog {
                route = route.backlog(b);
            }
            if let Some(b) = r.notsent_lowat {
                route = route.notsent_lowat(Some(b));
            }
            route.validate()?;
            routes.push(route);
        }
        let mut names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid {
                route: w[0].to_string(),
                reason: "two routes have this name; give each a unique `name`".into(),
            });
        }
        Ok(Config {
            routes,
            metrics: file.metrics,
            threads: file.threads,
            drain_timeout: file.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
        })
    }
}

/// toml's messages quote the offending line over several lines; keep the first
/// (which names the line and column) and the reason.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let head = lines.first().copied().unwrap_or("invalid TOML");
    let reason = lines
        .iter()
        .rev()
        .find(|l| !l.starts_with('|') && !l.contains(" | ") && **l != head)
        .copied();
    match reason {
        Some(r) => format!("{head}: {r}"),
        None => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let c = Config::from_toml(
            r#"
threads = 2
drain_timeout = 3

[[route]]
listen = "127.0.0.1:8080"
to = "[2001:db8::2]:80"
max_conns = 10
connect_timeout = "250ms"
idle_timeout = "off"
notsent_lowat = 0

[[route]]
name = "b"
listen = "[::]:8081"
to = "backend:81"
listen_tcp = true
proxy_protocol = "v1"
notsent_lowat = 65536

[[route]]
name = "c"
listen = "[::]:8082"
to = "backend:82"
"#,
        )
        .unwrap();
        assert_eq!(c.threads, Some(2));
        assert_eq!(c.drain_timeout, Duration::from_secs(3));
        assert_eq!(c.routes[0].name, "127.0.0.1:8080");
        assert_eq!(c.routes[0].max_conns, 10);
        assert_eq!(c.routes[0].connect_timeout, Duration::from_millis(250));
        assert_eq!(c.routes[0].idle_timeout, None);
        assert_eq!(c.routes[1].proxy_protocol, ProxyProtocol::V1);
        assert!(c.routes[1].listen_tcp);
        assert_eq!(c.routes[1].idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        assert_eq!(c.routes[0].notsent_lowat, None);
        assert_eq!(c.routes[1].notsent_lowat, Some(65536));
        assert_eq!(c.routes[2].notsent_lowat, Some(DEFAULT_NOTSENT_LOWAT));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e =
            Config::from_toml("[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\nmax_conn = 3\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("unknown field `max_conn`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_values_refused() {
        for (text, want) in [
            ("[[route]]\nlisten = \"x\"\nto = \"a:1\"\n", "line 2"),
            (
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a\"\n",
                "no port",
            ),
            (
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:0\"\n",
                "not 1-65535",
            ),
            (
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\nproxy_protocol = \"v3\"\n",
                "v3",
            ),
            (
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\nconnect_timeout = \"soon\"\n",
                "soon",
            ),
            ("threads = 1\n", "no [[route]]"),
            (
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\nmax_conns = 0\n",
                "max_conns",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    /// Found by the `proxy_toml` fuzz target: `threads = 0` loaded, then
    /// `mptcp proxy` panicked building its runtime ("Worker threads cannot be set to 0").
    #[test]
    fn buffers_past_64_mib_refused() {
        for key in ["copy_buffer", "bulk_buffer"] {
            let text = format!(
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\n{key} = {}\n",
                (64u64 << 20) + 1
            );
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{key} must be at most 67108864 bytes")),
                "{e}"
            );
            let ok = text.replace("67108865", "67108864");
            assert!(Config::from_toml(&ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn threads_outside_1_to_1024_refused() {
        let route = "\n[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\n";
        for n in [0u64, 1025, 1 << 40] {
            let e = Config::from_toml(&format!("threads = {n}{route}"))
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("threads: {n} is not 1 to 1024"));
        }
        for n in [1, 1024] {
            let c = Config::from_toml(&format!("threads = {n}{route}")).unwrap();
            assert_eq!(c.threads, Some(n));
        }
    }

    /// Found with the `proxy_toml` fuzz target: `max_conns = 4611686018427387904`
    /// loaded, then the accept loop panicked making its semaphore of connection slots
    /// ("a semaphore may not have more than MAX_PERMITS permits").
    #[test]
    fn max_conns_above_the_limit_refused() {
        for n in [1_000_000_001u64, 1 << 62, i64::MAX as u64] {
            let e = Config::from_toml(&format!(
                "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\nmax_conns = {n}\n"
            ))
            .unwrap_err()
            .to_string();
            assert_eq!(
                e, "route 127.0.0.1:1: max_conns must be 1 to 1000000000",
                "{n}"
            );
        }
        let c = Config::from_toml(
            "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\nmax_conns = 1000000000\n",
        )
        .unwrap();
        assert_eq!(c.routes[0].max_conns, MAX_CONNS_LIMIT);
        let r = Route::new("127.0.0.1:1".parse().unwrap(), "a:1").max_conns(usize::MAX);
        assert_eq!(r.max_conns, MAX_CONNS_LIMIT);
    }

    /// Found with the `proxy_toml` fuzz target: `connect_timeout = 1e19` loaded, then
    /// every dial panicked computing its deadline ("overflow when adding duration to
    /// instant"); the same for the idle timeout and for `--connect-timeout`.
    #[test]
    fn timeouts_longer_than_a_year_refused() {
        let route = "[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"a:1\"\n";
        for (line, shown) in [
            (
                "connect_timeout = 1e19",
                "`10000000000000000000` is longer than a year",
            ),
            (
                "idle_timeout = \"300000000000y\"",
                "`300000000000y` is longer than a year",
            ),
            (
                "connect_timeout = 31536001",
                "`31536001` is longer than a year",
            ),
        ] {
            let e = Config::from_toml(&format!("{route}{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(shown), "{line}: {e}");
        }
        let e = Config::from_toml(&format!("drain_timeout = \"400 days\"\n{route}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`400 days` is longer than a year"), "{e}");
        assert!(mptcp_net::duration::parse("1e19").is_err());
        assert_eq!(mptcp_net::duration::parse("8760h"), Ok(MAX_TIMEOUT));
        let c = Config::from_toml(&format!("{route}idle_timeout = 31536000\n")).unwrap();
        assert_eq!(c.routes[0].idle_timeout, Some(MAX_TIMEOUT));
    }

    #[test]
    fn upstream_forms() {
        assert!(check_upstream("example.com:443").is_ok());
        assert!(check_upstream("[2001:db8::1]:443").is_ok());
        assert!(check_upstream("2001:db8::1:443").is_err());
        assert!(check_upstream(":443").is_err());
        assert!(check_upstream("h:65536").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            mptcp_net::duration::parse("5").unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            mptcp_net::duration::parse("0.5").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            mptcp_net::duration::parse("2m").unwrap(),
            Duration::from_secs(120)
        );
        assert!(mptcp_net::duration::parse("-1").is_err());
        assert!(mptcp_net::duration::parse("abc").is_err());
    }
}

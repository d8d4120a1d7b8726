//! The clients: workers that run transfers and request/response loops through the
//! proxy pair or the gateway + converter until the deadline, each op recorded; and an
//! outsider on the origin host that asks the converter for a connection it must refuse.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mptcp_testnet::soak::{transfer_size, Rng};

use crate::daemons::Daemons;
use crate::net::{self, SoakNet};
use crate::sink::{read_verify, timed_out, write_pattern, write_pattern_waiting, IO_TIMEOUT};
use crate::Args;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// TCP -> client proxy -> MPTCP -> server proxy -> TCP -> sink.
    Proxy,
    /// TCP -> SOCKS5 gateway -> MPTCP -> converter -> TCP -> origin sink.
    Gateway,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub route: Route,
    pub start: Instant,
    pub end: Instant,
    /// Payload bytes this op sent and the far end confirmed, and response bytes the
    /// sink sent and this op checked.
    pub sent: u64,
    pub verified: u64,
    pub longest_stall: Duration,
    pub error: Option<String>,
    pub corrupt: bool,
    pub size: u64,
    /// Its connection reached a client-side daemon (the client proxy accepted it,
    /// or the gateway got its SOCKS5 CONNECT), which then dials one MPTCP
    /// connection for it (none of them retries a dial).
    pub handed: bool,
    /// The local port of its connection to the client daemon (the `client` of
    /// that daemon's record).
    pub local_port: Option<u16>,
    /// A transfer whose client waited more than [`IO_TIMEOUT`] for the sink's
    /// answer while its bytes still reached the sink (see [`wait_answer`]).
    pub waited_past_timeout: bool,
    /// The longest a write of this transfer's client blocked (the time between two
    /// writes returning), bytes reaching the sink meanwhile or not.
    pub longest_write_block: Duration,
}

#[derive(Debug)]
pub struct Stats {
    pub ops: Mutex<Vec<Op>>,
    /// The start of the run.
    start: Instant,
    /// Socket dumps taken when a client gave up waiting: how many, and when the
    /// last was (ms after the start of the run).
    dumps: AtomicUsize,
    last_dump_ms: AtomicU64,
}

/// At most this many socket dumps a run, [`DUMP_EVERY`] apart.
const MAX_DUMPS: usize = 12;
const DUMP_EVERY: Duration = Duration::from_secs(10);

impl Stats {
    pub fn new(start: Instant) -> Stats {
        Stats {
            ops: Mutex::default(),
            start,
            dumps: AtomicUsize::new(0),
            last_dump_ms: AtomicU64::new(0),
        }
    }

    /// A client waited [`IO_TIMEOUT`] for a byte: saves what every connection
    /// and subflow of both hosts looked like (`stall-<seconds>.txt` in the run's
    /// directory), a few times a run, for the report's stalled connections; spread
    /// over the run (at least [`DUMP_EVERY`] and a [`MAX_DUMPS`]th of it apart), so
    /// that the late stalls are seen too.
    fn dump_stall(&self, net: &SoakNet, args: &Args) {
        let now = self.start.elapsed();
        let ms = now.as_millis() as u64;
        let last = self.last_dump_ms.load(Ordering::SeqCst);
        let every = DUMP_EVERY.max(Duration::from_secs(args.seconds / MAX_DUMPS as u64));
        if self.dumps.load(Ordering::SeqCst) >= MAX_DUMPS
            || (last > 0 && ms < last + every.as_millis() as u64)
            || self
                .last_dump_ms
                .compare_exchange(last, ms.max(1), Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        self.dumps.fetch_add(1, Ordering::SeqCst);
        let path = args.dir.join(format!("stall-{:.0}.txt", now.as_secs_f64()));
        if let Err(e) = net.dump_sockets(&path) {
            eprintln!("mptcp-soak: socket dump: {e}");
        }
    }
}

/// Waits until every listener accepts.
pub fn wait_ready(net: &SoakNet, daemons: &Daemons) -> Result<(), String> {
    let _ = daemons;
    let checks = [
        SocketAddr::from(([127, 0, 0, 1], net::CLIENT_PROXY)),
        SocketAddr::from(([127, 0, 0, 1], net::SOCKS)),
    ];
    for addr in checks {
        wait_port(net.tn.client().netns(), addr)?;
    }
    for addr in [
        SocketAddr::from(([127, 0, 0, 1], net::SERVER_PROXY)),
        SocketAddr::from(([127, 0, 0, 1], net::CONVERTER)),
    ] {
        wait_port(net.tn.server().netns(), addr)?;
    }
    Ok(())
}

pub fn wait_port(ns: &mptcp_testnet::Netns, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = ns
            .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing listens on {addr} in {} after 30 s",
                ns.name()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Progress {
    last: Instant,
    longest: Duration,
}

impl Progress {
    fn tick(&mut self) {
        self.advance_to(Instant::now());
    }

    /// Bytes moved at `at` (if later than the last move).
    fn advance_to(&mut self, at: Instant) {
        if at > self.last {
            self.longest = self.longest.max(at - self.last);
            self.last = at;
        }
    }

    /// For a client waiting since `since` (a write blocked, or the answer not
    /// come): takes the bytes of transfer `stream` that reached the sink as
    /// progress, and says whether to wait on: none arrived for [`IO_TIMEOUT`], or
    /// [`ANSWER_CAP`] spent waiting, is a stall.
    fn wait_on(&mut self, stream: u64, since: Instant) -> bool {
        if let Some(at) = crate::sink::last_arrival(stream) {
            self.advance_to(at);
        }
        self.last.elapsed() < IO_TIMEOUT && since.elapsed() < ANSWER_CAP
    }
}

/// How often a client waiting for the sink's answer looks whether its bytes still
/// arrive.
const ANSWER_POLL: Duration = Duration::from_secs(5);

/// The longest a client waits for the sink's answer while its bytes still arrive.
const ANSWER_CAP: Duration = Duration::from_secs(600);

/// Writes transfer `stream` (`size` bytes). The client's writes block while the
/// relays' buffers are full, and a relay writing into a socket whose buffer holds
/// megabytes is woken only once a third of it is free: on a path cut to a few
/// Mbit/s and shared by 200 transfers, one write can block for tens of seconds
/// while the bytes before it keep reaching the sink. So, as [`wait_answer`], the
/// client gives up once no byte of the transfer has reached the sink for
/// [`IO_TIMEOUT`] (or [`ANSWER_CAP`] after its first write that blocked past
/// [`ANSWER_POLL`]), not while they still arrive; bytes reaching the sink count as the transfer's progress, and the
/// longest time between two of its writes returning is kept apart
/// ([`Op::longest_write_block`]). Returns the bytes written.
fn write_upload(
    conn: &mut TcpStream,
    stream: u64,
    size: u64,
    progress: &mut Progress,
    op: &mut Op,
) -> io::Result<u64> {
    conn.set_write_timeout(Some(ANSWER_POLL))?;
    let progress = RefCell::new(progress);
    let mut written = 0u64;
    let mut last_write = Instant::now();
    let mut longest_block = Duration::ZERO;
    let mut first_wait: Option<Instant> = None;
    let res = write_pattern_waiting(
        conn,
        stream,
        size,
        |n| {
            written += n as u64;
            longest_block = longest_block.max(last_write.elapsed());
            last_write = Instant::now();
            progress.borrow_mut().tick();
        },
        |e| {
            let since = *first_wait.get_or_insert_with(Instant::now);
            if progress.borrow_mut().wait_on(stream, since) {
                Ok(())
            } else {
                Err(e)
            }
        },
    );
    op.longest_write_block = longest_block.max(last_write.elapsed());
    res?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(written)
}

/// Reads the sink's answer to transfer `stream`. The relays take a whole upload into
/// their MPTCP send buffers (megabytes), so the answer may come long after the last
/// write: the client gives up once no byte of the transfer has reached the sink for
/// [`IO_TIMEOUT`] (a stall), not while they still arrive (paths cut to a few Mbit/s
/// and shared by 200 transfers), and never after [`ANSWER_CAP`]. The op's longest
/// stall then counts the gaps between bytes reaching the sink.
fn wait_answer(
    conn: &mut TcpStream,
    stream: u64,
    answer: &mut [u8],
    progress: &mut Progress,
    op: &mut Op,
) -> io::Result<()> {
    conn.set_read_timeout(Some(ANSWER_POLL))?;
    let started = Instant::now();
    let mut got = 0;
    while got < answer.len() {
        match conn.read(&mut answer[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => {
                if !progress.wait_on(stream, started) {
                    return Err(e);
                }
                if started.elapsed() >= IO_TIMEOUT {
                    op.waited_past_timeout = true;
                }
            }
            Err(e) => return Err(e),
        }
    }
    conn.set_read_timeout(Some(IO_TIMEOUT))
}

/// The quiet point after the warm-up: the workers finish their ops and wait, so the
/// daemons' memory can be read idle, then go on. Memory growth is idle against idle
/// (here and after the run), at the same load (none): a comparison of two busy
/// windows measured how many large transfers each happened to hold (+-10% from run
/// to run), not a leak.
#[derive(Debug, Default)]
pub struct Pause {
    requested: AtomicBool,
    released: AtomicBool,
    waiting: AtomicUsize,
}

impl Pause {
    /// Asks the workers to stop after their current op.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// How many workers wait.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Lets the workers go on.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Called by a worker between ops: waits while a pause is on (until `deadline`).
    fn hold(&self, deadline: Instant) {
        if !self.requested.load(Ordering::SeqCst) || self.released.load(Ordering::SeqCst) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while !self.released.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn worker(
    args: &Args,
    net: &SoakNet,
    stats: &Stats,
    pause: &Pause,
    rng: &mut Rng,
    quiet_at: Instant,
    deadline: Instant,
) {
    // Bytes a worker may expect to move per second: its share of the paths.
    let share = (3 * u64::from(args.rate_mbit) * 1_000_000 / 8) / args.concurrency as u64 / 2;
    while Instant::now() < deadline {
        pause.hold(deadline);
        if Instant::now() >= deadline {
            break;
        }
        let route = if rng.next() % 2 == 0 {
            Route::Proxy
        } else {
            Route::Gateway
        };
        let stream = rng.next();
        // Sized to end by the quiet point (before it) or the deadline: an op started
        // in the warm-up and sized for the whole run kept the quiet point of a
        // 10-minute run from ever being idle.
        // Before the quiet point, a quarter of that: under rate cuts, blackouts and
        // hundreds of workers a transfer runs several times slower than the share
        // says, and the 10-minute run's warm-up ops still ran a minute after it.
        let now = Instant::now();
        let (until, slack) = if now < quiet_at {
            (quiet_at, 4)
        } else {
            (deadline, 1)
        };
        let left = until.saturating_duration_since(now).as_secs();
        let cap = share.saturating_mul(left.max(1)) / slack;
        let transfer = rng.next() % 10 < 7;
        let (size, rounds) = if transfer {
            (transfer_size(rng, args.min_size, args.max_size, cap), 0)
        } else {
            // A round moves 40 KB on average; at least two rounds.
            (0, rng.range(2, 20).min((cap / 40_000).max(2)))
        };
        let plan: Vec<(u32, u32)> = (0..rounds)
            .map(|_| {
                (
                    rng.range(16, 16 << 10) as u32,
                    rng.range(16, 64 << 10) as u32,
                )
            })
            .collect();
        let start = Instant::now();
        let mut progress = Progress {
            last: start,
            longest: Duration::ZERO,
        };
        let mut op = Op {
            route,
            start,
            end: start,
            sent: 0,
            verified: 0,
            longest_stall: Duration::ZERO,
            error: None,
            corrupt: false,
            size,
            handed: false,
            local_port: None,
            waited_past_timeout: false,
            longest_write_block: Duration::ZERO,
        };
        let res = one_op(net, route, stream, size, &plan, &mut op, &mut progress);
        crate::sink::forget_arrivals(stream);
        progress.tick();
        op.end = Instant::now();
        op.longest_stall = progress.longest;
        if let Err(e) = &res {
            if timed_out(e) {
                stats.dump_stall(net, args);
            }
        }
        if let Err(e) = res {
            op.error = Some(e.to_string());
        }
        let failed = op.error.is_some();
        stats.ops.lock().expect("ops").push(op);
        if failed {
            // A client backs off before it tries again (a blackout or a killed
            // proxy would otherwise be counted once per refused connect).
            std::thread::sleep(Duration::from_secs(1));
        } else if rounds > 0 {
            // A request/response client thinks between loops.
            std::thread::sleep(Duration::from_millis(rng.range(10, 200)));
        }
    }
}

fn connect(net: &SoakNet, route: Route, op: &mut Op) -> io::Result<TcpStream> {
    let port = match route {
        Route::Proxy => net::CLIENT_PROXY,
        Route::Gateway => net::SOCKS,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conn = net
        .tn
        .client()
        .run(|| TcpStream::connect_timeout(&addr, IO_TIMEOUT))
        .map_err(io::Error::other)?;
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            // A reset (not a refusal) says the handshake was done: the client proxy
            // accepted the connection and dialled for it, then closed it (its dial
            // failed) before connect() saw it established.
            if route == Route::Proxy
                && matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                )
            {
                op.handed = true;
            }
            return Err(e);
        }
    };
    op.local_port = conn.local_addr().ok().map(|a| a.port());
    if route == Route::Proxy {
        // Accepted (or queued for accept): the client proxy dials for it.
        op.handed = true;
    }
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    if route == Route::Gateway {
        // SOCKS5, no authentication, CONNECT to the origin's sink.
        conn.write_all(&[5, 1, 0])?;
        let mut reply = [0u8; 2];
        conn.read_exact(&mut reply)?;
        if reply != [5, 0] {
            return Err(io::Error::other(format!("SOCKS5 method reply {reply:?}")));
        }
        let mut req = vec![5, 1, 0, 1];
        req.extend_from_slice(&net::ORIGIN.octets());
        req.extend_from_slice(&net::SINK.to_be_bytes());
        // Before the write: one that fails half-way may still have reached the
        // gateway (the count is an upper bound of its dials).
        op.handed = true;
        conn.write_all(&req)?;
        let mut reply = [0u8; 10];
        conn.read_exact(&mut reply)?;
        if reply[1] != 0 {
            return Err(io::Error::other(format!("SOCKS5 reply code {}", reply[1])));
        }
    }
    Ok(conn)
}

fn one_op(
    net: &SoakNet,
    route: Route,
    stream: u64,
    size: u64,
    plan: &[(u32, u32)],
    op: &mut Op,
    progress: &mut Progress,
) -> io::Result<()> {
    let mut conn = connect(net, route, op)?;
    progress.tick();
    let mut head = Vec::with_capacity(17);
    if plan.is_empty() {
        head.push(b'T');
        head.extend_from_slice(&stream.to_be_bytes());
        head.extend_from_slice(&size.to_be_bytes());
        conn.write_all(&head)?;
        let written = write_upload(&mut conn, stream, size, progress, op)?;
        let mut answer = [0u8; 9];
        wait_answer(&mut conn, stream, &mut answer, progress, op)?;
        let count = u64::from_be_bytes(answer[1..].try_into().expect("8 bytes"));
        op.sent = written;
        if answer[0] != 1 || count != size {
            op.corrupt = true;
            return Err(io::Error::other(format!(
                "the sink saw {count} of {size} bytes, match {}",
                answer[0]
            )));
        }
        op.verified = count;
    } else {
        head.push(b'R');
        head.extend_from_slice(&stream.to_be_bytes());
        head.extend_from_slice(&(plan.len() as u64).to_be_bytes());
        conn.write_all(&head)?;
        for (round, &(req, resp)) in plan.iter().enumerate() {
            let s = stream ^ round as u64;
            let mut sizes = [0u8; 8];
            sizes[..4].copy_from_slice(&req.to_be_bytes());
            sizes[4..].copy_from_slice(&resp.to_be_bytes());
            conn.write_all(&sizes)?;
            write_pattern(&mut conn, s, u64::from(req), |_| progress.tick())?;
            let bad = read_verify(&mut conn, !s, u64::from(resp), |_| progress.tick())?;
            op.sent += u64::from(req) + u64::from(resp);
            if let Some(m) = bad {
                op.corrupt = true;
                return Err(io::Error::other(format!(
                    "response {round} differs: {} of {resp} bytes in {}..{}",
                    m.bytes, m.first, m.end
                )));
            }
            // The request was checked by the sink before it answered.
            op.verified += u64::from(req) + u64::from(resp);
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}

/// A client outside the converter's `--allow` (the origin host itself) asking it to
/// connect to the trap: must be refused, and the trap never reached.
#[derive(Debug, Default)]
pub struct Outsider {
    pub attempts: AtomicU64,
    pub refused: AtomicU64,
}

impl Outsider {
    pub fn run(&self, net: &SoakNet, deadline: Instant) {
        let converter = SocketAddr::from((net::UPLINK_SERVER, net::CONVERTER));
        // RFC 8803: version 1, total length 6 words, then a Connect TLV (type 10,
        // 5 words): port, IPv4-mapped address.
        let mut msg = vec![1u8, 6, 0, 0, 10, 5];
        msg.extend_from_slice(&net::TRAP.to_be_bytes());
        msg.extend_from_slice(&net::ORIGIN.to_ipv6_mapped().octets());
        while Instant::now() < deadline {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let res = net.origin.run(|| -> io::Result<Vec<u8>> {
                let mut c = TcpStream::connect_timeout(&converter, Duration::from_secs(5))?;
                c.set_read_timeout(Some(Duration::from_secs(10)))?;
                c.write_all(&msg)?;
                let mut back = Vec::new();
                let _ = c.read_to_end(&mut back);
                Ok(back)
            });
            // Refused: an Error TLV (type 30) or a close with nothing relayed.
            if let Ok(Ok(back)) = res {
                if back.len() < 8 || back.get(4) == Some(&30) {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

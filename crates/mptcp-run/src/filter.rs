//! The seccomp filter of trace mode, as classic BPF, built by hand: thirty
//! instructions are simpler to read here than a dependency (libseccomp needs
//! a C library; the Rust seccomp crates target allow-lists).
//!
//! It returns `SECCOMP_RET_TRACE` for exactly the calls the supervisor acts
//! on, from the native architecture: `socket(AF_INET|AF_INET6,
//! SOCK_STREAM[|flags], 0|IPPROTO_TCP)` (rewritten to MPTCP) and
//! `setsockopt(fd, IPPROTO_TCP, OPTION, ...)` for the few options MPTCP
//! refuses (watched for the swap to TCP); `SECCOMP_RET_ALLOW` for everything
//! else, so every other system call runs at full speed. The arguments are compared
//! on their low 32 bits, which is what the kernel's `int` parameters use.

/// `struct sock_filter` (as `libc::sock_filter`).
pub type Instruction = libc::sock_filter;

/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JEQ_K: u16 = 0x15;
/// `BPF_ALU | BPF_AND | BPF_K`.
const BPF_AND_K: u16 = 0x54;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;

/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_TRACE` (data 0).
pub const RET_TRACE: u32 = 0x7ff0_0000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

/// The `IPPROTO_TCP` options an MPTCP socket refuses with `ENOPROTOOPT` on
/// Linux 6.18 (TCP_SYNCNT, TCP_LINGER2, TCP_WINDOW_CLAMP, TCP_QUICKACK,
/// TCP_MD5SIG, TCP_USER_TIMEOUT, TCP_REPAIR, TCP_ULP, TCP_MD5SIG_EXT): the
/// setsockopt() calls trace mode stops at, to swap a fresh socket to TCP.
/// Only these, so that common options (TCP_NODELAY on every Go connection)
/// cost no stop; an option refused only by older kernels is not swapped.
pub const REFUSED_TCP_OPTIONS: [u32; 9] = [7, 8, 10, 12, 14, 18, 19, 31, 32];

/// The native architecture's audit value and system call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// `AUDIT_ARCH_*`.
    pub audit: u32,
    /// `__NR_socket`.
    pub nr_socket: u32,
    /// `__NR_setsockopt`.
    pub nr_setsockopt: u32,
    /// `__NR_close`.
    pub nr_close: u32,
    /// `__NR_dup3`.
    pub nr_dup3: u32,
    /// `__NR_connect`.
    pub nr_connect: u32,
    /// `__NR_listen`.
    pub nr_listen: u32,
}

/// x86_64: `AUDIT_ARCH_X86_64`, socket 41, setsockopt 54, close 3, dup3 292,
/// connect 42, listen 50.
pub const X86_64: Arch = Arch {
    audit: 0xc000_003e,
    nr_socket: 41,
    nr_setsockopt: 54,
    nr_close: 3,
    nr_dup3: 292,
    nr_connect: 42,
    nr_listen: 50,
};

/// A jump target while assembling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Label(&'static str),
}

/// A two-pass assembler for the few instructions used here.
#[derive(Default)]
struct Asm {
    code: Vec<Instruction>,
    jumps: Vec<(usize, To, To)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push(Instruction {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn jeq(&mut self, k: u32, jt: To, jf: To) {
        self.jumps.push((self.code.len(), jt, jf));
        self.stmt(BPF_JEQ_K, k);
    }

    fn label(&mut self, name: &'static str) {
        self.labels.push((name, self.code.len()));
    }

    fn finish(mut self) -> Vec<Instruction> {
        let at = |labels: &[(&str, usize)], to: To, from: usize| -> u8 {
            match to {
                To::Next => 0,
                To::Label(name) => {
                    let target = labels
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, i)| *i)
                        .expect("every label is defined");
                    // Offsets count from the next instruction, forward only.
                    u8::try_from(target - from - 1).expect("a jump of under 256")
                }
            }
        };
        for (i, jt, jf) in std::mem::take(&mut self.jumps) {
            self.code[i].jt = at(&self.labels, jt, i);
            self.code[i].jf = at(&self.labels, jf, i);
        }
        self.code
    }
}

/// The filter for `arch`: `RET_TRACE` for TCP stream socket() calls, for
/// setsockopt(IPPROTO_TCP, one of [`REFUSED_TCP_OPTIONS`]) and for every
/// call in `also` (connect or listen, for `--listen-only`/`--dial-only`);
/// `RET_ALLOW` for everything else.
pub fn program(arch: Arch, also: Option<u32>) -> Vec<Instruction> {
    use To::{Label, Next};
    let (trace, allow) = (Label("trace"), Label("allow"));
    let mut a = Asm::default();
    a.stmt(BPF_LD_W_ABS, OFF_ARCH);
    a.jeq(arch.audit, Next, allow);
    a.stmt(BPF_LD_W_ABS, OFF_NR);
    if let Some(nr) = also {
        a.jeq(nr, trace, Next);
    }
    a.jeq(arch.nr_setsockopt, Label("setsockopt"), Next);
    a.jeq(arch.nr_socket, Next, allow);
    // socket(domain, type, protocol)
    a.stmt(BPF_LD_W_ABS, off_arg(0));
    a.jeq(libc::AF_INET as u32, Label("type"), Next);
    a.jeq(libc::AF_INET6 as u32, Next, allow);
    a.label("type");
    a.stmt(BPF_LD_W_ABS, off_arg(1));
    a.stmt(BPF_AND_K, 0xf);
    a.jeq(libc::SOCK_STREAM as u32, Next, allow);
    a.stmt(BPF_LD_W_ABS, off_arg(2));
    a.jeq(0, trace, Next);
    a.jeq(libc::IPPROTO_TCP as u32, trace, allow);
    // setsockopt(fd, level, name, value, len)
    a.label("setsockopt");
    a.stmt(BPF_LD_W_ABS, off_arg(1));
    a.jeq(libc::IPPROTO_TCP as u32, Next, allow);
    a.stmt(BPF_LD_W_ABS, off_arg(2));
    let (last, rest) = REFUSED_TCP_OPTIONS.split_last().expect("options");
    for &option in rest {
        a.jeq(option, trace, Next);
    }
    a.jeq(*last, trace, allow);
    a.label("trace");
    a.stmt(BPF_RET_K, RET_TRACE);
    a.label("allow");
    a.stmt(BPF_RET_K, RET_ALLOW);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of classic BPF the filter uses over a `seccomp_data`.
    fn run(prog: &[Instruction], nr: u32, arch: u32, args: [u64; 3]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                BPF_LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                BPF_AND_K => acc &= ins.k,
                BPF_JEQ_K => pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf }),
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn traces_tcp_stream_sockets_only() {
        let p = program(X86_64, None);
        let a = X86_64.audit;
        let inet = libc::AF_INET as u64;
        let inet6 = libc::AF_INET6 as u64;
        let stream = libc::SOCK_STREAM as u64;
        let flags = (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u64;
        assert_eq!(run(&p, 41, a, [inet, stream, 0]), RET_TRACE);
        assert_eq!(run(&p, 41, a, [inet6, stream | flags, 6]), RET_TRACE);
        assert_eq!(
            run(&p, 41, a, [inet, stream, 262]),
            RET_ALLOW,
            "already MPTCP"
        );
        assert_eq!(
            run(&p, 41, a, [inet, libc::SOCK_DGRAM as u64, 0]),
            RET_ALLOW
        );
        assert_eq!(run(&p, 41, a, [libc::AF_UNIX as u64, stream, 0]), RET_ALLOW);
        assert_eq!(run(&p, 42, a, [inet, stream, 0]), RET_ALLOW, "connect");
        assert_eq!(
            run(&p, 41, 0x4000_0003, [inet, stream, 0]),
            RET_ALLOW,
            "i386"
        );
    }
}

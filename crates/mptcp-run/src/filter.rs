//! The seccomp filter of trace mode, as classic BPF, built by hand: eleven
//! instructions are simpler to read here than a dependency (libseccomp needs
//! a C library; the Rust seccomp crates target allow-lists).
//!
//! It returns `SECCOMP_RET_TRACE` for exactly the calls the supervisor
//! rewrites, `socket(AF_INET|AF_INET6, SOCK_STREAM[|flags], 0|IPPROTO_TCP)`
//! from the native architecture, and `SECCOMP_RET_ALLOW` for everything else,
//! so every other system call runs at full speed. The arguments are compared
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

/// The native architecture's audit value and `socket` number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// `AUDIT_ARCH_*`.
    pub audit: u32,
    /// `__NR_socket`.
    pub nr_socket: u32,
}

/// x86_64: `AUDIT_ARCH_X86_64`, socket is 41.
pub const X86_64: Arch = Arch {
    audit: 0xc000_003e,
    nr_socket: 41,
};

fn stmt(code: u16, k: u32) -> Instruction {
    Instruction {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// The filter for `arch`.
pub fn program(arch: Arch) -> Vec<Instruction> {
    const TRACE: usize = 13;
    const ALLOW: usize = 14;
    // Jump offsets count from the next instruction.
    let to = |from: usize, target: usize| (target - from - 1) as u8;
    vec![
        /* 0 */ stmt(BPF_LD_W_ABS, OFF_ARCH),
        /* 1 */ jump(arch.audit, 0, to(1, ALLOW)),
        /* 2 */ stmt(BPF_LD_W_ABS, OFF_NR),
        /* 3 */ jump(arch.nr_socket, 0, to(3, ALLOW)),
        /* 4 */ stmt(BPF_LD_W_ABS, off_arg(0)),
        /* 5 */ jump(libc::AF_INET as u32, to(5, 7), 0),
        /* 6 */ jump(libc::AF_INET6 as u32, 0, to(6, ALLOW)),
        /* 7 */ stmt(BPF_LD_W_ABS, off_arg(1)),
        /* 8 */ stmt(BPF_AND_K, 0xf),
        /* 9 */ jump(libc::SOCK_STREAM as u32, 0, to(9, ALLOW)),
        /* 10 */ stmt(BPF_LD_W_ABS, off_arg(2)),
        /* 11 */ jump(0, to(11, TRACE), 0),
        /* 12 */ jump(libc::IPPROTO_TCP as u32, to(12, TRACE), to(12, ALLOW)),
        /* 13 */ stmt(BPF_RET_K, RET_TRACE),
        /* 14 */ stmt(BPF_RET_K, RET_ALLOW),
    ]
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
        let p = program(X86_64);
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

//! The `MPTcpExt` counters as metrics: their names, and their help texts from
//! [`mptcp_netlink::mib`], the one table of counter meanings. A counter that table does
//! not know (a newer kernel's) is still exported, under the same naming rule, with a
//! generic help text.

use mptcp_netlink::mib::{self, CounterKind};

/// How a kernel counter is exported: metric name, help text, kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MibMetric {
    /// The metric name: `mptcp_mib_` and the snake_case kernel name (a counter's
    /// samples add `_total`).
    pub name: String,
    /// The help text, ending with the kernel's name (`(MPTcpExt MPJoinAckRx)`).
    pub help: String,
    /// Counter or gauge.
    pub kind: CounterKind,
}

/// The metric for kernel counter `kernel_name`.
pub fn metric(kernel_name: &str) -> MibMetric {
    let text = mib::help(kernel_name).unwrap_or("MPTCP MIB counter");
    let kind = mib::kind(kernel_name);
    let mut name = format!("mptcp_mib_{}", snake_case(kernel_name));
    if kind == CounterKind::Counter {
        name.push_str("_total");
    }
    MibMetric {
        name,
        help: format!("{text} (MPTcpExt {kernel_name})."),
        kind,
    }
}

/// `MPJoinSynAckHMacFailure` -> `mp_join_syn_ack_hmac_failure`, `MPCapableSYNRX` ->
/// `mp_capable_synrx`: a word starts at an upper-case letter after a lower-case one or
/// a digit, and at the last upper-case letter of a run followed by a lower-case one; a
/// one-letter word joins the next (`HMac` is `hmac`, not `h_mac`, which Prometheus
/// lint would read as hours). Anything but ASCII letters and digits splits words.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 && !word.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut word));
            }
        }
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = String::with_capacity(name.len() + 8);
    let mut glue = false;
    for (i, w) in words.iter().enumerate() {
        if i > 0 && !glue {
            out.push('_');
        }
        out.push_str(w);
        glue = w.len() == 1 && i + 1 < words.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_unique() {
        assert_eq!(snake_case("MPCapableSYNRX"), "mp_capable_synrx");
        assert_eq!(
            snake_case("MPJoinSynAckHMacFailure"),
            "mp_join_syn_ack_hmac_failure"
        );
        assert_eq!(snake_case("Rm-Addr"), "rm_addr");
        assert_eq!(snake_case("MPTCPRetrans"), "mptcp_retrans");
        assert_eq!(snake_case("OFOQueueTail"), "ofo_queue_tail");
        assert_eq!(snake_case("MPCurrEstab"), "mp_curr_estab");
        let mut names: Vec<String> = mib::known().map(|n| metric(n).name).collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all, "two counters share a metric name");
        for n in &names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }

    #[test]
    fn unknown_counters_get_a_generic_help() {
        let m = metric("SomethingNew");
        assert_eq!(m.name, "mptcp_mib_something_new_total");
        assert_eq!(m.help, "MPTCP MIB counter (MPTcpExt SomethingNew).");
        assert_eq!(metric("MPCurrEstab").kind, CounterKind::Gauge);
        assert_eq!(metric("MPCurrEstab").name, "mptcp_mib_mp_curr_estab");
    }
}

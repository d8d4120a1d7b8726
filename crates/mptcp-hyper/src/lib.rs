//! HTTP over MPTCP (work in progress).

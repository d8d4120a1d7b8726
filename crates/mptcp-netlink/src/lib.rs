//! The Linux MPTCP path manager over generic netlink (work in progress).

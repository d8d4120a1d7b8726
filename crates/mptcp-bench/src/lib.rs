//! The engine behind `mptcp bench` and `mptcp demo` (work in progress).

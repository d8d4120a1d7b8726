//! Item 5: cost per call of mptcp-net's status and introspection calls on an
//! established loopback MPTCP connection, two peers for scale, and the
//! sans-I/O parsers on bytes the kernel returned. Short on purpose (the whole
//! harness has 10 minutes); `perf run` reads the samples from
//! `$CRITERION_HOME/<group>/<id>/new/sample.json`.

use std::hint::black_box;
use std::os::fd::AsFd;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mptcp_net::info::wire;
use mptcp_net::MptcpExt;
use mptcp_perf::micro::{self, GROUP_CALLS, GROUP_PARSE};
use mptcp_perf::sys;

fn calls(c: &mut Criterion) {
    let (client, _server) = micro::pair(true).expect("an MPTCP connection on loopback");
    assert!(
        client.multipath_tcp().expect("status"),
        "MPTCP is not on: run in a namespace with net.mptcp.enabled=1"
    );
    let mut g = c.benchmark_group(GROUP_CALLS);
    g.bench_function("multipath_tcp", |b| {
        b.iter(|| black_box(&client).multipath_tcp().unwrap())
    });
    g.bench_function("mptcp_status", |b| {
        b.iter(|| black_box(&client).mptcp_status().unwrap())
    });
    g.bench_function("mptcp_info", |b| {
        b.iter(|| black_box(&client).mptcp_info().unwrap())
    });
    g.bench_function("subflows", |b| {
        b.iter(|| black_box(&client).subflows().unwrap())
    });
    g.bench_function("mptcp_crate_status", |b| {
        b.iter(|| mptcp::MptcpExt::mptcp_status(black_box(&client)))
    });
    g.bench_function("raw_tcp_is_mptcp", |b| {
        b.iter(|| sys::is_mptcp(black_box(&client).as_fd()).unwrap())
    });
    g.finish();
}

fn parsers(c: &mut Criterion) {
    let (client, _server) = micro::pair(true).expect("an MPTCP connection on loopback");
    let r = micro::replies(&client).expect("kernel replies");
    let mut g = c.benchmark_group(GROUP_PARSE);
    g.bench_function("parse_mptcp_info", |b| {
        b.iter(|| wire::parse_mptcp_info(black_box(&r.mptcp_info)).unwrap())
    });
    g.bench_function("parse_tcp_info", |b| {
        b.iter(|| wire::parse_tcp_info(black_box(&r.tcp_info)).unwrap())
    });
    let f = &r.full_info;
    g.bench_function("parse_full_info", |b| {
        b.iter(|| {
            wire::parse_full_info(
                black_box(&f.header),
                black_box(&f.subflow_info),
                black_box(&f.tcp_info),
            )
            .unwrap()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(50)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = calls, parsers
}
criterion_main!(benches);

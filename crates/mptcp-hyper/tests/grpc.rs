//! gRPC over MPTCP with tonic (`examples/grpc.rs`, compiled into this test): the
//! handler sees the connection's MPTCP status, for an MPTCP client channel and
//! for a plain TCP one, on loopback (IPv4 and IPv6).

mod common;

#[allow(dead_code)]
#[path = "../examples/grpc.rs"]
mod grpc;

use common::require_mptcp;
use mptcp_net::ListenConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sees_mptcp_for_an_mptcp_channel_and_tcp_for_a_tcp_one() {
    require_mptcp();
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let listener = ListenConfig::new().listen_async(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(grpc::serve(listener));
        let uri = format!("http://{addr}");

        let reply = grpc::call(uri.clone(), "mptcp").await.unwrap();
        assert_eq!(reply.message, "hello mptcp");
        assert_eq!(
            reply.mptcp, "MPTCP",
            "{bind}: the handler's view of an MPTCP channel"
        );
        assert_eq!(reply.subflows, 1, "{bind}: loopback, one subflow");

        // tonic's own connector dials plain TCP: the same server says so.
        let channel = tonic::transport::Endpoint::from_shared(uri)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.unwrap();
        let reply: tonic::Response<grpc::HelloReply> = client
            .unary(
                tonic::Request::new(grpc::HelloRequest { name: "tcp".into() }),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/mptcp.example.Greeter/SayHello",
                ),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap();
        let reply = reply.into_inner();
        assert_eq!(reply.message, "hello tcp");
        assert_eq!(
            reply.mptcp, "plain TCP",
            "{bind}: the handler's view of a TCP channel"
        );
        server.abort();
    }
}

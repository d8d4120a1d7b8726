//! gRPC over Multipath TCP with tonic: a server whose handler sees each
//! connection's MPTCP status and subflows, and a client whose channel dials with
//! MPTCP.
//!
//! ```text
//! cargo run -p mptcp-hyper --features tonic --example grpc                  # both, on loopback
//! cargo run -p mptcp-hyper --features tonic --example grpc -- serve [::]:50051
//! cargo run -p mptcp-hyper --features tonic --example grpc -- call http://198.18.0.2:50051 alice
//! ```
//!
//! The service (`mptcp.example.Greeter/SayHello`) is written out by hand with
//! tonic's building blocks (what `tonic-prost-build` would generate from a
//! `.proto`), so the example needs no `protoc`:
//!
//! ```text
//! syntax = "proto3";
//! package mptcp.example;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; string mptcp = 2; uint32 subflows = 3; }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mptcp_hyper::{MptcpConnInfo, MptcpConnector, MptcpListener};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic_prost::ProstCodec;

/// The request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who is asking.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// The reply: a greeting, and what the server saw of the connection.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
    /// The connection's MPTCP status as the handler saw it ("MPTCP", ...).
    #[prost(string, tag = "2")]
    pub mptcp: String,
    /// The connection's subflows when the handler ran.
    #[prost(uint32, tag = "3")]
    pub subflows: u32,
}

const SAY_HELLO: &str = "/mptcp.example.Greeter/SayHello";

/// The handler: the connection's [`MptcpConnInfo`] is in the request's
/// extensions, put there by tonic from [`mptcp_hyper::MptcpStream`].
async fn say_hello(
    request: tonic::Request<HelloRequest>,
) -> Result<tonic::Response<HelloReply>, tonic::Status> {
    let info = request
        .extensions()
        .get::<MptcpConnInfo>()
        .cloned()
        .ok_or_else(|| tonic::Status::internal("served without MptcpListener::incoming"))?;
    let subflows = info.subflows().map(|s| s.len() as u32).unwrap_or(0);
    Ok(tonic::Response::new(HelloReply {
        message: format!("hello {}", request.get_ref().name),
        mptcp: info.status().to_string(),
        subflows,
    }))
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The Greeter service as tonic's router takes it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Greeter;

impl NamedService for Greeter {
    const NAME: &'static str = "mptcp.example.Greeter";
}

struct SayHello;

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<tonic::Response<HelloReply>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        Box::pin(say_hello(request))
    }
}

impl<B> tower_service::Service<http::Request<B>> for Greeter
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SAY_HELLO {
            return Box::pin(async {
                Ok(tonic::Status::unimplemented("no such method").into_http())
            });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            Ok(grpc.unary(SayHello, request).await)
        })
    }
}

/// Serves the Greeter on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(Greeter)
        .serve_with_incoming(MptcpListener::new(listener).incoming())
        .await
}

/// Calls SayHello at `uri` over a channel that dials with MPTCP.
pub async fn call(uri: String, name: &str) -> Result<HelloReply, Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(uri)?
        .connect_with_connector(MptcpConnector::new())
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let reply = grpc
        .unary(
            tonic::Request::new(HelloRequest { name: name.into() }),
            http::uri::PathAndQuery::from_static(SAY_HELLO),
            ProstCodec::default(),
        )
        .await?;
    Ok(reply.into_inner())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => {
            let listener = mptcp_net::ListenConfig::new()
                .listen_async("127.0.0.1:0")
                .await?;
            let addr = listener.local_addr()?;
            tokio::spawn(serve(listener));
            let reply = call(format!("http://{addr}"), "example").await?;
            println!(
                "{}: the server saw {} with {} subflow(s)",
                reply.message, reply.mptcp, reply.subflows
            );
        }
        ["serve", addr] => {
            let listener = mptcp_net::ListenConfig::new().listen_async(*addr).await?;
            println!(
                "serving mptcp.example.Greeter on {}",
                listener.local_addr()?
            );
            serve(listener).await?;
        }
        ["call", uri, name] => {
            let reply = call(uri.to_string(), name).await?;
            println!(
                "{}: the server saw {} with {} subflow(s)",
                reply.message, reply.mptcp, reply.subflows
            );
        }
        _ => {
            eprintln!("usage: grpc [serve ADDR | call URI NAME]");
            std::process::exit(2);
        }
    }
    Ok(())
}

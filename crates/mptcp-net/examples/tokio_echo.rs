//! The tokio flavour: an MPTCP echo server and a client in one program.
//!
//! ```text
//! cargo run -p mptcp-net --features tokio --example tokio_echo
//! ```

use std::io;

use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> io::Result<()> {
    let listener = ListenConfig::new().listen_async("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr} ({})", listener.mptcp_status()?);

    let server = tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await?;
        println!("server: {peer} is {}", stream.mptcp_status()?);
        let (mut r, mut w) = stream.split();
        tokio::io::copy(&mut r, &mut w).await?;
        io::Result::Ok(())
    });

    let mut client = Dialer::new().dial_async(addr).await?;
    println!("client: {}", client.mptcp_status()?);
    client.write_all(b"hello over MPTCP").await?;
    client.shutdown().await?;
    let mut echoed = String::new();
    client.read_to_string(&mut echoed).await?;
    println!("echoed: {echoed}");
    server.await??;
    Ok(())
}

//! `aws-proxy`: the counting proxy as a process, for `scripts/local-up`: ministack hands it to the
//! Lambda functions it runs as their AWS endpoint, so every AWS request a function makes is
//! counted by operation; `GET /_counts` answers the counts. Settings: `PROXY_ADDR`
//! (`127.0.0.1:<port>`), `UPSTREAM` (ministack's URL).

#[path = "common/counting_proxy.rs"]
mod counting_proxy;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::var("PROXY_ADDR")?.parse()?;
    if !addr.ip().is_loopback() {
        return Err("PROXY_ADDR must be a loopback address".into());
    }
    let (_counts, url) = counting_proxy::start(std::env::var("UPSTREAM")?, addr).await?;
    println!("counting AWS requests at {url}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

//! `wa-simulator`: the Cloud API simulator as a standalone server on 127.0.0.1.
//!
//! Settings (environment): `SIM_PORT` (default 8089), `SIM_CALLBACK_URL` (where webhooks go),
//! `SIM_APP_SECRET`, `SIM_ACCESS_TOKEN`, `SIM_WABA_ID`, `SIM_PHONE_NUMBER_ID`,
//! `SIM_DISPLAY_PHONE_NUMBER`, `SIM_TIER`, `SIM_WEBHOOK_VERSION`. It starts with one WABA, one
//! number and one token from these, and prints them.

use std::net::{Ipv4Addr, SocketAddr};

use simulator::{SimConfig, Simulator, Tier};

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let port: u16 = env("SIM_PORT", "8089").parse()?;
    let config = SimConfig {
        app_secret: env("SIM_APP_SECRET", "sim-app-secret"),
        callback_url: std::env::var("SIM_CALLBACK_URL")
            .ok()
            .filter(|v| !v.is_empty()),
        webhook_version: env("SIM_WEBHOOK_VERSION", "v25.0"),
        ..SimConfig::default()
    };
    let running = Simulator::start(config, SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    let waba = env("SIM_WABA_ID", "102290129340398");
    let phone = env("SIM_PHONE_NUMBER_ID", "106540352242922");
    let token = env("SIM_ACCESS_TOKEN", "sim-access-token");
    let tier = Tier::parse(&env("SIM_TIER", "TIER_2K")).ok_or("SIM_TIER is not a tier")?;
    running.sim.create_waba(&waba, tier);
    running.sim.create_phone_number(
        &phone,
        &waba,
        &env("SIM_DISPLAY_PHONE_NUMBER", "15550783881"),
    );
    running.sim.add_token(&token, None);
    println!("Cloud API simulator on {}", running.base_url());
    println!("  WABA {waba}, phone number {phone}, tier {}", tier.name());
    println!("  control API: {}/_sim/", running.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

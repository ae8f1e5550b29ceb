//! `recon demo`: simulated providers, faulty webhooks, reconciliation.

use anyhow::Result;

use crate::commands::DemoArgs;

/// Run the demo.
pub async fn run(_a: DemoArgs) -> Result<u8> {
    Err(recon_core::Error::unsupported(
        "the demo needs the provider simulator, which is not built into this binary yet",
    )
    .into())
}

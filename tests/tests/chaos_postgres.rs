//! The chaos suite against Postgres.

use std::sync::Arc;

use recon_core::Store;

async fn make() -> Arc<dyn Store> {
    Arc::new(recon_store_postgres::testing::fresh_store().await)
}

recon_tests::chaos_tests!(make);
recon_tests::chaos_tests!(app recon_tests::projections::pg);

//! The store conformance suite against a real Postgres, one schema per test.

use std::sync::Arc;

use recon_core::Store;

async fn make() -> Arc<dyn Store> {
    Arc::new(recon_store_postgres::testing::fresh_store().await)
}

recon_core::store_conformance_tests!(make);

#[tokio::test]
async fn bad_url_is_one_clear_error() {
    let e = recon_store_postgres::PgStore::connect("postgres://nobody@127.0.0.1:1/none", "recon")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Unavailable);
    assert!(e.to_string().contains("Postgres"), "{e}");
    let e = recon_store_postgres::PgStore::connect("not a url", "recon")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Config);
    assert!(!e.to_string().contains("not a url"));
}

#[tokio::test]
async fn unmigrated_schema_is_not_ready() {
    let url = recon_store_postgres::testing::test_database_url();
    let s = recon_store_postgres::PgStore::connect(&url, "t_never_migrated_x")
        .await
        .unwrap();
    let e = s.check_ready().await.unwrap_err();
    assert!(e.to_string().contains("recon migrate"), "{e}");
}

#[test]
fn schema_names_are_checked() {
    assert!(recon_store_postgres::valid_schema("recon"));
    assert!(!recon_store_postgres::valid_schema("recon; drop table x"));
    assert!(!recon_store_postgres::valid_schema("Recon"));
    assert!(!recon_store_postgres::valid_schema("1x"));
}

/// On loopback with the default `sslmode=prefer`, the pool connects without
/// TLS (its handshake cost ~70 ms per connection and protects nothing there).
#[tokio::test]
async fn loopback_prefer_connects_without_tls() {
    let url = recon_store_postgres::testing::test_database_url();
    if url.contains("sslmode") || !(url.contains("127.0.0.1") || url.contains("localhost")) {
        // Not this case: the URL chose its own TLS mode or a remote host.
        return;
    }
    let store = recon_store_postgres::PgStore::connect(&url, "t_tls_probe")
        .await
        .expect("these tests need Postgres: set TEST_DATABASE_URL or run `cargo xtask test`");
    let ssl: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(store.pool())
            .await
            .unwrap();
    assert_eq!(ssl, Some(false), "a loopback connection negotiated TLS");
}

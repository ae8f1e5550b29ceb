//! The store conformance suite against real SQLite files, one per test.

use std::sync::Arc;

use recon_core::Store;

async fn make() -> Arc<dyn Store> {
    Arc::new(recon_store_sqlite::testing::fresh_store().await)
}

recon_core::store_conformance_tests!(make);

#[tokio::test]
async fn bad_url_is_a_config_error_without_the_url() {
    let e = recon_store_sqlite::SqliteStore::connect("postgres://x/y").await.unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Config);
    assert!(!e.to_string().contains("postgres://x/y"), "{e}");
}

#[tokio::test]
async fn unopenable_file_is_one_clear_error() {
    let e = recon_store_sqlite::SqliteStore::connect("sqlite:///nonexistent-dir/x/recon.db").await.unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Unavailable);
    assert!(e.to_string().contains("SQLite"), "{e}");
}

#[tokio::test]
async fn unmigrated_file_is_not_ready() {
    let path = std::env::temp_dir().join(format!("recon-unmigrated-{}.db", std::process::id()));
    let s = recon_store_sqlite::SqliteStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let e = s.check_ready().await.unwrap_err();
    assert!(e.to_string().contains("recon migrate"), "{e}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn default_url_is_a_local_file() {
    assert_eq!(recon_store_sqlite::DEFAULT_URL, "sqlite://recon.db");
}

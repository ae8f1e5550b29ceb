//! The app's own tables against the SQLite store (one fresh file per test).

recon_tests::projection_tests!(recon_tests::projections::sqlite);

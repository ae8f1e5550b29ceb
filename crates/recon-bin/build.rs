//! Registers the providers this binary is built with.
//!
//! Every optional dependency named `recon-<name>` in this crate's
//! `Cargo.toml` that no feature enables as `dep:…` is provider `<name>`:
//! its crate exports `PROVIDER`, and its implicit feature (the dependency's
//! own name, `recon-<name>`) switches it on. So adding a provider to the
//! binary is the dependency line plus its entry in `default`; this script
//! writes the `providers!` list that `src/registry.rs` includes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let manifest_path = dir.join("Cargo.toml");
    println!("cargo::rerun-if-changed=Cargo.toml");
    println!("cargo::rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(&manifest_path).expect("read Cargo.toml");
    let manifest: toml::Table = text.parse().expect("Cargo.toml is TOML");

    // Dependencies some feature enables explicitly (`dep:x`, e.g. a helper
    // crate behind `demo`) are not providers.
    let explicit: BTreeSet<String> = manifest
        .get("features")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(toml::Value::as_array)
        .flatten()
        .filter_map(toml::Value::as_str)
        .filter_map(|f| f.strip_prefix("dep:"))
        .map(str::to_string)
        .collect();

    let mut list = String::from("providers! {\n");
    let deps = manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .expect("[dependencies]");
    for (dep, spec) in deps {
        let optional = spec
            .get("optional")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        let Some(name) = dep.strip_prefix("recon-") else {
            continue;
        };
        if !optional || explicit.contains(dep) {
            continue;
        }
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "provider dependency {dep}: the name after recon- must be lowercase letters and digits"
        );
        let krate = dep.replace('-', "_");
        writeln!(list, "    {name:?} in {dep:?} => {krate}::PROVIDER,").unwrap();
    }
    list.push_str("}\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("providers.rs");
    std::fs::write(out, list).expect("write providers.rs");
}

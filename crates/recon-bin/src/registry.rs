//! The providers this binary was built with. Everything else in the binary
//! (configuration sections, which providers are on, schedules, projections,
//! routes) asks this registry, and a name it does not hold is an error that
//! lists the ones it does.
//!
//! The list is written by `build.rs` from `Cargo.toml`: every optional
//! dependency `recon-<name>` is provider `<name>` (its crate's `PROVIDER`),
//! behind its own feature `recon-<name>`, all on by default. Adding a
//! provider to the binary is those two lines in `Cargo.toml`.

use std::sync::OnceLock;

use recon_core::Registry;

/// `registry()` and `built_without()` from one list: `"name" in "feature"
/// => provider`.
macro_rules! providers {
    ($($name:literal in $feature:literal => $spec:path),* $(,)?) => {
        /// The registry, built once.
        pub fn registry() -> &'static Registry {
            static REGISTRY: OnceLock<Registry> = OnceLock::new();
            REGISTRY.get_or_init(|| {
                #[allow(unused_mut)]
                let mut r = Registry::new();
                $(
                    #[cfg(feature = $feature)]
                    r.register($spec);
                )*
                r
            })
        }

        /// Providers this project ships that this binary was built without:
        /// a configuration section of theirs is ignored with a warning (the
        /// same file serves every build), while a projection that reads them
        /// is refused.
        pub fn built_without() -> &'static [&'static str] {
            &[$(
                #[cfg(not(feature = $feature))]
                $name,
            )*]
        }

        /// Every provider this project ships, with its crate's feature.
        #[cfg(test)]
        const SHIPPED: &[(&str, &str)] = &[$(($name, $feature)),*];
    };
}

include!(concat!(env!("OUT_DIR"), "/providers.rs"));

/// `a, b` (the registered names) for error messages.
pub fn known() -> String {
    registry().known()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_provider_is_consistent() {
        let r = registry();
        for f in r.iter() {
            assert!(
                !crate::config::SECTIONS.contains(&f.name()),
                "provider {} would be shadowed by recon's own section",
                f.name()
            );
            assert!(!built_without().contains(&f.name()));
            assert!(
                SHIPPED.iter().any(|(name, _)| *name == f.name()),
                "provider {} is not named after its crate: crate recon-<name> must register as <name> ({SHIPPED:?})",
                f.name()
            );
            assert!(
                f.env_vars().first().map(|v| v.name) == Some(f.key_var()),
                "{}: the key variable comes first in env_vars",
                f.name()
            );
            for (job, expr) in f.default_schedule() {
                assert!(
                    *job == "replay" || f.kinds().contains(job),
                    "{}: default schedule names unknown kind {job}",
                    f.name()
                );
                crate::serve::scheduler::parse_cron(expr)
                    .unwrap_or_else(|e| panic!("{}: {job}: {expr}: {e}", f.name()));
            }
        }
    }
}

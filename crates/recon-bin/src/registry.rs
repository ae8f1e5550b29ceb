//! The providers this binary was built with: one line each, behind one
//! cargo feature per provider (all on by default). Everything else in the
//! binary (configuration sections, which providers are on, schedules,
//! projections, routes) asks this registry, and a name it does not hold is
//! an error that lists the ones it does.

use std::sync::OnceLock;

use recon_core::Registry;

/// The registry, built once.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        #[allow(unused_mut)]
        let mut r = Registry::new();
        #[cfg(feature = "stripe")]
        r.register(recon_stripe::PROVIDER);
        #[cfg(feature = "clerk")]
        r.register(recon_clerk::PROVIDER);
        r
    })
}

/// `known: a, b` for error messages.
pub fn known() -> String {
    registry().names().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_provider_is_consistent() {
        let r = registry();
        assert!(!r.names().is_empty(), "built without any provider");
        for f in r.iter() {
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

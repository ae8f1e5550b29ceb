//! `cargo xtask new-provider NAME`: generate `crates/recon-NAME`, a small
//! working adapter for a hypothetical JSON API with the provider
//! conformance suite wired, from the templates in `xtask/templates/provider`.
//!
//! `cargo xtask new-provider --check` generates a throwaway `probe`, runs its
//! tests and clippy, and removes it again: the templates keep compiling as
//! recon-core changes.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

/// The template files: the path in the generated crate, and the text with
/// `{{name}}` (`acme`), `{{Name}}` (`Acme`) and `{{NAME}}` (`ACME`).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/provider/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/provider/README.md.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/provider/src/lib.rs.tmpl"),
    ),
    (
        "src/config.rs",
        include_str!("../templates/provider/src/config.rs.tmpl"),
    ),
    (
        "src/client.rs",
        include_str!("../templates/provider/src/client.rs.tmpl"),
    ),
    (
        "src/objects.rs",
        include_str!("../templates/provider/src/objects.rs.tmpl"),
    ),
    (
        "src/provider.rs",
        include_str!("../templates/provider/src/provider.rs.tmpl"),
    ),
    (
        "src/webhook.rs",
        include_str!("../templates/provider/src/webhook.rs.tmpl"),
    ),
    (
        "src/factory.rs",
        include_str!("../templates/provider/src/factory.rs.tmpl"),
    ),
    (
        "src/views.rs",
        include_str!("../templates/provider/src/views.rs.tmpl"),
    ),
    (
        "tests/adapter/main.rs",
        include_str!("../templates/provider/tests/adapter/main.rs.tmpl"),
    ),
    (
        "tests/adapter/conformance.rs",
        include_str!("../templates/provider/tests/adapter/conformance.rs.tmpl"),
    ),
];

/// Names of recon's own crates, not providers.
const RESERVED: &[&str] = &["core", "bin", "sim", "tests", "store", "xtask"];

/// The name `--check` generates.
const PROBE: &str = "probe";

const USAGE: &str = "usage: cargo xtask new-provider NAME    (e.g. acme: creates crates/recon-acme)
       cargo xtask new-provider --check (generate, test and remove crates/recon-probe)";

pub fn run_task(args: &[String]) -> Result<()> {
    match args {
        [flag] if flag == "--check" => check(),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        [name] if name == PROBE => {
            bail!("{PROBE:?} is reserved for `cargo xtask new-provider --check`; pick another name")
        }
        [name] if !name.starts_with('-') => {
            let root = workspace_root();
            let dir = generate(&root, name)?;
            format(&root, name);
            print_next_steps(&root, &dir, name);
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// The workspace root (xtask's parent directory).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Check a provider name: it becomes the crate `recon-NAME`, the key
/// prefix, a configuration section, a route and environment variables.
pub fn validate_name(name: &str, crates_dir: &Path) -> Result<()> {
    if name.is_empty() {
        bail!("the provider name is empty");
    }
    if name == "api" {
        bail!(
            "\"api\" would generate ApiConfig, which clashes with recon_core's; pick another name"
        );
    }
    if RESERVED.contains(&name) || name.starts_with("store-") {
        bail!(
            "{name:?} is reserved: recon-{name} would be one of recon's own crates \
             (core, bin, sim, store-*, tests, xtask), not a provider"
        );
    }
    if name.len() > 20 {
        bail!("{name:?} is too long: at most 20 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("{name:?} must start with a lowercase ASCII letter");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
    {
        bail!(
            "{name:?} may only hold lowercase ASCII letters and digits, not {c:?} \
             (it is also the key prefix, the [{name}] section and the {}_* variables)",
            name.to_ascii_uppercase()
        );
    }
    let dir = crates_dir.join(format!("recon-{name}"));
    if dir.exists() {
        bail!(
            "{} already exists; nothing was changed (pick another name, or remove it first)",
            dir.display()
        );
    }
    Ok(())
}

/// `acme` → `Acme`.
fn type_prefix(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Fill a template's placeholders.
pub fn render(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{Name}}", &type_prefix(name))
        .replace("{{NAME}}", &name.to_ascii_uppercase())
}

/// Write `crates/recon-NAME` under `root`; nothing is left behind if a
/// write fails. Returns the crate's directory.
pub fn generate(root: &Path, name: &str) -> Result<PathBuf> {
    let crates = root.join("crates");
    validate_name(name, &crates)?;
    let dir = crates.join(format!("recon-{name}"));
    // The directory itself is created here, never reused: no overwriting.
    fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = TEMPLATES.iter().try_for_each(|(path, text)| {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&file, render(text, name))
            .with_context(|| format!("cannot write {}", file.display()))
    });
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// rustfmt the new crate: line breaks depend on the name's length.
fn format(root: &Path, name: &str) {
    let package = format!("recon-{name}");
    if let Err(e) = run(cargo().current_dir(root).args(["fmt", "-p", &package])) {
        eprintln!(
            "xtask: warning: could not format {package} ({e:#}); run `cargo fmt -p {package}`"
        );
    }
}

fn print_next_steps(root: &Path, dir: &Path, name: &str) {
    let shown = dir.strip_prefix(root).unwrap_or(dir).display();
    println!(
        "\
Created {shown}: a working adapter for a hypothetical JSON API (one kind,
`widgets`), with the provider conformance suite in tests/adapter/.

Register it in crates/recon-bin/Cargo.toml (that is the whole registration):
  1. under [dependencies]:
       recon-{name} = {{ path = \"../recon-{name}\", version = \"0.1.0\", optional = true }}
  2. in the multi-line `default = [ … ]` feature list:
       \"recon-{name}\",

then run `cargo xtask test`.

Next, make it speak the real API: every place to change is marked
  grep -rn \"TODO(new-provider)\" {shown}
and docs/ADDING_A_PROVIDER.md has the contract, the toolkit and the checklist
(record the API facts you rely on in docs/PROVIDERS.md)."
    );
}

/// Removes the probe crate when dropped, on success and failure alike.
struct RemoveOnDrop {
    root: PathBuf,
    dir: PathBuf,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => eprintln!("xtask: removed {}", self.dir.display()),
            Err(e) => eprintln!(
                "xtask: warning: could not remove {}: {e}",
                self.dir.display()
            ),
        }
        // Drop the probe from Cargo.lock again (any cargo command would).
        let _ = cargo()
            .current_dir(&self.root)
            .args(["metadata", "--format-version", "1", "--offline"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Generate `probe`, test it and lint it, then remove it.
pub fn check() -> Result<()> {
    let root = workspace_root();
    let dir = root.join("crates").join(format!("recon-{PROBE}"));
    if dir.exists() {
        bail!(
            "{} exists (left by an interrupted check?); remove it and run again",
            dir.display()
        );
    }
    let _cleanup = RemoveOnDrop {
        root: root.clone(),
        dir: dir.clone(),
    };
    generate(&root, PROBE)?;
    let package = format!("recon-{PROBE}");
    run(cargo().current_dir(&root).args(["fmt", "-p", &package]))?;
    run(cargo()
        .current_dir(&root)
        .args(["test", "-q", "-p", &package]))?;
    run(cargo().current_dir(&root).args([
        "clippy",
        "-p",
        &package,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!(
        "xtask: new-provider check passed: the generated crate builds, its tests pass, clippy is clean"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("xtask-new-provider-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("crates/recon-stripe")).unwrap();
        root
    }

    #[test]
    fn names_are_checked() {
        let root = scratch("names");
        let crates = root.join("crates");
        for ok in ["acme", "a", "paddle2", "abcdefghijklmnopqrst"] {
            validate_name(ok, &crates).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("Acme", "start with a lowercase"),
            ("2acme", "start with a lowercase"),
            ("ac-me", "not '-'"),
            ("ac_me", "not '_'"),
            ("acmé", "not 'é'"),
            ("abcdefghijklmnopqrstu", "too long"),
            ("core", "reserved"),
            ("bin", "reserved"),
            ("sim", "reserved"),
            ("tests", "reserved"),
            ("store-redis", "reserved"),
            ("api", "clashes"),
            ("stripe", "already exists"),
        ] {
            let e = validate_name(bad, &crates).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn templates_only_hold_the_three_placeholders() {
        for (path, text) in TEMPLATES {
            let out = render(text, "acme");
            // Rust's `{{` escapes would read as placeholders: templates have none.
            assert!(
                !out.contains("{{"),
                "{path}: an unknown placeholder or a `{{{{`"
            );
        }
        let out = render("{{name}} {{Name}}Provider {{NAME}}_API_KEY", "acme2");
        assert_eq!(out, "acme2 Acme2Provider ACME2_API_KEY");
    }

    #[test]
    fn every_template_is_generated_and_marks_what_to_change() {
        let root = scratch("generate");
        let dir = generate(&root, "acme").unwrap();
        for (path, _) in TEMPLATES {
            let text = fs::read_to_string(dir.join(path)).unwrap();
            assert!(text.contains("TODO(new-provider):"), "{path}");
        }
        let e = generate(&root, "acme").unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        fs::remove_dir_all(root).unwrap();
    }
}

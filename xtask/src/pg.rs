//! A fresh Postgres database per test run, dropped afterwards.
//!
//! Uses `psql` (the Postgres client) so xtask stays free of database crates.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

/// A database created for one test run.
pub struct TestDatabase {
    admin: String,
    name: String,
}

const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn answers(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some()
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => bail!("psql failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => {
            bail!("cannot run psql (the Postgres client; apt-get install postgresql-client): {e}")
        }
    }
}

fn with_db(url: &str, db: &str) -> String {
    // Replace the path of postgres://user@host:port/path?query.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDatabase {
    /// Create `recon_test_<pid>_<time>` on the server of `TEST_DATABASE_URL`,
    /// else on the local server. Fails, saying how to provide one, when no
    /// server answers: Postgres tests never skip silently.
    pub fn create() -> Result<Self> {
        let admin = match std::env::var("TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                if !answers("127.0.0.1:5432") {
                    bail!(
                        "the tests need Postgres and none answers on 127.0.0.1:5432.\n\
                         Start one (e.g. `pg_ctlcluster <version> main start`) or set\n\
                         TEST_DATABASE_URL=postgres://user@host:port/db to a server where the user may CREATE DATABASE."
                    );
                }
                LOCAL.to_string()
            }
        };
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        let name = format!("recon_test_{}_{}", std::process::id(), t);
        psql(&admin, &format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase { admin, name })
    }

    /// The URL of the fresh database.
    pub fn url(&self) -> String {
        with_db(&self.admin, &self.name)
    }

    /// The URL without a password, for logs.
    pub fn redacted(&self) -> String {
        let u = self.url();
        match (u.find("://"), u.find('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &u[s + 3..at];
                match creds.split_once(':') {
                    Some((user, _)) => format!("{}{}:***{}", &u[..s + 3], user, &u[at..]),
                    None => u,
                }
            }
            _ => u,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("xtask: could not drop {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_db;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_db("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_db("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_db("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}

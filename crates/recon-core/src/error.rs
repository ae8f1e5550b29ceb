//! One error type for every recon crate.
//!
//! Adapters and stores *classify* what went wrong (an [`ErrorKind`], plus the
//! hints a provider gave: `Retry-After`, `Stripe-Should-Retry`); core alone
//! decides whether to retry, through [`Error::is_temporary`].

use std::fmt;
use std::time::Duration;

/// A boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with recon's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. Retry decisions and exit codes are
/// made from this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object or route does not exist (HTTP 404).
    NotFound,
    /// The credentials were refused (HTTP 401).
    Unauthenticated,
    /// The credentials are valid but not allowed to do this (HTTP 403).
    PermissionDenied,
    /// The provider's rate limit answered (HTTP 429). Temporary.
    RateLimited,
    /// A conflicting concurrent request (HTTP 409, Stripe `lock_timeout`). Temporary.
    Conflict,
    /// The request or input was malformed: bad parameters, bad JSON from a
    /// provider, an unparseable webhook body.
    InvalidInput,
    /// A webhook signature did not verify (forged, stale, wrong secret).
    BadSignature,
    /// The provider or store does not support this operation (for example
    /// Clerk has no event log to replay).
    Unsupported,
    /// The provider or store could not be reached or answered 5xx. Temporary.
    Unavailable,
    /// A request or an operation ran past its time bound. Temporary.
    Timeout,
    /// Configuration is missing or wrong (a missing key, a bad URL).
    Config,
    /// A sweep would change more than the allowed share of the mirror.
    CircuitOpen,
    /// The operation was cancelled (shutdown).
    Cancelled,
    /// A store (database) error.
    Store,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    /// A short stable name, used in logs, metrics and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Config => "config",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Store => "store",
            ErrorKind::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// recon's error: a kind, the component and operation that failed, a
/// human-readable message, retry hints from the provider, and the source.
///
/// The message never contains a secret: adapters build it from status codes,
/// provider error codes and variable *names*.
pub struct Error {
    kind: ErrorKind,
    component: &'static str,
    operation: String,
    message: String,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    status: Option<u16>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            component: "recon",
            operation: String::new(),
            message: message.into(),
            retry_after: None,
            should_retry: None,
            status: None,
            source: None,
        }
    }

    /// Which component raised it (`stripe`, `clerk`, `postgres`, `sqlite`, `engine`).
    pub fn with_component(mut self, component: &'static str) -> Self {
        self.component = component;
        self
    }

    /// What was being done (`list customers`, `fetch cus_123`, `commit`).
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = operation.into();
        self
    }

    /// The provider asked to wait this long before trying again.
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// The provider said explicitly whether a retry may help
    /// (Stripe's `Stripe-Should-Retry`). Overrides the kind's default.
    pub fn with_should_retry(mut self, hint: Option<bool>) -> Self {
        self.should_retry = hint;
        self
    }

    /// The HTTP status that produced this error, if any.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The component that raised it.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// The operation that failed.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The message, without component and operation.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `Retry-After` as the provider sent it.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status, if any.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether trying the same call again may succeed. The only input to
    /// core's retry decision: an explicit provider hint wins, then the kind.
    pub fn is_temporary(&self) -> bool {
        if let Some(hint) = self.should_retry {
            return hint;
        }
        matches!(
            self.kind,
            ErrorKind::RateLimited
                | ErrorKind::Conflict
                | ErrorKind::Unavailable
                | ErrorKind::Timeout
        )
    }

    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, what)
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, what)
    }

    /// Shorthand for [`ErrorKind::BadSignature`].
    pub fn bad_signature(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadSignature, what)
    }

    /// Shorthand for [`ErrorKind::Config`].
    pub fn config(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, what)
    }

    /// A store error wrapping a database error.
    pub fn store(component: &'static str, operation: &str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Error::new(ErrorKind::Store, source.to_string())
            .with_component(component)
            .with_operation(operation.to_string())
            .with_source(source)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.component)?;
        if !self.operation.is_empty() {
            write!(f, " {}", self.operation)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("component", &self.component)
            .field("operation", &self.operation)
            .field("message", &self.message);
        if let Some(s) = self.status {
            d.field("status", &s);
        }
        if let Some(r) = self.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(h) = self.should_retry {
            d.field("should_retry", &h);
        }
        if let Some(src) = &self.source {
            d.field("source", &src.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(ErrorKind::InvalidInput, format!("bad JSON: {e}")).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_follows_kind_unless_provider_says_otherwise() {
        assert!(Error::new(ErrorKind::Unavailable, "503").is_temporary());
        assert!(Error::new(ErrorKind::RateLimited, "429").is_temporary());
        assert!(!Error::new(ErrorKind::Unauthenticated, "401").is_temporary());
        assert!(
            !Error::new(ErrorKind::Unavailable, "503")
                .with_should_retry(Some(false))
                .is_temporary()
        );
        assert!(
            Error::new(ErrorKind::InvalidInput, "400")
                .with_should_retry(Some(true))
                .is_temporary()
        );
    }
}

//! What every HTTP provider adapter needs when an answer is not a success:
//! the `Retry-After` header, provider text with secrets masked, and an
//! error's whole chain of causes in one line.

use std::time::Duration;

use crate::provider::Headers;

/// The longest wait a `Retry-After` header may ask for (one day).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// `Retry-After` in seconds (integer or fractional) or as an HTTP date,
/// capped at one day. `None` when absent or unreadable.
pub fn retry_after(headers: &Headers) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0)
            .then(|| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(
        secs.clamp(0, MAX_RETRY_AFTER.as_secs() as i64) as u64,
    ))
}

/// Provider text safe to log: every word containing one of `prefixes`
/// (`sk_live_`, `whsec_`, …) becomes `[redacted]`, and the result is cut
/// at 300 characters. Providers quote (masked) keys in their 401 messages;
/// recon quotes none.
pub fn redact(text: &str, prefixes: &[&str]) -> String {
    let mut out = String::with_capacity(text.len().min(300));
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if prefixes.iter().any(|p| word.contains(p)) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
    }
    out.chars().take(300).collect()
}

/// `error: cause: cause's cause…` in one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_after(v: &'static str) -> Headers {
        let mut h = Headers::new();
        h.insert("retry-after", http::HeaderValue::from_static(v));
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&with_retry_after("3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&with_retry_after(" 0.5 ")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(&with_retry_after("1e9")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&with_retry_after("-1")), None);
        assert_eq!(retry_after(&with_retry_after("soon")), None);
        assert_eq!(retry_after(&Headers::new()), None);
        // An HTTP date in the past means "now".
        assert_eq!(
            retry_after(&with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let mut h = Headers::new();
        h.insert("retry-after", later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d >= Duration::from_secs(118) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }

    #[test]
    fn redact_masks_secret_words_and_caps_length() {
        let p = ["sk_live_", "whsec_"];
        assert_eq!(
            redact("Invalid API Key provided: sk_live_****1234.", &p),
            "Invalid API Key provided: [redacted]"
        );
        assert_eq!(redact("('whsec_abc') bad", &p), "[redacted] bad");
        assert_eq!(redact("nothing secret here", &p), "nothing secret here");
        assert_eq!(redact(&"a ".repeat(400), &p).chars().count(), 300);
    }

    #[test]
    fn error_chain_joins_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "request failed: connection refused");
    }
}

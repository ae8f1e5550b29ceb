//! What every HTTP provider adapter needs from an answer's headers and
//! failures: the `Retry-After` and `Date` headers, provider text with
//! secrets masked, and an error's whole chain of causes in one line.

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

/// The `Date` header as unix seconds: RFC 9110's HTTP-date (IMF-fixdate,
/// and the obsolete RFC 850 and asctime forms a recipient must accept).
/// `None` when absent, not text or not a date; never panics.
pub fn date_header(headers: &Headers) -> Option<i64> {
    let v = headers.get(http::header::DATE)?.to_str().ok()?;
    let t = httpdate::parse_http_date(v.trim()).ok()?;
    let s = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
    };
    Some(s)
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
    fn date_header_forms() {
        let with_date = |v: &'static str| {
            let mut h = Headers::new();
            h.insert("date", http::HeaderValue::from_static(v));
            h
        };
        // RFC 9110's example instant in its three forms.
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(date_header(&with_date(v)), Some(784_111_777), "{v}");
        }
        assert_eq!(
            date_header(&with_date("Thu, 01 Jan 1970 00:00:00 GMT")),
            Some(0)
        );
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 +0200",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "1700000000",
        ] {
            assert_eq!(date_header(&with_date(bad)), None, "{bad:?}");
        }
        assert_eq!(date_header(&Headers::new()), None);
        let mut h = Headers::new();
        h.insert("date", http::HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(date_header(&h), None);
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

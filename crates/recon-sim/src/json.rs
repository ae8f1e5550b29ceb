//! A small JSON text builder. List pages render hundreds of objects per
//! request; appending literal fragments (keys and punctuation included)
//! is many times faster than building `Value`s or going through serde's
//! generic code, above all in unoptimized test builds.

/// JSON text under construction: literal fragments and escaped values.
#[derive(Debug)]
pub(crate) struct Text(String);

impl Text {
    pub(crate) fn new() -> Self {
        Text(String::with_capacity(1536))
    }

    /// A literal fragment (must be valid JSON in context).
    pub(crate) fn l(&mut self, s: &str) -> &mut Self {
        self.0.push_str(s);
        self
    }

    /// A string value, quoted and escaped.
    pub(crate) fn s(&mut self, v: &str) -> &mut Self {
        escape_into(&mut self.0, v);
        self
    }

    /// A string value or `null`.
    pub(crate) fn os(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.s(v),
            None => self.l("null"),
        }
    }

    /// An integer.
    pub(crate) fn i(&mut self, v: i64) -> &mut Self {
        // Digits by hand: `write!` is slow in unoptimized builds.
        let mut buf = [0u8; 20];
        let mut n = v.unsigned_abs();
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            self.0.push('-');
        }
        self.0
            .push_str(std::str::from_utf8(&buf[at..]).expect("digits"));
        self
    }

    /// An integer or `null`.
    pub(crate) fn oi(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.i(v),
            None => self.l("null"),
        }
    }

    /// `true` or `false`.
    pub(crate) fn b(&mut self, v: bool) -> &mut Self {
        self.l(if v { "true" } else { "false" })
    }

    pub(crate) fn done(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

/// Append `v` as a JSON string literal.
pub(crate) fn escape_into(out: &mut String, v: &str) {
    out.push('"');
    let mut plain = true;
    for &b in v.as_bytes() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            plain = false;
            break;
        }
    }
    if plain {
        out.push_str(v);
    } else {
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let s = Text::new()
            .l(r#"{"a":"#)
            .s("x\"y\\z\n\u{1}é")
            .l(r#","b":"#)
            .i(-37)
            .l(r#","c":"#)
            .oi(None)
            .l(r#","d":"#)
            .b(true)
            .l(r#","e":"#)
            .os(Some("f"))
            .l(r#","g":"#)
            .i(0)
            .l("}")
            .done();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "x\"y\\z\n\u{1}é", "b": -37, "c": null, "d": true, "e": "f", "g": 0})
        );
        let min = Text::new().i(i64::MIN).done();
        assert_eq!(min, i64::MIN.to_string());
    }
}

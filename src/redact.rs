//! Passwords out of printed URLs: the userinfo of a URL (`user:password@` in
//! `https://user:password@host/`) is replaced by `***` wherever a user-supplied URL is displayed
//! (messages, warnings, logs, the summary JSON). A leaf: it depends on nothing in the crate.

use std::borrow::Cow;

/// What replaces a URL's userinfo.
pub(crate) const MASK: &str = "***";

/// `text` with the userinfo of every URL in it (`scheme://userinfo@host…`) replaced by [`MASK`]: for
/// one URL, and for free text that may quote URLs (an error chain, a log line).
pub fn redact(text: &str) -> Cow<'_, str> {
    match redact_urls(text) {
        Cow::Borrowed(t) => redact_authorities(t),
        Cow::Owned(t) => Cow::Owned(redact_authorities(&t).into_owned()),
    }
}

/// `user:password@host` written without its scheme (an HTTP client's connection-pool key is logged as
/// `("http", user:password@host:port)`): the `user:password` before an `@` that starts a host, in a
/// token with no `/`, is masked too.
fn redact_authorities(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for (at, _) in text.match_indices('@') {
        let start = text[..at]
            .rfind(|c: char| {
                c.is_whitespace() || matches!(c, '(' | '"' | '\'' | ',' | '=' | '<' | '[')
            })
            .map_or(0, |i| i + 1);
        let token = &text[start..at];
        let host_follows = bytes
            .get(at + 1)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'[');
        if token.contains(':') && !token.contains('/') && token != MASK && host_follows {
            spans.push((start, at));
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (start, end) in spans {
        out.push_str(&text[done..start]);
        out.push_str(MASK);
        done = end;
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

fn redact_urls(text: &str) -> Cow<'_, str> {
    let Some(first) = userinfo_at(text, 0) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut next = Some(first);
    while let Some((start, end)) = next {
        out.push_str(&text[done..start]);
        out.push_str(MASK);
        done = end;
        next = userinfo_at(text, end);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

/// The byte range of the next URL userinfo at or after `from` (without its `@`).
fn userinfo_at(text: &str, from: usize) -> Option<(usize, usize)> {
    let mut search = from;
    while let Some(i) = text[search..].find("://") {
        let start = search + i + 3;
        // The authority ends at the path, query or fragment, or where the URL ends in text.
        let authority_end = text[start..]
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ')' | ']' | ','
                ) || c.is_whitespace()
            })
            .map_or(text.len(), |n| start + n);
        // The host follows the last `@` of the authority.
        if let Some(at) = text[start..authority_end].rfind('@') {
            if at > 0 && text[..start - 3].ends_with(is_scheme_char) {
                return Some((start, start + at));
            }
        }
        search = start;
    }
    None
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// A writer for logs that redacts what goes through it (each `write` a formatted event, as
/// `tracing_subscriber`'s formatter writes them); bytes that are not UTF-8 pass as they are.
pub struct Redacting<W>(pub W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) => match redact(s) {
                Cow::Borrowed(_) => self.0.write_all(buf),
                Cow::Owned(r) => self.0.write_all(r.as_bytes()),
            },
            Err(_) => self.0.write_all(buf),
        }?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked_and_nothing_else_changes() {
        assert_eq!(
            redact("http://admin:pw@pg:9091/metrics"),
            "http://***@pg:9091/metrics"
        );
        assert_eq!(redact("https://user@host"), "https://***@host");
        assert_eq!(
            redact("http://a:b:c@d@host:1?x=@y"),
            "http://***@host:1?x=@y"
        );
        let text = "cannot push to http://u:p@h/ (error sending request for url (http://u:p@h/metrics/job/x)): refused";
        assert_eq!(
            redact(text),
            "cannot push to http://***@h/ (error sending request for url (http://***@h/metrics/job/x)): refused"
        );
        for same in [
            "http://host:9091/path@x",
            "s3://bucket/prefix/",
            "mail me@host",
            "://@x",
            "no url",
            "",
        ] {
            assert!(matches!(redact(same), Cow::Borrowed(_)), "{same}");
        }
    }

    #[test]
    fn an_authority_without_its_scheme_is_masked_too() {
        // hyper-util's connection pool logs its key so (issue 22, found by an attacker's review).
        assert_eq!(
            redact(r#"pooling idle connection for ("http", user:hunter2pw@127.0.0.1:32951)"#),
            r#"pooling idle connection for ("http", ***@127.0.0.1:32951)"#
        );
        assert_eq!(redact("key=u:p@[::1]:80"), "key=***@[::1]:80");
        for same in ["a:b@/x", "mail me@host", "time 12:30 @ host", "a/b:c@host"] {
            assert!(matches!(redact(same), Cow::Borrowed(_)), "{same}");
        }
    }

    #[test]
    fn the_log_writer_redacts_each_event() {
        use std::io::Write;
        let mut w = Redacting(Vec::new());
        w.write_all(b"DEBUG endpoint=\"http://k:s@e:1\"\n").unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "DEBUG endpoint=\"http://***@e:1\"\n"
        );
    }
}

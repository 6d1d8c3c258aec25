//! `--output yaml` and `yaml-stream` as AWS CLI v2 prints them: block style, members in the
//! document's order, strings plain where YAML reads them back as the same string.

use std::fmt::Write as _;

use serde_json::Value;

use super::spell::py_float;

/// One YAML document of `doc`.
pub fn document(doc: &Value) -> String {
    let mut out = String::new();
    match doc {
        Value::Object(m) if !m.is_empty() => yaml_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => yaml_list(a, 0, &mut out),
        // A lone scalar is a document with an explicit end, as the YAML emitters write it.
        scalar => {
            let _ = writeln!(out, "{}\n...", yaml_scalar(scalar));
        }
    }
    out
}

fn yaml_map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        let key = yaml_string(k);
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                let _ = writeln!(out, "{pad}{key}:");
                yaml_map(inner, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                let _ = writeln!(out, "{pad}{key}:");
                yaml_list(items, indent, out);
            }
            scalar => {
                let _ = writeln!(out, "{pad}{key}: {}", yaml_scalar(scalar));
            }
        }
    }
}

fn yaml_list(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for v in items {
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first key on the dash's line, the rest under it.
                let mut first = String::new();
                yaml_map(m, indent + 2, &mut first);
                let body = first.trim_start_matches(' ');
                let _ = write!(out, "{pad}- {body}");
            }
            Value::Array(a) if !a.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                yaml_list(a, indent + 2, out);
            }
            scalar => {
                let _ = writeln!(out, "{pad}- {}", yaml_scalar(scalar));
            }
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => py_float(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain where YAML reads it back as the same string; single-quoted where only its look
/// is ambiguous; double-quoted with escapes when it holds characters a single-quoted scalar cannot
/// carry (controls, NEL, the line and paragraph separators: YAML folds or rejects them).
fn yaml_string(s: &str) -> String {
    let needs_escapes = s
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'));
    if needs_escapes {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control()
                    || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}') =>
                {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
    let plain_safe = !s.is_empty()
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`~ =<".contains(c))
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !looks_typed(s);
    if plain_safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Whether YAML 1.1 (PyYAML) or 1.2 would read `s` as something other than a string: null, a
/// boolean, a number in any of their spellings (signs, `_` separators, `0b`/`0o`/`0x`, sexagesimal),
/// a date or a time.
fn looks_typed(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    if matches!(
        l.as_str(),
        "null"
            | "~"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".nan"
            | ".inf"
            | "-.inf"
            | "+.inf"
    ) {
        return true;
    }
    let bare = l.replace('_', "");
    let unsigned = bare.trim_start_matches(['+', '-']);
    unsigned.parse::<f64>().is_ok()
        || unsigned.starts_with("0x")
        || unsigned.starts_with("0o")
        || unsigned.starts_with("0b")
        || (unsigned.starts_with('.')
            && unsigned[1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()))
        || (s.contains(['-', ':']) && s.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each emitted form was checked to load back as the same string with PyYAML's safe_load.
    #[test]
    fn strings_that_look_typed_or_carry_controls_are_quoted() {
        for (s, want) in [
            ("QUEUED", "QUEUED"),
            ("1_000", "'1_000'"),
            ("0b11", "'0b11'"),
            ("-1.5", "'-1.5'"),
            ("=", "'='"),
            ("<<", "'<<'"),
            ("yes", "'yes'"),
            ("2026-12-02", "'2026-12-02'"),
            ("a: b", "'a: b'"),
            ("it's", "it's"),
            ("line\nbreak", "\"line\\nbreak\""),
            ("sep\u{2028}x", "\"sep\\u2028x\""),
        ] {
            assert_eq!(yaml_string(s), want, "{s:?}");
        }
        assert_eq!(
            document(&json!({"execution": {"jobId": "j", "statusDetails": {}, "count": 1}})),
            "execution:\n  jobId: j\n  statusDetails: {}\n  count: 1\n"
        );
        assert_eq!(
            document(&json!([{"a": 1, "b": [2]}])),
            "- a: 1\n  b:\n  - 2\n"
        );
        assert_eq!(document(&json!("QUEUED")), "QUEUED\n...\n");
    }
}

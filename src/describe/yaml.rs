//! `--output yaml` and `yaml-stream` as AWS CLI v2 prints them: block style, members in the
//! document's order, strings plain where YAML reads them back as the same string.

use std::fmt::Write as _;

use serde_json::Value;

use super::format::py_float;

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

/// A string plain where YAML reads it back as the same string, else single-quoted.
fn yaml_string(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`~ ".contains(c))
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && s.chars().all(|c| !c.is_control())
        && !looks_typed(s);
    if plain_safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Whether YAML 1.1/1.2 would read `s` as something other than a string.
fn looks_typed(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    matches!(
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
    ) || s.parse::<f64>().is_ok()
        || s.starts_with("0x")
        || s.starts_with("0o")
        || (s.contains(['-', ':']) && s.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

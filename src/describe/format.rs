//! The AWS CLI's output formats for one answer document: `json`, `text` and `table` as the AWS CLI
//! prints them (ported from awscli's `formatter.py`, `text.py` and `table.py`: the same nesting,
//! ordering, widths, `None` for absent values and Python's spelling of scalars), and `yaml` /
//! `yaml-stream` as AWS CLI v2 documents them (block style; yaml-stream a list of the pages).

use std::fmt::Write as _;
use std::str::FromStr;

use serde_json::Value;

use super::spell::{is_scalar, py_str};
pub(crate) use super::table::TableStyle;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    Json,
    Text,
    Table,
    Yaml,
    YamlStream,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "json" => OutputFormat::Json,
            "text" => OutputFormat::Text,
            "table" => OutputFormat::Table,
            "yaml" => OutputFormat::Yaml,
            "yaml-stream" => OutputFormat::YamlStream,
            other => {
                return Err(format!(
                    "argument --output: Invalid choice, valid choices are:\n\njson | text | table | yaml | yaml-stream\n\n(got {other:?})"
                ))
            }
        })
    }
}

/// The width of the terminal on stdout, or 80 when stdout is no terminal (what the CLI assumes).
pub(crate) fn terminal_width() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct handed to it.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            return usize::from(ws.ws_col);
        }
    }
    80
}

/// The whole output of `doc` (the answer, after `--query`) in `format`; `title` is the operation
/// name the table's first section carries. Empty when the CLI prints nothing.
pub(crate) fn render(doc: &Value, format: OutputFormat, title: &str, style: TableStyle) -> String {
    match format {
        // json.dump(..., indent=4) of everything but `{}` (an empty answer prints nothing).
        OutputFormat::Json if doc.as_object().is_some_and(|m| m.is_empty()) => String::new(),
        OutputFormat::Json => format!("{}\n", super::to_cli_json(doc)),
        OutputFormat::Text => text(doc),
        OutputFormat::Table => super::table::table(doc, title, style),
        OutputFormat::Yaml if doc.as_object().is_some_and(|m| m.is_empty()) => String::new(),
        OutputFormat::Yaml => super::yaml::document(doc),
        OutputFormat::YamlStream => super::yaml::document(&Value::Array(vec![doc.clone()])),
    }
}

// ----- text (awscli/text.py) -----

/// `--output text`.
pub fn text(doc: &Value) -> String {
    let mut out = String::new();
    text_item(doc, &mut out, None, None);
    out
}

fn text_item(item: &Value, out: &mut String, identifier: Option<&str>, keys: Option<&[String]>) {
    match item {
        Value::Object(_) => text_dict(keys, item, identifier, out),
        Value::Array(list) => text_list(list, identifier, out),
        scalar => {
            out.push_str(&py_str(scalar));
            out.push('\n');
        }
    }
}

fn text_list(list: &[Value], identifier: Option<&str>, out: &mut String) {
    if list.is_empty() {
        return;
    }
    if list.iter().any(Value::is_object) {
        let keys = all_scalar_keys(list);
        for el in list {
            text_item(el, out, identifier, Some(&keys));
        }
    } else if list.iter().any(Value::is_array) {
        let (scalars, others): (Vec<&Value>, Vec<&Value>) = list.iter().partition(|v| is_scalar(v));
        if !scalars.is_empty() {
            text_scalars(&scalars, identifier, out);
        }
        for el in others {
            text_item(el, out, identifier, None);
        }
    } else {
        text_scalars(&list.iter().collect::<Vec<_>>(), identifier, out);
    }
}

fn text_scalars(items: &[&Value], identifier: Option<&str>, out: &mut String) {
    match identifier {
        Some(id) => {
            for v in items {
                let _ = writeln!(out, "{}\t{}", id.to_uppercase(), py_str(v));
            }
        }
        None => {
            let row: Vec<String> = items.iter().map(|v| py_str(v)).collect();
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
    }
}

fn text_dict(keys: Option<&[String]>, item: &Value, identifier: Option<&str>, out: &mut String) {
    let map = item.as_object().expect("a dict");
    let mut scalars: Vec<String> = Vec::new();
    let mut others: Vec<(&str, &Value)> = Vec::new();
    match keys {
        None => {
            let mut sorted: Vec<(&String, &Value)> = map.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in sorted {
                if is_scalar(v) {
                    scalars.push(py_str(v));
                } else {
                    others.push((k, v));
                }
            }
        }
        Some(keys) => {
            for k in keys {
                scalars.push(map.get(k).map(py_str).unwrap_or_default());
            }
            let mut rest: Vec<&String> = map.keys().filter(|k| !keys.contains(k)).collect();
            rest.sort();
            others.extend(rest.into_iter().map(|k| (k.as_str(), &map[k])));
        }
    }
    if !scalars.is_empty() {
        if let Some(id) = identifier {
            scalars.insert(0, id.to_uppercase());
        }
        out.push_str(&scalars.join("\t"));
        out.push('\n');
    }
    for (k, v) in others {
        text_item(v, out, Some(k), None);
    }
}

fn all_scalar_keys(list: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = list
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|m| {
            m.iter()
                .filter(|(_, v)| is_scalar(v))
                .map(|(k, _)| k.clone())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::super::spell::py_float;
    use super::*;
    use serde_json::json;

    #[test]
    fn completion_offers_exactly_the_formats_describe_takes() {
        for name in crate::cli::OUTPUT_FORMATS {
            assert!(name.parse::<OutputFormat>().is_ok(), "{name}");
        }
        let err = "xml".parse::<OutputFormat>().unwrap_err();
        assert!(
            err.contains(&crate::cli::OUTPUT_FORMATS.join(" | ")),
            "{err}"
        );
    }

    #[test]
    fn python_spells_scalars() {
        assert_eq!(py_float(1_764_400_000.123), "1764400000.123");
        assert_eq!(py_float(1_764_400_000.0), "1764400000.0");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(0.00001), "1e-05");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
    }

    #[test]
    fn text_nests_as_the_cli() {
        let doc = json!({"execution": {"status": "QUEUED", "jobId": "j", "statusDetails": {"detailsMap": {"b": "2", "a": "1"}}, "versionNumber": 1}});
        assert_eq!(text(&doc), "EXECUTION\tj\tQUEUED\t1\nDETAILSMAP\t1\t2\n");
        assert_eq!(text(&json!("QUEUED")), "QUEUED\n");
        assert_eq!(text(&json!(null)), "None\n");
        assert_eq!(text(&json!(["a", "b"])), "a\tb\n");
    }

    #[test]
    fn bad_output_names_the_choices() {
        let e = "xml".parse::<OutputFormat>().unwrap_err();
        assert!(
            e.contains("json | text | table | yaml | yaml-stream"),
            "{e}"
        );
    }
}

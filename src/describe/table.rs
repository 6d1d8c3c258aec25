//! `--output table`: the AWS CLI's TableFormatter (awscli/formatter.py) and MultiTable
//! (awscli/table.py): sections per nested map or list, sorted scalar columns, widths scaled to the
//! widest section, a table wider than the terminal turned vertical.

use std::fmt::Write as _;

use serde_json::Value;

use super::spell::{is_scalar, py_str};

/// How the table is drawn: `--color` (on: colours as the CLI's ColorizedStyler) and the width of
/// the terminal (80 when stdout is no terminal, as the CLI assumes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableStyle {
    pub color: bool,
    pub terminal_width: usize,
}

#[derive(Debug, Default)]
struct Section {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    indent: usize,
    num_cols: Option<usize>,
    max_widths: Vec<usize>,
}

/// Display width as the CLI measures it: East Asian wide and full-width characters count two.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

impl Section {
    fn update_widths(&mut self, row: &[String]) {
        if self.max_widths.is_empty() {
            self.max_widths = row.iter().map(|e| width(e)).collect();
        } else {
            for (i, e) in row.iter().enumerate() {
                if let Some(w) = self.max_widths.get_mut(i) {
                    *w = (*w).max(width(e));
                }
            }
        }
    }

    fn add_header(&mut self, headers: Vec<String>) {
        self.update_widths(&headers);
        self.num_cols.get_or_insert(headers.len());
        self.headers = headers;
    }

    fn add_row(&mut self, row: Vec<String>) {
        self.num_cols.get_or_insert(row.len());
        self.update_widths(&row);
        self.rows.push(row);
    }

    fn column_widths(&self, padding: usize, max_width: Option<usize>) -> Vec<usize> {
        let unscaled: Vec<usize> = self.max_widths.iter().map(|w| w + padding).collect();
        let Some(max) = max_width else {
            return unscaled;
        };
        if unscaled.is_empty() {
            return unscaled;
        }
        let scale = max as f64 / unscaled.iter().sum::<usize>() as f64;
        // Python's round(): half to even.
        let mut scaled: Vec<i64> = unscaled
            .iter()
            .map(|w| (scale * *w as f64).round_ties_even() as i64)
            .collect();
        let mut off = scaled.iter().sum::<i64>() - max as i64;
        while off != 0 {
            let order: Vec<usize> = if off < 0 {
                (0..scaled.len()).rev().collect()
            } else {
                (0..scaled.len()).collect()
            };
            for i in order {
                if off > 0 {
                    scaled[i] -= 1;
                    off -= 1;
                } else {
                    scaled[i] += 1;
                    off += 1;
                }
                if off == 0 {
                    break;
                }
            }
        }
        scaled.into_iter().map(|w| w.max(0) as usize).collect()
    }

    fn total_width(&self, padding: usize, outer: usize) -> usize {
        let total: usize = self
            .column_widths(0, None)
            .iter()
            .map(|w| w + padding)
            .sum();
        (width(&self.title) + 2 + 2 * outer).max(total + 2 + 2 * outer)
    }
}

/// The table's sections, built as the CLI's TableFormatter builds them.
#[derive(Default)]
struct Tables {
    sections: Vec<Section>,
}

impl Tables {
    fn current(&mut self) -> &mut Section {
        if self.sections.is_empty() {
            self.sections.push(Section::default());
        }
        self.sections.last_mut().expect("a section")
    }

    fn new_section(&mut self, title: &str, indent: usize) {
        self.sections.push(Section {
            title: title.to_string(),
            indent,
            ..Default::default()
        });
    }

    fn build(&mut self, title: Option<&str>, current: &Value, indent: usize) -> bool {
        let falsy = match current {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
        };
        if falsy {
            return false;
        }
        if let Some(t) = title {
            self.new_section(t, indent);
        }
        if let Value::Array(list) = current {
            if list[0].is_object() {
                self.sub_table_of_list(list, indent, title);
            } else {
                for item in list {
                    if is_scalar(item) {
                        self.current().add_row(vec![py_str(item)]);
                    } else if item.as_array().is_some_and(|a| a.iter().all(is_scalar)) {
                        let row = item
                            .as_array()
                            .map_or(Vec::new(), |a| a.iter().map(py_str).collect());
                        self.current().add_row(row);
                    } else {
                        self.build(None, item, 0);
                    }
                }
            }
        }
        if let Value::Object(_) = current {
            self.sub_table_of_dict(current, indent);
        }
        true
    }

    fn sub_table_of_dict(&mut self, current: &Value, indent: usize) {
        let map = current.as_object().expect("a dict");
        let (headers, more) = scalar_keys(map);
        if headers.len() == 1 {
            let k = &headers[0];
            self.current().add_row(vec![k.clone(), py_str(&map[k])]);
        } else if !headers.is_empty() {
            let row = headers.iter().map(|k| py_str(&map[k])).collect();
            self.current().add_header(headers);
            self.current().add_row(row);
        }
        for k in more {
            self.build(Some(&k), &map[&k], indent + 1);
        }
    }

    fn sub_table_of_list(&mut self, list: &[Value], indent: usize, title: Option<&str>) {
        let mut headers: Vec<String> = Vec::new();
        let mut more: Vec<String> = Vec::new();
        for m in list.iter().filter_map(Value::as_object) {
            let (h, o) = scalar_keys(m);
            headers.extend(h);
            more.extend(o);
        }
        headers.sort();
        headers.dedup();
        more.sort();
        more.dedup();
        self.current().add_header(headers.clone());
        let mut first = true;
        for el in list {
            let Some(m) = el.as_object() else { continue };
            if !first && !more.is_empty() {
                self.new_section(title.unwrap_or(""), indent);
                self.current().add_header(headers.clone());
            }
            first = false;
            let row = headers
                .iter()
                .map(|h| m.get(h).map(py_str).unwrap_or_default())
                .collect();
            self.current().add_row(row);
            for k in &more {
                if let Some(v) = m.get(k) {
                    self.build(Some(k), v, indent + 1);
                }
            }
        }
    }
}

fn scalar_keys(map: &serde_json::Map<String, Value>) -> (Vec<String>, Vec<String>) {
    let (mut headers, mut more): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (k, v) in map {
        if is_scalar(v) {
            headers.push(k.clone());
        } else {
            more.push(k.clone());
        }
    }
    headers.sort();
    more.sort();
    (headers, more)
}

fn center(text: &str, text_width: usize, length: usize, left: &str, right: &str) -> String {
    let start = (length / 2) as i64 - (text_width / 2) as i64 - 1;
    let start = start.max(0) as usize;
    let so_far = width(left) + start + text_width;
    let right_spaces = length.saturating_sub(width(right) + so_far);
    format!(
        "{left}{}{text}{}{right}",
        " ".repeat(start),
        " ".repeat(right_spaces)
    )
}

fn align_left(text: &str, text_width: usize, length: usize, left: &str, right: &str) -> String {
    let padding = if length as i64 - (text_width + 2 + width(left) + width(right)) as i64 >= 0 {
        2
    } else {
        0
    };
    let so_far = left.len() + padding + text_width;
    let fill = length.saturating_sub(so_far + right.len());
    format!(
        "{left}{}{text}{}{right}",
        " ".repeat(padding),
        " ".repeat(fill)
    )
}

/// The styles of the CLI's ColorizedStyler (row elements bright blue, indentation dim yellow).
fn style_row(s: &str, color: bool) -> String {
    if color {
        format!("\x1b[1m\x1b[34m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn style_indent(color: bool) -> String {
    if color {
        "\x1b[2m\x1b[33m|\x1b[0m".into()
    } else {
        "|".into()
    }
}

/// `--output table`.
pub fn table(doc: &Value, title: &str, style: TableStyle) -> String {
    let mut t = Tables::default();
    if !t.build(Some(title), doc, 0) {
        return String::new();
    }
    let max_width = |sections: &[Section]| {
        sections
            .iter()
            .map(|s| s.total_width(4, s.indent))
            .max()
            .unwrap_or(0)
    };
    let mut max = max_width(&t.sections);
    if max > style.terminal_width {
        to_vertical(&mut t.sections);
        max = max_width(&t.sections);
    }
    let mut out = format!("{}\n", "-".repeat(max));
    for s in &t.sections {
        render_section(s, max, style.color, &mut out);
    }
    out
}

/// Every section of a single row with headers becomes `header | value` rows (too wide a table).
fn to_vertical(sections: &mut [Section]) {
    for s in sections.iter_mut() {
        if s.rows.len() == 1 && !s.headers.is_empty() {
            let mut v = Section {
                title: s.title.clone(),
                indent: s.indent,
                ..Default::default()
            };
            for (h, e) in s.headers.iter().zip(&s.rows[0]) {
                v.add_row(vec![h.clone(), e.clone()]);
            }
            *s = v;
        }
    }
}

fn render_section(s: &Section, max_width: usize, color: bool, out: &mut String) {
    let indent = style_indent(color).repeat(s.indent);
    let mut line = |text: &str| {
        out.push_str(&indent);
        out.push_str(text);
        out.push_str(&indent);
        out.push('\n');
    };
    let max = max_width.saturating_sub(s.indent * 2);
    if !s.title.is_empty() {
        line(&center(&s.title, width(&s.title), max, "|", "|"));
        if s.headers.is_empty() && s.rows.is_empty() {
            line(&format!("+{}+", "-".repeat(max.saturating_sub(2))));
        }
    }
    let widths = s.column_widths(4, Some(max));
    let rule = |widths: &[usize]| {
        let mut r = String::new();
        for (i, w) in widths.iter().enumerate() {
            if i == 0 {
                let _ = write!(r, "+{}+", "-".repeat(w.saturating_sub(2)));
            } else {
                let _ = write!(r, "{}+", "-".repeat(w.saturating_sub(1)));
            }
        }
        r
    };
    if !s.headers.is_empty() {
        let mut cur = String::new();
        for (i, (w, h)) in widths.iter().zip(&s.headers).enumerate() {
            cur.push_str(&center(h, width(h), *w, if i == 0 { "|" } else { "" }, "|"));
        }
        line(&rule(&widths));
        line(&cur);
    }
    if !s.rows.is_empty() && !widths.is_empty() {
        line(&rule(&widths));
        for row in &s.rows {
            let mut cur = String::new();
            for (i, (w, e)) in widths.iter().zip(row).enumerate() {
                let styled = style_row(e, color);
                cur.push_str(&align_left(
                    &styled,
                    width(e),
                    *w,
                    if i == 0 { "|" } else { "" },
                    "|",
                ));
            }
            line(&cur);
        }
        line(&rule(&widths));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain() -> TableStyle {
        TableStyle {
            color: false,
            terminal_width: 80,
        }
    }

    #[test]
    fn a_scalar_table_is_a_title_box() {
        assert_eq!(
            table(&json!("QUEUED"), "DescribeJobExecution", plain()),
            "----------------------\n|DescribeJobExecution|\n+--------------------+\n"
        );
        assert_eq!(table(&json!(null), "DescribeJobExecution", plain()), "");
    }
}

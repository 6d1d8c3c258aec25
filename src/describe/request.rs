//! `describe`'s request: `--cli-input-json` / `--cli-input-yaml` (text or `file://PATH`, the flat
//! YAML of `--generate-cli-skeleton yaml-input`) merged with the flags, which win, and validated as
//! the AWS CLI does (unknown keys, types, missing and invalid names: usage errors, exit 252).

use serde_json::{Map, Value};

use super::DescribeError;
use crate::cli::DescribeArgs;
use crate::input::names::{is_valid_job_id, is_valid_thing_name, JOB_ID_RULE, THING_NAME_RULE};

/// The request, after merging `--cli-input-*` and the flags (flags win).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DescribeRequest {
    pub job_id: String,
    pub thing_name: String,
    pub execution_number: Option<i64>,
}

/// `--generate-cli-skeleton input`: the request as `--cli-input-json` takes it.
pub(super) const INPUT_SKELETON: &str =
    "{\n    \"jobId\": \"\",\n    \"thingName\": \"\",\n    \"executionNumber\": 0\n}";

/// `--generate-cli-skeleton yaml-input`: the request as `--cli-input-yaml` takes it, as the AWS CLI
/// prints it.
pub(super) const YAML_SKELETON: &str = "jobId: '' # [REQUIRED] The unique identifier you assigned to this job when it was created.
thingName: '' # [REQUIRED] The name of the thing on which the job execution is running.
executionNumber: 0 # A string (consisting of the digits \"0\" through \"9\" which is used to specify a particular job execution on a particular device.";

/// Reads `file://PATH` or takes the text itself, as the CLI does.
fn text_or_file(s: &str) -> Result<String, DescribeError> {
    match s.strip_prefix("file://") {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| DescribeError::Usage(format!("cannot read {p}: {e}"))),
        None => Ok(s.to_string()),
    }
}

/// Parses the flat YAML that `--generate-cli-skeleton yaml-input` produces.
fn parse_flat_yaml(text: &str) -> Result<Map<String, Value>, DescribeError> {
    let mut m = Map::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_yaml_comment(raw).trim_end();
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            return Err(DescribeError::Usage(format!(
                "--cli-input-yaml line {}: nested values are not valid for this operation",
                n + 1
            )));
        }
        let (k, v) = line.split_once(':').ok_or_else(|| {
            DescribeError::Usage(format!(
                "--cli-input-yaml line {}: expected `key: value`",
                n + 1
            ))
        })?;
        let v = v.trim();
        let value = if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            Value::String(s.replace("''", "'"))
        } else if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Value::String(s.to_string())
        } else if let Ok(i) = v.parse::<i64>() {
            Value::from(i)
        } else {
            Value::String(v.to_string())
        };
        m.insert(k.trim().to_string(), value);
    }
    Ok(m)
}

/// `line` without its comment (a `#` at its start or after a space, outside quotes).
fn strip_yaml_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || line[..i].ends_with(char::is_whitespace) => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Merges `--cli-input-*` with the flags and validates the names.
pub(crate) fn request_of(a: &DescribeArgs) -> Result<DescribeRequest, DescribeError> {
    let input = cli_input(a)?;
    let str_of = |k: &str| -> Result<Option<String>, DescribeError> {
        match input.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(DescribeError::Usage(format!(
                "Parameter validation failed:\nInvalid type for parameter {k}, value: {other}, type: {}, valid types: <class 'str'>",
                json_type(other)
            ))),
        }
    };
    let job_id = a.job_id.clone().or(str_of("jobId")?);
    let thing_name = a.thing_name.clone().or(str_of("thingName")?);
    let execution_number = match (a.execution_number, input.get("executionNumber")) {
        (Some(n), _) => Some(n),
        (None, None) => None,
        (None, Some(v)) => Some(v.as_i64().ok_or_else(|| {
            DescribeError::Usage(format!("Parameter validation failed:\nInvalid type for parameter executionNumber, value: {v}, valid types: <class 'int'>"))
        })?),
    };
    checked(job_id, thing_name, execution_number)
}

/// The document of `--cli-input-json` or `--cli-input-yaml` (empty without either); a key the
/// operation does not take is refused.
fn cli_input(a: &DescribeArgs) -> Result<Map<String, Value>, DescribeError> {
    let mut input = Map::new();
    if let Some(j) = &a.cli_input_json {
        let text = text_or_file(j)?;
        input = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(DescribeError::Usage(
                    "--cli-input-json must be a JSON object".into(),
                ))
            }
            Err(e) => {
                return Err(DescribeError::Usage(format!(
                    "--cli-input-json is not valid JSON: {e}"
                )))
            }
        };
    } else if let Some(y) = &a.cli_input_yaml {
        input = parse_flat_yaml(&text_or_file(y)?)?;
    }
    for k in input.keys() {
        if !["jobId", "thingName", "executionNumber"].contains(&k.as_str()) {
            return Err(DescribeError::Usage(format!(
                "Parameter validation failed:\nUnknown parameter in input: \"{k}\", must be one of: jobId, thingName, executionNumber"
            )));
        }
    }
    Ok(input)
}

/// The request, once both names are given and valid and the execution number is not negative.
fn checked(
    job_id: Option<String>,
    thing_name: Option<String>,
    execution_number: Option<i64>,
) -> Result<DescribeRequest, DescribeError> {
    let mut missing = Vec::new();
    if job_id.as_deref().is_none_or(str::is_empty) {
        missing.push("--job-id");
    }
    if thing_name.as_deref().is_none_or(str::is_empty) {
        missing.push("--thing-name");
    }
    if !missing.is_empty() {
        return Err(DescribeError::Usage(format!(
            "the following arguments are required: {}",
            missing.join(", ")
        )));
    }
    let (job_id, thing_name) = (job_id.unwrap_or_default(), thing_name.unwrap_or_default());
    if !is_valid_job_id(&job_id) {
        return Err(DescribeError::Usage(format!(
            "--job-id {job_id:?}: {JOB_ID_RULE}"
        )));
    }
    if !is_valid_thing_name(&thing_name) {
        return Err(DescribeError::Usage(format!(
            "--thing-name {thing_name:?}: {THING_NAME_RULE}"
        )));
    }
    if execution_number.is_some_and(|n| n < 0) {
        return Err(DescribeError::Usage(
            "--execution-number must be non-negative".into(),
        ));
    }
    Ok(DescribeRequest {
        job_id,
        thing_name,
        execution_number,
    })
}

/// The Python type the AWS CLI names for a JSON value, in its parameter errors.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DescribeArgs {
        DescribeArgs {
            job_id: None,
            thing_name: None,
            execution_number: None,
            cli_input_json: None,
            cli_input_yaml: None,
            generate_cli_skeleton: None,
            connection: crate::cli::ConnectionArgs {
                region: None,
                profile: None,
                endpoint_url: None,
            },
            global: Default::default(),
        }
    }

    #[test]
    fn flags_override_cli_input_json() {
        let mut a = args();
        a.cli_input_json =
            Some(r#"{"jobId": "j1", "thingName": "t1", "executionNumber": 4}"#.into());
        a.thing_name = Some("t2".into());
        let r = request_of(&a).unwrap();
        assert_eq!(
            r,
            DescribeRequest {
                job_id: "j1".into(),
                thing_name: "t2".into(),
                execution_number: Some(4)
            }
        );
    }

    #[test]
    fn yaml_input_skeleton_round_trips() {
        let mut a = args();
        a.cli_input_yaml = Some(
            YAML_SKELETON
                .replace("jobId: ''", "jobId: 'job-1'")
                .replace("thingName: ''", "thingName: \"t-1\""),
        );
        let r = request_of(&a).unwrap();
        assert_eq!(r.job_id, "job-1");
        assert_eq!(r.thing_name, "t-1");
        assert_eq!(r.execution_number, Some(0));
    }

    #[test]
    fn missing_and_unknown_arguments_are_usage_errors() {
        let e = request_of(&args()).unwrap_err();
        assert!(e.to_string().contains("--job-id, --thing-name"), "{e}");
        assert_eq!(e.exit_code(), 252, "AWS CLI v2: bad syntax or parameter");
        let mut a = args();
        a.cli_input_json = Some(r#"{"jobId": "j", "thingName": "t", "nope": 1}"#.into());
        assert!(request_of(&a)
            .unwrap_err()
            .to_string()
            .contains("Unknown parameter in input: \"nope\""));
        let mut a = args();
        a.job_id = Some("bad id".into());
        a.thing_name = Some("t".into());
        assert!(request_of(&a)
            .unwrap_err()
            .to_string()
            .contains(JOB_ID_RULE));
    }
}

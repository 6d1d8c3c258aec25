//! The AWS CLI's global options of `describe`, validated before any call: the output format (flag,
//! then `AWS_DEFAULT_OUTPUT`, then the profile's `output`, then json), the JMESPath query, the
//! socket timeouts, the CA bundle and the table's colour.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::OutputFormat;
use super::DescribeError;
use crate::cli::CliGlobalArgs;

/// The global options, validated.
#[derive(Debug)]
pub(crate) struct GlobalOptions {
    pub output: OutputFormat,
    pub query: Option<jmespath::Expression<'static>>,
    /// `None`: the SDK's default; `Some(None)`: no limit (0).
    pub connect_timeout: Option<Option<Duration>>,
    pub read_timeout: Option<Option<Duration>>,
    /// The PEM bytes of `--ca-bundle` / `AWS_CA_BUNDLE`.
    pub ca_bundle: Option<(PathBuf, Vec<u8>)>,
    pub debug: bool,
    pub color: bool,
}

/// Where the process environment and the AWS config file are read from (a seam for tests).
pub(crate) struct Env<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub stdout_is_terminal: bool,
}

impl GlobalOptions {
    /// Validates `a` (with `profile`, the `--profile` flag) against `env`.
    pub(crate) fn resolve(
        a: &CliGlobalArgs,
        profile: Option<&str>,
        env: &Env<'_>,
    ) -> Result<GlobalOptions, DescribeError> {
        let output = match a
            .output
            .clone()
            .or_else(|| (env.var)("AWS_DEFAULT_OUTPUT").filter(|v| !v.trim().is_empty()))
            .or_else(|| profile_output(profile, env))
        {
            Some(o) => o.trim().parse().map_err(DescribeError::Usage)?,
            None => OutputFormat::Json,
        };
        let query = a
            .query
            .as_deref()
            .map(|q| {
                jmespath::compile(q)
                    .map_err(|e| DescribeError::Usage(format!("Bad value for --query {q}: {e}")))
            })
            .transpose()?;
        let color = match a.color.as_str() {
            "on" => true,
            "off" => false,
            "auto" => env.stdout_is_terminal,
            other => {
                return Err(DescribeError::Usage(format!(
                    "argument --color: Invalid choice, valid choices are:\n\non | off | auto\n\n(got {other:?})"
                )))
            }
        };
        let ca = a.ca_bundle.clone().or_else(|| {
            (env.var)("AWS_CA_BUNDLE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let ca_bundle = ca.map(|p| read_bundle(&p).map(|b| (p, b))).transpose()?;
        Ok(GlobalOptions {
            output,
            query,
            connect_timeout: timeout("cli-connect-timeout", a.cli_connect_timeout.as_deref())?,
            read_timeout: timeout("cli-read-timeout", a.cli_read_timeout.as_deref())?,
            ca_bundle,
            debug: a.debug,
            color,
        })
    }
}

/// `--cli-*-timeout N`: whole seconds, 0 for no limit.
fn timeout(flag: &str, v: Option<&str>) -> Result<Option<Option<Duration>>, DescribeError> {
    let Some(v) = v else { return Ok(None) };
    match v.trim().parse::<u64>() {
        Ok(0) => Ok(Some(None)),
        Ok(n) => Ok(Some(Some(Duration::from_secs(n)))),
        Err(_) => Err(DescribeError::Usage(format!(
            "argument --{flag}: expected a number of seconds >= 0 (0 means no limit), got {v:?}"
        ))),
    }
}

/// The CA bundle's PEM text; a missing or certificate-less file is invalid configuration.
fn read_bundle(p: &Path) -> Result<Vec<u8>, DescribeError> {
    let bytes = std::fs::read(p).map_err(|e| {
        DescribeError::Config(format!("the CA bundle {} cannot be read: {e}", p.display()))
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
        return Err(DescribeError::Config(format!(
            "the CA bundle {} holds no PEM certificate",
            p.display()
        )));
    }
    Ok(bytes)
}

/// The `output` setting of the profile in the AWS config file (`AWS_CONFIG_FILE`, else
/// `~/.aws/config`): `[default]` or `[profile NAME]`.
fn profile_output(profile: Option<&str>, env: &Env<'_>) -> Option<String> {
    let name = profile
        .map(str::to_string)
        .or_else(|| (env.var)("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let file = (env.var)("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| (env.var)("HOME").map(|h| Path::new(&h).join(".aws/config")))?;
    let text = std::fs::read_to_string(file).ok()?;
    config_value(&text, &name, "output")
}

/// `key` in the section of profile `name` of an AWS config file's text.
fn config_value(text: &str, name: &str, key: &str) -> Option<String> {
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            in_section = section == name && name == "default"
                || section
                    .strip_prefix("profile")
                    .is_some_and(|s| s.starts_with(char::is_whitespace) && s.trim() == name);
            continue;
        }
        if in_section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(a: &CliGlobalArgs, vars: &[(&str, String)]) -> Result<GlobalOptions, DescribeError> {
        let var = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let env = Env {
            var: &var,
            stdout_is_terminal: false,
        };
        GlobalOptions::resolve(a, None, &env)
    }

    fn args() -> CliGlobalArgs {
        CliGlobalArgs {
            color: "auto".into(),
            ..Default::default()
        }
    }

    #[test]
    fn output_comes_from_the_flag_then_the_environment_then_the_profile() {
        let d = tempfile::tempdir().unwrap();
        let config = d.path().join("config");
        std::fs::write(
            &config,
            "[default]\noutput = table\n[profile ops]\nregion = eu-west-1\noutput=yaml\n",
        )
        .unwrap();
        let file = config.to_string_lossy().into_owned();
        let out = |a: &CliGlobalArgs, vars: &[(&str, String)]| resolve(a, vars).unwrap().output;
        assert_eq!(out(&args(), &[]), OutputFormat::Json, "nothing set: json");
        assert_eq!(
            out(&args(), &[("AWS_CONFIG_FILE", file.clone())]),
            OutputFormat::Table
        );
        let ops = [
            ("AWS_CONFIG_FILE", file.clone()),
            ("AWS_PROFILE", "ops".to_string()),
        ];
        assert_eq!(out(&args(), &ops), OutputFormat::Yaml);
        let with_env = [
            ("AWS_CONFIG_FILE", file.clone()),
            ("AWS_DEFAULT_OUTPUT", "text".to_string()),
        ];
        assert_eq!(out(&args(), &with_env), OutputFormat::Text);
        let mut flag = args();
        flag.output = Some("yaml-stream".into());
        assert_eq!(out(&flag, &with_env), OutputFormat::YamlStream);
    }

    #[test]
    fn each_bad_value_is_named_with_its_exit_code() {
        let mut a = args();
        a.output = Some("xml".into());
        let e = resolve(&a, &[]).unwrap_err();
        assert!(
            e.to_string().contains("argument --output: Invalid choice"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 252);

        let mut a = args();
        a.query = Some("execution.[".into());
        let e = resolve(&a, &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Bad value for --query execution.[:"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 252);

        let mut a = args();
        a.cli_read_timeout = Some("-1".into());
        let e = resolve(&a, &[]).unwrap_err();
        assert!(e.to_string().contains("argument --cli-read-timeout"), "{e}");
        assert_eq!(e.exit_code(), 252);

        let mut a = args();
        a.ca_bundle = Some("/no/such/ca.pem".into());
        let e = resolve(&a, &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("the CA bundle /no/such/ca.pem cannot be read"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 253);
        let e = resolve(&args(), &[("AWS_CA_BUNDLE", "/no/such/env.pem".into())]).unwrap_err();
        assert!(e.to_string().contains("/no/such/env.pem"), "{e}");

        let mut a = args();
        a.color = "sometimes".into();
        assert_eq!(resolve(&a, &[]).unwrap_err().exit_code(), 252);

        let mut a = args();
        a.cli_connect_timeout = Some("0".into());
        a.cli_read_timeout = Some("7".into());
        let o = resolve(&a, &[]).unwrap();
        assert_eq!(o.connect_timeout, Some(None), "0: no limit");
        assert_eq!(o.read_timeout, Some(Some(Duration::from_secs(7))));
    }
}

//! A run's input identity: what its rows were made from. The manifest records it, and `--resume`, a
//! dated run and a retry compare it with the run's before any call. [`InputIdentity`] is the one
//! place it is built, printed and read back; a new dimension is a field here.
//!
//! The manifest keeps its text, as every earlier version wrote it:
//! `SOURCE[:targets=T][:shard=K/N][:changed-while-read]`, where SOURCE is `lists:things=H:jobs=H`,
//! `pairs:H` or `discover:LISTED:execution-status=S:describe=M` (LISTED: `jobs=H`, `things=H` or
//! `list-jobs=S`; `*` for no filter), H a file's content fingerprint.

use std::fmt;

use crate::input::shard::Shard;

/// What the rows were made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--things` x `--jobs`: the two files' content fingerprints.
    Lists { things: String, jobs: String },
    /// `--pairs`: the file's content fingerprint.
    Pairs { content: String },
    /// `--discover`: what was listed, the status filter and the describe mode.
    Discover {
        listed: Listed,
        /// `--execution-status`; `None`: every status.
        execution_status: Option<String>,
        /// `--describe` (`all`, `active`, `none`).
        describe: String,
    },
    /// A text this version does not read as any of the above: kept as written, compared whole.
    Other(String),
}

/// What a discovery lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A `--jobs` file (its content fingerprint).
    Jobs(String),
    /// A `--things` file (its content fingerprint).
    Things(String),
    /// Every job ListJobs returns, in this `--job-status` (`None`: any).
    AllJobs(Option<String>),
}

/// A run's input identity: its source, the targets it audits, its shard, and whether its input
/// changed while it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputIdentity {
    pub source: Source,
    /// The targets audited, as the manifest names them: `None` for one target; their labels joined
    /// by `,` up to 16; beyond that their number and one hash (the manifest, rewritten at every
    /// commit, stays small).
    pub targets: Option<String>,
    /// `--shard K/N` as `K/N`; `None`: all of the input.
    pub shard: Option<String>,
    /// The input changed while a run read it: what it committed may stand for other pairs than any
    /// input's now, so no run matches this identity.
    pub changed_while_read: bool,
}

const CHANGED: &str = ":changed-while-read";

impl InputIdentity {
    /// The identity of one target's whole input from `source`.
    pub fn of(source: Source) -> Self {
        InputIdentity {
            source,
            targets: None,
            shard: None,
            changed_while_read: false,
        }
    }

    /// Audited in these targets (labels in plan order); one target adds nothing.
    pub(crate) fn with_targets(mut self, labels: &[String]) -> Self {
        self.targets = match labels.len() {
            0 | 1 => None,
            2..=16 => Some(labels.join(",")),
            n => Some(format!(
                "{n} targets {:016x}",
                crate::input::pair::name_hash(&labels.join(","))
            )),
        };
        self
    }

    /// Only this shard of the input.
    pub(crate) fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard.map(|s| s.to_string());
        self
    }

    /// The same identity, marked as changed while it was read.
    pub fn changed(mut self) -> Self {
        self.changed_while_read = true;
        self
    }

    /// Reads a manifest's text back. Never fails: a source this version does not know is
    /// [`Source::Other`], which matches only the same text.
    pub fn parse(text: &str) -> Self {
        let (text, changed_while_read) = match text.strip_suffix(CHANGED) {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let (rest, shard) = match text.split_once(":shard=") {
            Some((rest, s)) => (rest, Some(s.to_string())),
            None => (text, None),
        };
        let (source, targets) = match rest.split_once(":targets=") {
            Some((source, t)) => (source, Some(t.to_string())),
            None => (rest, None),
        };
        InputIdentity {
            source: Source::parse(source),
            targets,
            shard,
            changed_while_read,
        }
    }
}

impl Source {
    fn parse(text: &str) -> Source {
        let other = || Source::Other(text.to_string());
        let fields: Vec<&str> = text.split(':').collect();
        fn value<'a>(field: &'a str, key: &str) -> Option<&'a str> {
            field.strip_prefix(key)?.strip_prefix('=')
        }
        let any = |v: &str| (v != "*").then(|| v.to_string());
        match fields.as_slice() {
            ["lists", t, j] => match (value(t, "things"), value(j, "jobs")) {
                (Some(things), Some(jobs)) => Source::Lists {
                    things: things.into(),
                    jobs: jobs.into(),
                },
                _ => other(),
            },
            ["pairs", content] => Source::Pairs {
                content: content.to_string(),
            },
            ["discover", listed, status, describe] => {
                let listed = if let Some(h) = value(listed, "jobs") {
                    Listed::Jobs(h.into())
                } else if let Some(h) = value(listed, "things") {
                    Listed::Things(h.into())
                } else if let Some(s) = value(listed, "list-jobs") {
                    Listed::AllJobs(any(s))
                } else {
                    return other();
                };
                match (
                    value(status, "execution-status"),
                    value(describe, "describe"),
                ) {
                    (Some(s), Some(d)) => Source::Discover {
                        listed,
                        execution_status: any(s),
                        describe: d.into(),
                    },
                    _ => other(),
                }
            }
            _ => other(),
        }
    }

    /// The flags that give this source, for a message: `a --pairs file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Lists { .. } => "a --things and a --jobs list",
            Source::Pairs { .. } => "a --pairs file",
            Source::Discover { .. } => "a discovery (--discover)",
            Source::Other(_) => "inputs of another kind",
        }
    }
}

impl Source {
    /// What differs from `self` (a dataset's source) to `now` (this run's) when both are of one
    /// kind, in the words of the flags: `the --jobs file's content`, `--describe (was all, now
    /// active)`. A pairs file's content is all a pairs source has, so it is always named.
    pub(crate) fn changes_to(&self, now: &Source) -> Vec<String> {
        let star = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
        let mut changed: Vec<String> = Vec::new();
        match (self, now) {
            (Source::Lists { things, jobs }, Source::Lists { things: t, jobs: j }) => {
                if things != t {
                    changed.push("the --things file's content".into());
                }
                if jobs != j {
                    changed.push("the --jobs file's content".into());
                }
            }
            (Source::Pairs { .. }, Source::Pairs { .. }) => {
                changed.push("the --pairs file's content".into());
            }
            (
                Source::Discover {
                    listed,
                    execution_status,
                    describe,
                },
                Source::Discover {
                    listed: l,
                    execution_status: e,
                    describe: d,
                },
            ) => {
                changed.extend(listed.change_to(l));
                if execution_status != e {
                    changed.push(format!(
                        "--execution-status (was {}, now {})",
                        star(execution_status),
                        star(e)
                    ));
                }
                if describe != d {
                    changed.push(format!("--describe (was {describe}, now {d})"));
                }
            }
            _ => {}
        }
        changed
    }
}

impl Listed {
    /// What differs in what a discovery lists, from `self` to `now`.
    fn change_to(&self, now: &Listed) -> Option<String> {
        let star = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
        let what = |l: &Listed| match l {
            Listed::Jobs(_) => "a --jobs file".to_string(),
            Listed::Things(_) => "a --things file".to_string(),
            Listed::AllJobs(s) => format!("every job (--job-status {})", star(s)),
        };
        match (self, now) {
            (a, b) if a == b => None,
            (Listed::Jobs(_), Listed::Jobs(_)) => {
                Some("the --jobs file's content (the jobs listed)".into())
            }
            (Listed::Things(_), Listed::Things(_)) => {
                Some("the --things file's content (the things listed)".into())
            }
            (Listed::AllJobs(a), Listed::AllJobs(b)) => {
                Some(format!("--job-status (was {}, now {})", star(a), star(b)))
            }
            (a, b) => Some(format!("what is listed (was {}, now {})", what(a), what(b))),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
        match self {
            Source::Lists { things, jobs } => write!(f, "lists:things={things}:jobs={jobs}"),
            Source::Pairs { content } => write!(f, "pairs:{content}"),
            Source::Discover {
                listed,
                execution_status,
                describe,
            } => {
                let listed = match listed {
                    Listed::Jobs(h) => format!("jobs={h}"),
                    Listed::Things(h) => format!("things={h}"),
                    Listed::AllJobs(s) => format!("list-jobs={}", any(s)),
                };
                write!(
                    f,
                    "discover:{listed}:execution-status={}:describe={describe}",
                    any(execution_status)
                )
            }
            Source::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for InputIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(t) = &self.targets {
            write!(f, ":targets={t}")?;
        }
        if let Some(s) = &self.shard {
            write!(f, ":shard={s}")?;
        }
        if self.changed_while_read {
            f.write_str(CHANGED)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts as the manifests of earlier versions hold them, each read back and printed unchanged.
    #[test]
    fn manifest_texts_read_back_and_print_unchanged() {
        for text in [
            "lists:things=00000000000000aa:jobs=00000000000000bb",
            "pairs:0123456789abcdef",
            "pairs:0123456789abcdef:shard=2/3",
            "pairs:0123456789abcdef:targets=111111111111/eu-west-1,profile:x/us-east-1:shard=1/2",
            "discover:jobs=00000000000000aa:execution-status=*:describe=active",
            "discover:things=00000000000000aa:execution-status=QUEUED:describe=all",
            "discover:list-jobs=IN_PROGRESS:execution-status=*:describe=none:targets=20 targets 00000000000000ff",
            "pairs:0123456789abcdef:changed-while-read",
            "something:else:entirely",
        ] {
            assert_eq!(InputIdentity::parse(text).to_string(), text);
        }
    }

    #[test]
    fn parts_are_typed() {
        let id = InputIdentity::parse(
            "discover:list-jobs=*:execution-status=QUEUED:describe=active:targets=a,b:shard=1/3",
        );
        assert_eq!(
            id.source,
            Source::Discover {
                listed: Listed::AllJobs(None),
                execution_status: Some("QUEUED".into()),
                describe: "active".into(),
            }
        );
        assert_eq!(id.targets.as_deref(), Some("a,b"));
        assert_eq!(id.shard.as_deref(), Some("1/3"));
        assert!(!id.changed_while_read);
        assert!(InputIdentity::parse("pairs:ab:changed-while-read").changed_while_read);
        assert_eq!(
            InputIdentity::parse("lists:jobs=1:things=2").source,
            Source::Other("lists:jobs=1:things=2".into())
        );
    }

    #[test]
    fn changes_are_named_in_the_words_of_the_flags() {
        let lists = |t: &str, j: &str| Source::Lists {
            things: t.into(),
            jobs: j.into(),
        };
        assert_eq!(
            lists("1", "2").changes_to(&lists("1", "3")),
            ["the --jobs file's content"]
        );
        assert_eq!(
            lists("1", "2").changes_to(&lists("4", "3")),
            ["the --things file's content", "the --jobs file's content"]
        );
        let discover = |listed: Listed, status: Option<&str>, describe: &str| Source::Discover {
            listed,
            execution_status: status.map(Into::into),
            describe: describe.into(),
        };
        let was = discover(Listed::AllJobs(None), None, "active");
        assert!(was.changes_to(&was.clone()).is_empty());
        assert_eq!(
            was.changes_to(&discover(
                Listed::AllJobs(Some("IN_PROGRESS".into())),
                Some("QUEUED"),
                "all"
            )),
            [
                "--job-status (was *, now IN_PROGRESS)",
                "--execution-status (was *, now QUEUED)",
                "--describe (was active, now all)"
            ]
        );
        assert_eq!(
            was.changes_to(&discover(Listed::Jobs("9".into()), None, "active")),
            ["what is listed (was every job (--job-status *), now a --jobs file)"]
        );
    }

    #[test]
    fn targets_are_named_whole_up_to_sixteen() {
        let labels = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        let base = || {
            InputIdentity::of(Source::Pairs {
                content: "ab".into(),
            })
        };
        assert_eq!(base().with_targets(&labels(1)).to_string(), "pairs:ab");
        assert_eq!(
            base().with_targets(&labels(2)).to_string(),
            "pairs:ab:targets=t0,t1"
        );
        let many = base().with_targets(&labels(17)).to_string();
        assert!(many.starts_with("pairs:ab:targets=17 targets "), "{many}");
        assert_eq!(many.len(), "pairs:ab:targets=17 targets ".len() + 16);
        let s = Shard::parse("2/5", |_| None).unwrap();
        assert_eq!(
            base().with_shard(Some(s)).changed().to_string(),
            "pairs:ab:shard=2/5:changed-while-read"
        );
    }
}

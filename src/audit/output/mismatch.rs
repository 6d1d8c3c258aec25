//! A resume's manifest against this run: the first difference (inputs, shard, targets, pairs, table
//! format, file format, partitions), named in the words of the flags.

use crate::audit::config::RunConfig;
use crate::audit::error::Mismatch;
use crate::dataset::Manifest;
use crate::input::identity::InputIdentity;

/// What differs between the inputs a dataset was written from (`was`) and this run's (`now`), in the
/// words of the flags: which file's content, which filter.
pub(super) fn input_change(was: &InputIdentity, now: &InputIdentity) -> String {
    if was.changed_while_read {
        return "its input changed while that run read it, so what it committed may stand for other \
                pairs than any input's now"
            .to_string();
    }
    if was.source.kind() != now.source.kind() {
        return format!(
            "it was written from {}; this run reads {}",
            was.source.kind(),
            now.source.kind()
        );
    }
    let changed = was.source.changes_to(&now.source);
    if changed.is_empty() {
        return format!("it was written from other inputs ({was}; this run: {now})");
    }
    let files = changed.iter().any(|c| c.contains("file's content"));
    format!(
        "{} differ{} from what it was written from{}",
        changed.join(" and "),
        if changed.len() == 1 { "s" } else { "" },
        if files {
            " (files are compared by their content, lines in order)"
        } else {
            ""
        }
    )
}

/// The first difference between the manifest `m` and this run, named and explained.
/// `--table-format` as the manifest has it against this run's, when they differ.
fn table_format_change(m: &Manifest, cfg: &RunConfig) -> Option<String> {
    let what = |t: &Option<String>| match t {
        Some(t) => format!("a {t} table"),
        None => "no table format".to_string(),
    };
    let now = cfg.output.table_format();
    (m.table_format != now).then(|| {
        format!(
            "it was written as {}, and this run asks for {}",
            what(&m.table_format),
            what(&now)
        )
    })
}

pub(super) fn mismatch(
    m: &Manifest,
    identity: &InputIdentity,
    total: u64,
    cfg: &RunConfig,
    partition_by: &[String],
) -> Option<(Mismatch, String)> {
    let was = InputIdentity::parse(&m.input_identity);
    if was.source != identity.source || was.changed_while_read {
        return Some((Mismatch::Inputs, input_change(&was, identity)));
    }
    if was.shard != identity.shard {
        let what = |s: &Option<String>| match s {
            None => "all of these inputs".to_string(),
            Some(s) => format!("shard {s} of these inputs"),
        };
        return Some((
            Mismatch::Shard,
            format!(
                "it holds {}, and this run asks for {}",
                what(&was.shard),
                what(&identity.shard)
            ),
        ));
    }
    if was.targets != identity.targets {
        let what = |t: &Option<String>| match t {
            None => "one target".to_string(),
            Some(t) => format!("targets {t}"),
        };
        return Some((
            Mismatch::Targets,
            format!(
                "it was written for {}, and this run audits {}",
                what(&was.targets),
                what(&identity.targets)
            ),
        ));
    }
    if m.pairs != total {
        return Some((
            Mismatch::Inputs,
            format!(
                "it was written from other inputs ({} pairs); these inputs have {total} pairs",
                m.pairs
            ),
        ));
    }
    if let Some(detail) = table_format_change(m, cfg) {
        return Some((Mismatch::Format, detail));
    }
    if m.format != cfg.output.format.extension() {
        return Some((
            Mismatch::Format,
            format!(
                "it holds {} files, not {}",
                m.format,
                cfg.output.format.extension()
            ),
        ));
    }
    if m.partition_by != partition_by {
        let show = |p: &[String]| {
            if p.is_empty() {
                "no partitions".to_string()
            } else {
                format!("--partition-by {}", p.join(","))
            }
        };
        return Some((
            Mismatch::Partitions,
            format!(
                "it was written with {}, and this run asks for {}",
                show(&m.partition_by),
                show(partition_by)
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::input_change;
    use crate::input::identity::InputIdentity;

    /// A refused resume names what changed; the note on how files are compared comes only with a
    /// file's content.
    #[test]
    fn a_changed_input_is_named_and_files_are_explained_only_when_one_changed() {
        let id = InputIdentity::parse;
        let flag = input_change(
            &id("discover:list-jobs=*:execution-status=*:describe=active"),
            &id("discover:list-jobs=*:execution-status=*:describe=all"),
        );
        assert_eq!(
            flag,
            "--describe (was active, now all) differs from what it was written from"
        );
        let file = input_change(
            &id("lists:things=0000000000000001:jobs=0000000000000002"),
            &id("lists:things=0000000000000001:jobs=0000000000000003"),
        );
        assert_eq!(
            file,
            "the --jobs file's content differs from what it was written from (files are compared \
             by their content, lines in order)"
        );
        let kind = input_change(&id("pairs:01"), &id("lists:things=1:jobs=2"));
        assert_eq!(
            kind,
            "it was written from a --pairs file; this run reads a --things and a --jobs list"
        );
    }
}

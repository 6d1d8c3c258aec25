//! `fleet-audit plan`: an audit into a plan file to review.

use crate::redact::redact;

use super::write_stdout;
use crate::remedy::plan::{make, summary, PlanSettings};
use crate::remedy::{planfile, PlanError};

/// `fleet-audit plan`: 0 written; 2 bad flags, an audit that cannot be read or is incomplete, an
/// `--out` that exists; 1 the plan cannot be written.
pub(super) fn plan_command(a: crate::cli::PlanArgs) -> anyhow::Result<i32> {
    let made = PlanSettings::from_args(&a).and_then(|s| {
        let (header, actions) = make(&s)?;
        let (header, bytes) = planfile::encode(header, &actions);
        planfile::write_new(&s.out, &bytes)?;
        Ok::<_, PlanError>(header)
    });
    match made {
        Ok(header) => {
            write_stdout(&summary(&header, &a.out))?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("fleet-audit plan: error: {}", redact(&e.to_string()));
            Ok(e.exit().code(0))
        }
    }
}

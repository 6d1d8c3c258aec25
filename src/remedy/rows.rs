//! The ACTIONS dataset's rows: one per action of a plan, what AWS answered to it.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use super::planfile::Action;
use crate::dataset::schema::RowBuilder;

/// The ACTIONS schema's version (in the schema's metadata, `fleet_audit_actions_version`).
pub const ACTIONS_VERSION: u32 = 1;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// AWS carried it out (or had, by an earlier attempt whose answer was lost: `recognised`).
    Applied,
    /// The execution changed since the audit (VersionConflictException): the guard working.
    VersionConflict,
    /// The execution can no longer take the action (InvalidStateTransitionException).
    InvalidState,
    /// The execution is gone (ResourceNotFoundException).
    NotFound,
    /// The call failed (throttled past the attempts, a transport error, a refusal).
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Applied,
        Outcome::VersionConflict,
        Outcome::InvalidState,
        Outcome::NotFound,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::VersionConflict => "version_conflict",
            Outcome::InvalidState => "invalid_state",
            Outcome::NotFound => "not_found",
            Outcome::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One action's row: the planned action, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRow {
    pub plan_id: Arc<str>,
    /// As the plan has it (its number `n`, target, execution, versions).
    pub planned: Action,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Calls made for it (0: recognised as done without one).
    pub attempts: u32,
    /// When its outcome was had (epoch ms).
    pub applied_at_ms: i64,
    /// Carried out by an earlier attempt whose answer (or row) was lost, recognised by describing
    /// the execution: no call was sent again.
    pub recognised: bool,
}

/// The ACTIONS schema.
pub fn schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let fields = vec![
        text("plan_id", false),
        Field::new("action_n", DataType::Int64, false),
        text("account_id", true),
        text("region", true),
        text("job_id", false),
        text("thing_name", false),
        text("action", false),
        Field::new("force", DataType::Boolean, false),
        Field::new("expected_version", DataType::Int64, false),
        Field::new("execution_number", DataType::Int64, false),
        text("outcome", false),
        text("error_code", true),
        text("error_message", true),
        Field::new("attempts", DataType::Int32, false),
        Field::new(
            "applied_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("recognised", DataType::Boolean, false),
    ];
    let meta = [(
        "fleet_audit_actions_version".to_string(),
        ACTIONS_VERSION.to_string(),
    )];
    let meta: std::collections::HashMap<String, String> = meta.into_iter().collect();
    Arc::new(Schema::new(fields).with_metadata(meta))
}

/// Action rows into batches of [`schema`].
pub struct ActionBuilder {
    schema: SchemaRef,
    len: usize,
    text: [StringBuilder; 9],
    n: Int64Builder,
    force: BooleanBuilder,
    expected: Int64Builder,
    number: Int64Builder,
    attempts: Int32Builder,
    at: TimestampMicrosecondBuilder,
    recognised: BooleanBuilder,
}

impl Default for ActionBuilder {
    fn default() -> Self {
        ActionBuilder {
            schema: schema(),
            len: 0,
            text: Default::default(),
            n: Int64Builder::new(),
            force: BooleanBuilder::new(),
            expected: Int64Builder::new(),
            number: Int64Builder::new(),
            attempts: Int32Builder::new(),
            at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            recognised: BooleanBuilder::new(),
        }
    }
}

impl RowBuilder for ActionBuilder {
    type Row = ActionRow;

    fn push_row(&mut self, r: &ActionRow) {
        self.len += 1;
        let a = &r.planned;
        let [plan, account, region, job, thing, action, outcome, code, message] = &mut self.text;
        plan.append_value(&r.plan_id);
        account.append_option(a.account_id.as_deref());
        region.append_option(a.region.as_deref());
        job.append_value(&a.job_id);
        thing.append_value(&a.thing_name);
        action.append_value(&a.action);
        outcome.append_value(r.outcome.as_str());
        code.append_option(r.error_code.as_deref());
        message.append_option(r.error_message.as_deref());
        self.n.append_value(a.n as i64);
        self.force.append_value(a.force);
        self.expected.append_value(a.expected_version);
        self.number.append_value(a.execution_number);
        self.attempts
            .append_value(i32::try_from(r.attempts).unwrap_or(i32::MAX));
        self.at.append_value(r.applied_at_ms.saturating_mul(1000));
        self.recognised.append_value(r.recognised);
    }

    fn is_error(row: &ActionRow) -> bool {
        row.outcome == Outcome::Error
    }

    fn rows(&self) -> usize {
        self.len
    }

    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        let [plan, account, region, job, thing, action, outcome, code, message] = &mut self.text;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(plan.finish()),
            Arc::new(self.n.finish()),
            Arc::new(account.finish()),
            Arc::new(region.finish()),
            Arc::new(job.finish()),
            Arc::new(thing.finish()),
            Arc::new(action.finish()),
            Arc::new(self.force.finish()),
            Arc::new(self.expected.finish()),
            Arc::new(self.number.finish()),
            Arc::new(outcome.finish()),
            Arc::new(code.finish()),
            Arc::new(message.finish()),
            Arc::new(self.attempts.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.recognised.finish()),
        ];
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }

    fn row_schema(&self) -> &SchemaRef {
        &self.schema
    }
}

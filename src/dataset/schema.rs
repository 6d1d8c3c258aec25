//! The dataset's one Arrow schema, the row type, and the row -> RecordBatch builder.
//!
//! The schema is a contract with every reader (DuckDB, Athena, Spark, pandas) and is documented in
//! docs/outputs.md ("Schema"); change it here and there together. Builders are reused across batches so the hot path does
//! not allocate per column per batch.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::aws::client::{CallError, ExecutionRecord};

/// The schema version this build writes: 2 added `carried_from` (and `source = carried`), 3 made
/// timestamps microseconds (Delta Lake's unit), 4 added the diagnosis's context columns (`job_status`
/// to `queue_read`, at the end). Readers take versions 2 and 3 too (their context is null).
pub(crate) const SCHEMA_VERSION: u32 = 4;

/// The columns schema version 4 added, at the end: a dataset of an earlier version lacks them, and
/// its readers read them as null.
pub(crate) const CONTEXT_COLUMNS: [&str; 10] = [
    "job_status",
    "job_in_progress_timeout_minutes",
    "thing_type",
    "thing_attributes",
    "thing_groups",
    "connected",
    "connectivity_at",
    "disconnect_reason",
    "blocked_by",
    "queue_read",
];

/// Rows per RecordBatch, written or read: large enough to be fast, small enough to bound memory.
pub const BATCH_ROWS: usize = 8192;

/// The final outcome of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    NotFound,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::Error => "error",
        }
    }
}

/// Which API a row's execution fields came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// DescribeJobExecution: every field.
    Describe,
    /// A list summary (ListJobExecutionsForJob/ForThing): status, timestamps, execution number and
    /// retry attempt; the other execution fields are null.
    List,
    /// The baseline's row (`run --baseline`), carried because the listing showed the execution
    /// unchanged since: `carried_from` names the run it was read in.
    Carried,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Describe => "describe",
            Source::List => "list",
            Source::Carried => "carried",
        }
    }

    /// The value as written, parsed back.
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "describe" => Some(Source::Describe),
            "list" => Some(Source::List),
            "carried" => Some(Source::Carried),
            _ => None,
        }
    }
}

/// One output row: one pair asked for and what the service finally said about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub thing_name: String,
    pub job_id: String,
    pub requested_execution_number: Option<i64>,
    pub outcome: Outcome,
    /// The last error, for `not_found` and `error` rows.
    pub error: Option<CallError>,
    pub attempts: i32,
    pub fetched_at_ms: i64,
    pub execution: Option<ExecutionRecord>,
    pub source: Source,
    /// `retryAttempt` from a list summary; null when the row was only described.
    pub retry_attempt: Option<i32>,
    /// The account and region the row was read from, in a run over several targets; `None`: the
    /// writer's own region and no account id.
    pub origin: Option<Arc<Origin>>,
    /// The run a carried row was read in (`source = carried`); `None` otherwise.
    pub carried_from: Option<Arc<str>>,
    /// What the run learnt of the row's job, thing and thing's queue (`--context`).
    pub context: Context,
}

/// A row's context: its job (DescribeJob), its thing (fleet indexing) and what holds up its queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub job: Option<Arc<JobContext>>,
    pub thing: Option<ThingContext>,
    /// The job of the thing's IN_PROGRESS execution that a QUEUED one waits behind.
    pub blocked_by: Option<Arc<str>>,
    /// Whether the thing's queue was read for this row (a QUEUED row past the run's
    /// `--queued-after` on a thing not offline): `blocked_by` null means nothing ahead only then.
    pub queue_read: bool,
}

/// The context types, defined with the calls that fetch them.
pub use crate::aws::client::{JobContext, ThingContext, ThingShape};

/// Where a row was read from (one target of a run), defined with the targets.
pub use crate::aws::targets::Origin;

/// Epoch milliseconds (the rows' unit) as the columns' microseconds; `None` for a time no
/// microsecond timestamp holds (an answer's, some 290,000 years away: written as null, never a
/// wrapped value).
fn micros(ms: i64) -> Option<i64> {
    ms.checked_mul(1000)
}

/// Timestamps are microseconds (schema version 3), as Delta Lake readers need them; version 2 wrote
/// milliseconds, and the readers take both.
fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn map_field_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

/// The dataset schema, column by column as docs/outputs.md documents it.
pub fn schema() -> SchemaRef {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("account_id", DataType::Utf8, true),
        Field::new("job_id", DataType::Utf8, false),
        Field::new("thing_name", DataType::Utf8, false),
        Field::new("requested_execution_number", DataType::Int64, true),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error_code", DataType::Utf8, true),
        Field::new("error_message", DataType::Utf8, true),
        Field::new("attempts", DataType::Int32, false),
        Field::new("fetched_at", ts(), false),
        Field::new("status", DataType::Utf8, true),
        Field::new("force_canceled", DataType::Boolean, true),
        Field::new(
            "status_details",
            DataType::Map(Arc::new(entries.clone()), false),
            true,
        ),
        Field::new("thing_arn", DataType::Utf8, true),
        Field::new("queued_at", ts(), true),
        Field::new("started_at", ts(), true),
        Field::new("last_updated_at", ts(), true),
        Field::new("execution_number", DataType::Int64, true),
        Field::new("version_number", DataType::Int64, true),
        Field::new(
            "approximate_seconds_before_timed_out",
            DataType::Int64,
            true,
        ),
        Field::new("source", DataType::Utf8, false),
        Field::new("retry_attempt", DataType::Int32, true),
        Field::new("carried_from", DataType::Utf8, true),
        Field::new("job_status", DataType::Utf8, true),
        Field::new("job_in_progress_timeout_minutes", DataType::Int64, true),
        Field::new("thing_type", DataType::Utf8, true),
        Field::new(
            "thing_attributes",
            DataType::Map(Arc::new(entries.clone()), false),
            true,
        ),
        Field::new(
            "thing_groups",
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
        Field::new("connected", DataType::Boolean, true),
        Field::new("connectivity_at", ts(), true),
        Field::new("disconnect_reason", DataType::Utf8, true),
        Field::new("blocked_by", DataType::Utf8, true),
        Field::new("queue_read", DataType::Boolean, true),
    ]))
}

/// Accumulates rows and emits RecordBatches of the dataset schema.
pub struct BatchBuilder {
    schema: SchemaRef,
    run_id: String,
    region: Option<String>,
    len: usize,
    run_id_b: StringBuilder,
    region_b: StringBuilder,
    account_id: StringBuilder,
    job_id: StringBuilder,
    thing_name: StringBuilder,
    requested_execution_number: Int64Builder,
    outcome: StringBuilder,
    error_code: StringBuilder,
    error_message: StringBuilder,
    attempts: Int32Builder,
    fetched_at: TimestampMicrosecondBuilder,
    status: StringBuilder,
    force_canceled: BooleanBuilder,
    status_details: MapBuilder<StringBuilder, StringBuilder>,
    thing_arn: StringBuilder,
    queued_at: TimestampMicrosecondBuilder,
    started_at: TimestampMicrosecondBuilder,
    last_updated_at: TimestampMicrosecondBuilder,
    execution_number: Int64Builder,
    version_number: Int64Builder,
    approximate_seconds_before_timed_out: Int64Builder,
    source: StringBuilder,
    retry_attempt: Int32Builder,
    carried_from: StringBuilder,
    context: ContextBuilder,
}

/// The context columns' builders.
struct ContextBuilder {
    job_status: StringBuilder,
    job_timeout: Int64Builder,
    thing_type: StringBuilder,
    attributes: MapBuilder<StringBuilder, StringBuilder>,
    groups: ListBuilder<StringBuilder>,
    connected: BooleanBuilder,
    connectivity_at: TimestampMicrosecondBuilder,
    disconnect_reason: StringBuilder,
    blocked_by: StringBuilder,
    queue_read: BooleanBuilder,
}

impl ContextBuilder {
    fn new() -> Self {
        ContextBuilder {
            job_status: StringBuilder::new(),
            job_timeout: Int64Builder::new(),
            thing_type: StringBuilder::new(),
            attributes: MapBuilder::new(
                Some(map_field_names()),
                StringBuilder::new(),
                StringBuilder::new(),
            ),
            groups: ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
                "element",
                DataType::Utf8,
                true,
            ))),
            connected: BooleanBuilder::new(),
            connectivity_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            disconnect_reason: StringBuilder::new(),
            blocked_by: StringBuilder::new(),
            queue_read: BooleanBuilder::new(),
        }
    }

    fn push(&mut self, c: &Context) {
        let job = c.job.as_deref();
        self.job_status
            .append_option(job.and_then(|j| j.status.as_deref()));
        self.job_timeout
            .append_option(job.and_then(|j| j.in_progress_timeout_minutes));
        let thing = c.thing.as_ref();
        self.thing_type
            .append_option(thing.and_then(|t| t.shape.thing_type.as_deref()));
        match thing {
            Some(t) => {
                for (k, v) in &t.shape.attributes {
                    self.attributes.keys().append_value(k);
                    self.attributes.values().append_value(v);
                }
                self.attributes
                    .append(true)
                    .expect("keys and values together");
                for g in &t.shape.groups {
                    self.groups.values().append_value(g);
                }
                self.groups.append(true);
            }
            None => {
                self.attributes
                    .append(false)
                    .expect("keys and values together");
                self.groups.append(false);
            }
        }
        self.connected
            .append_option(thing.and_then(|t| t.connected));
        self.connectivity_at
            .append_option(thing.and_then(|t| t.connectivity_at_ms).and_then(micros));
        self.disconnect_reason
            .append_option(thing.and_then(|t| t.disconnect_reason.as_deref()));
        self.blocked_by.append_option(c.blocked_by.as_deref());
        // Null when the run asked nothing of the thing (no `--context` things).
        self.queue_read
            .append_option((c.thing.is_some() || c.queue_read).then_some(c.queue_read));
    }

    fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.job_status.finish()));
        columns.push(Arc::new(self.job_timeout.finish()));
        columns.push(Arc::new(self.thing_type.finish()));
        columns.push(Arc::new(self.attributes.finish()));
        columns.push(Arc::new(self.groups.finish()));
        columns.push(Arc::new(self.connected.finish()));
        columns.push(Arc::new(self.connectivity_at.finish()));
        columns.push(Arc::new(self.disconnect_reason.finish()));
        columns.push(Arc::new(self.blocked_by.finish()));
        columns.push(Arc::new(self.queue_read.finish()));
    }
}

/// Rows of one kind into Arrow batches: the audit's [`Row`]s ([`BatchBuilder`]) or an apply's
/// actions. A [`crate::dataset::DatasetWriter`] writes any of them the one way (parts, manifest).
pub trait RowBuilder {
    type Row;
    /// Appends one row.
    fn push_row(&mut self, row: &Self::Row);
    /// Whether the row is an `error` row (the manifest counts them).
    fn is_error(row: &Self::Row) -> bool;
    /// Rows appended since the last [`RowBuilder::finish_batch`].
    fn rows(&self) -> usize;
    /// Emits the rows appended so far as one batch.
    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError>;
    fn row_schema(&self) -> &SchemaRef;
}

impl RowBuilder for BatchBuilder {
    type Row = Row;
    fn push_row(&mut self, row: &Row) {
        self.push(row);
    }
    fn is_error(row: &Row) -> bool {
        row.outcome == Outcome::Error
    }
    fn rows(&self) -> usize {
        self.len
    }
    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        self.finish()
    }
    fn row_schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl BatchBuilder {
    /// A builder whose rows all carry `run_id`, and `region` unless a row has its own origin.
    pub fn new(run_id: &str, region: Option<&str>) -> Self {
        BatchBuilder {
            schema: schema(),
            run_id: run_id.to_string(),
            region: region.map(str::to_string),
            len: 0,
            run_id_b: StringBuilder::new(),
            region_b: StringBuilder::new(),
            account_id: StringBuilder::new(),
            job_id: StringBuilder::new(),
            thing_name: StringBuilder::new(),
            requested_execution_number: Int64Builder::new(),
            outcome: StringBuilder::new(),
            error_code: StringBuilder::new(),
            error_message: StringBuilder::new(),
            attempts: Int32Builder::new(),
            fetched_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            status: StringBuilder::new(),
            force_canceled: BooleanBuilder::new(),
            status_details: MapBuilder::new(
                Some(map_field_names()),
                StringBuilder::new(),
                StringBuilder::new(),
            ),
            thing_arn: StringBuilder::new(),
            queued_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            started_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            last_updated_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            execution_number: Int64Builder::new(),
            version_number: Int64Builder::new(),
            approximate_seconds_before_timed_out: Int64Builder::new(),
            source: StringBuilder::new(),
            retry_attempt: Int32Builder::new(),
            carried_from: StringBuilder::new(),
            context: ContextBuilder::new(),
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one row.
    pub fn push(&mut self, row: &Row) {
        self.len += 1;
        self.run_id_b.append_value(&self.run_id);
        match &row.origin {
            Some(o) => {
                self.region_b.append_option(o.region.as_deref());
                self.account_id.append_option(o.account_id.as_deref());
            }
            None => {
                self.region_b.append_option(self.region.as_deref());
                self.account_id.append_null();
            }
        }
        self.job_id.append_value(&row.job_id);
        self.thing_name.append_value(&row.thing_name);
        self.requested_execution_number
            .append_option(row.requested_execution_number);
        self.outcome.append_value(row.outcome.as_str());
        match &row.error {
            Some(e) => {
                self.error_code.append_value(e.code());
                self.error_message.append_value(e.message());
            }
            None => {
                self.error_code.append_null();
                self.error_message.append_null();
            }
        }
        self.attempts.append_value(row.attempts);
        // The run's own clock: always a time of now.
        self.fetched_at
            .append_value(micros(row.fetched_at_ms).unwrap_or(i64::MAX));
        let e = row.execution.as_ref();
        self.status
            .append_option(e.and_then(|e| e.status.as_deref()));
        self.force_canceled
            .append_option(e.and_then(|e| e.force_canceled));
        match e.and_then(|e| e.status_details.as_ref()) {
            Some(details) => {
                for (k, v) in details {
                    self.status_details.keys().append_value(k);
                    self.status_details.values().append_value(v);
                }
                self.status_details
                    .append(true)
                    .expect("keys and values appended together");
            }
            None => self
                .status_details
                .append(false)
                .expect("keys and values appended together"),
        }
        self.thing_arn
            .append_option(e.and_then(|e| e.thing_arn.as_deref()));
        self.queued_at
            .append_option(e.and_then(|e| e.queued_at_ms).and_then(micros));
        self.started_at
            .append_option(e.and_then(|e| e.started_at_ms).and_then(micros));
        self.last_updated_at
            .append_option(e.and_then(|e| e.last_updated_at_ms).and_then(micros));
        self.execution_number
            .append_option(e.and_then(|e| e.execution_number));
        self.version_number
            .append_option(e.and_then(|e| e.version_number));
        self.approximate_seconds_before_timed_out
            .append_option(e.and_then(|e| e.approximate_seconds_before_timed_out));
        self.source.append_value(row.source.as_str());
        self.retry_attempt.append_option(row.retry_attempt);
        self.carried_from.append_option(row.carried_from.as_deref());
        self.context.push(&row.context);
    }

    /// Emits the rows appended so far as one batch and resets the builders (keeping their capacity).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.run_id_b.finish()),
            Arc::new(self.region_b.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.job_id.finish()),
            Arc::new(self.thing_name.finish()),
            Arc::new(self.requested_execution_number.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.error_code.finish()),
            Arc::new(self.error_message.finish()),
            Arc::new(self.attempts.finish()),
            Arc::new(self.fetched_at.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.force_canceled.finish()),
            Arc::new(self.status_details.finish()),
            Arc::new(self.thing_arn.finish()),
            Arc::new(self.queued_at.finish()),
            Arc::new(self.started_at.finish()),
            Arc::new(self.last_updated_at.finish()),
            Arc::new(self.execution_number.finish()),
            Arc::new(self.version_number.finish()),
            Arc::new(self.approximate_seconds_before_timed_out.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.retry_attempt.finish()),
            Arc::new(self.carried_from.finish()),
        ];
        self.context.finish(&mut columns);
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn rows_become_a_batch_of_the_schema() {
        let mut b = BatchBuilder::new("run-1", Some("us-east-1"));
        b.push(&Row {
            thing_name: "t1".into(),
            job_id: "j1".into(),
            requested_execution_number: None,
            outcome: Outcome::Ok,
            error: None,
            attempts: 1,
            fetched_at_ms: 1_000,
            execution: Some(ExecutionRecord {
                status: Some("QUEUED".into()),
                status_details: Some(vec![("a".into(), "b".into())]),
                queued_at_ms: Some(500),
                ..Default::default()
            }),
            source: Source::Describe,
            retry_attempt: None,
            origin: None,
            carried_from: None,
            context: Default::default(),
        });
        b.push(&Row {
            thing_name: "t2".into(),
            job_id: "j1".into(),
            requested_execution_number: Some(3),
            outcome: Outcome::NotFound,
            error: Some(CallError::Service {
                code: "ResourceNotFoundException".into(),
                message: "nope".into(),
                http_status: 404,
            }),
            attempts: 1,
            fetched_at_ms: 1_001,
            execution: None,
            source: Source::List,
            retry_attempt: Some(1),
            origin: Some(Arc::new(Origin {
                region: Some("eu-west-1".into()),
                account_id: Some("111122223333".into()),
            })),
            carried_from: Some("run-0".into()),
            context: Default::default(),
        });
        let batch = b.finish().unwrap();
        let text = |name: &str, i: usize| {
            let a = batch.column_by_name(name).unwrap();
            let a = a
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            a.is_valid(i).then(|| a.value(i).to_string())
        };
        assert_eq!(text("region", 0).as_deref(), Some("us-east-1"));
        assert_eq!(text("account_id", 0), None);
        assert_eq!(text("region", 1).as_deref(), Some("eu-west-1"));
        assert_eq!(text("account_id", 1).as_deref(), Some("111122223333"));
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), schema());
        assert!(b.is_empty());
        let details = batch.column_by_name("status_details").unwrap();
        assert!(details.is_valid(0));
        assert!(details.is_null(1));
        // A time no microsecond timestamp holds (a hostile answer's) is null, never a panic.
        let mut far = BatchBuilder::new("run-1", None);
        far.push(&Row {
            execution: Some(ExecutionRecord {
                queued_at_ms: Some(i64::MAX / 10),
                ..Default::default()
            }),
            thing_name: "t".into(),
            job_id: "j".into(),
            requested_execution_number: None,
            outcome: Outcome::Ok,
            error: None,
            attempts: 1,
            fetched_at_ms: 1,
            source: Source::Describe,
            retry_attempt: None,
            origin: None,
            carried_from: None,
            context: Default::default(),
        });
        let batch = far.finish().unwrap();
        assert!(batch.column_by_name("queued_at").unwrap().is_null(0));
        // Builders are reusable after finish.
        assert_eq!(b.finish().unwrap().num_rows(), 0);
    }
}

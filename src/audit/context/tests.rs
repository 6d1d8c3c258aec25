//! The stage against an index this test scripts: batching, asking each thing once, a missing index
//! said once, an index that pages without end, and every row on to the writer once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{spawn, ContextSettings, StageParts};
use crate::audit::engine::Stop;
use crate::aws::call::{Counters, EngineSettings};
use crate::aws::client::{
    CallError, ExecutionRecord, FleetContext, FleetLister, JobContext, JobCounts, ListedExecution,
    Page, ThingContext, ThingShape,
};
use crate::aws::retry::Backoff;
use crate::dataset::schema::{Outcome, Row, Source};
use crate::dataset::WriterMsg;

/// How the scripted index answers.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// A document per thing asked, connected unless its name ends in `-off`.
    Documents,
    /// ResourceNotFoundException: no index.
    Missing,
    /// The same next token forever, with no documents.
    EndlessPages,
    /// AccessDeniedException: the policy lacks iot:SearchIndex.
    Denied,
    /// An InvalidRequestException on the first call, documents after.
    FailFirst,
    /// No answer: every attempt times out.
    Stalled,
    /// No index, and the registry's second page of things fails with a 500 on every attempt.
    MissingAndListingBreaks,
    /// No index, and a registry of 260,000 things, each with a serial number of its own.
    MissingSerials,
}

struct Scripted {
    answer: Answer,
    searches: AtomicU64,
    describe_jobs: AtomicU64,
    queue_reads: AtomicU64,
    registry_reads: AtomicU64,
    asked: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Scripted {
            answer,
            searches: AtomicU64::new(0),
            describe_jobs: AtomicU64::new(0),
            queue_reads: AtomicU64::new(0),
            registry_reads: AtomicU64::new(0),
            asked: Mutex::new(Vec::new()),
        })
    }
}

impl FleetContext for Scripted {
    async fn search_things(
        &self,
        query: &str,
        _next_token: Option<String>,
    ) -> Result<Page<(String, ThingContext)>, CallError> {
        let n = self.searches.fetch_add(1, Ordering::Relaxed);
        let names: Vec<String> = query
            .split(" OR ")
            .map(|t| t.trim_start_matches("thingName:").to_string())
            .collect();
        self.asked.lock().unwrap().extend(names.iter().cloned());
        let refused = |code: &str, http_status| {
            Err(CallError::Service {
                code: code.into(),
                message: "refused".into(),
                http_status,
            })
        };
        match self.answer {
            Answer::Denied => refused("AccessDeniedException", 403),
            Answer::FailFirst if n == 0 => refused("InvalidRequestException", 400),
            Answer::Stalled => Err(CallError::Timeout(Duration::from_secs(10))),
            Answer::Missing | Answer::MissingAndListingBreaks | Answer::MissingSerials => {
                Err(CallError::Service {
                    code: "ResourceNotFoundException".into(),
                    message: "Index AWS_Things does not exist".into(),
                    http_status: 404,
                })
            }
            Answer::EndlessPages => Ok(Page {
                items: Vec::new(),
                next_token: Some("again".into()),
            }),
            Answer::Documents | Answer::FailFirst => Ok(Page {
                items: names
                    .into_iter()
                    .map(|n| {
                        let t = ThingContext {
                            shape: Arc::new(ThingShape {
                                thing_type: Some(format!("type-of-{n}")),
                                ..ThingShape::default()
                            }),
                            connected: Some(!n.ends_with("-off")),
                            connectivity_at_ms: Some(1),
                            disconnect_reason: None,
                        };
                        (n, t)
                    })
                    .collect(),
                next_token: None,
            }),
        }
    }

    async fn list_things(
        &self,
        next_token: Option<String>,
    ) -> Result<Page<(String, ThingShape)>, CallError> {
        self.registry_reads.fetch_add(1, Ordering::Relaxed);
        if self.answer == Answer::MissingAndListingBreaks && next_token.is_some() {
            return Err(CallError::Service {
                code: "InternalFailureException".into(),
                message: "broken".into(),
                http_status: 500,
            });
        }
        if self.answer == Answer::MissingSerials {
            let start: usize = next_token.map_or(0, |t| t.parse().unwrap());
            let end = (start + 250).min(260_000);
            let items = (start..end)
                .map(|n| {
                    let shape = ThingShape {
                        attributes: vec![("serial".into(), format!("SN-{n}"))],
                        ..ThingShape::default()
                    };
                    (format!("t{n}"), shape)
                })
                .collect();
            return Ok(Page {
                items,
                next_token: (end < 260_000).then(|| end.to_string()),
            });
        }
        let things: Vec<(String, ThingShape)> = (0..REGISTERED)
            .map(|n| {
                let shape = ThingShape {
                    thing_type: Some(format!("reg-{}", n % 3)),
                    ..ThingShape::default()
                };
                (format!("t{n}"), shape)
            })
            .collect();
        Ok(page_of(&things, next_token))
    }
    async fn list_thing_groups(&self, t: Option<String>) -> Result<Page<String>, CallError> {
        self.registry_reads.fetch_add(1, Ordering::Relaxed);
        Ok(page_of(&["canary".to_string(), "all".to_string()], t))
    }
    async fn list_things_in_group(
        &self,
        group: &str,
        t: Option<String>,
    ) -> Result<Page<String>, CallError> {
        self.registry_reads.fetch_add(1, Ordering::Relaxed);
        let n = if group == "canary" { 10 } else { REGISTERED };
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        Ok(page_of(&names, t))
    }
}

/// The registry's things `t0`..`t299` (type `reg-N` for N = n % 3, in pages of 250), in group `all`, and
/// `t0`..`t9` in `canary` too.
const REGISTERED: usize = 300;

/// Page `token` (`None`: the first) of `items`, 250 a page.
fn page_of<T: Clone>(items: &[T], token: Option<String>) -> Page<T> {
    let start: usize = token.map_or(0, |t| t.parse().unwrap());
    let end = (start + 250).min(items.len());
    Page {
        items: items[start..end].to_vec(),
        next_token: (end < items.len()).then(|| end.to_string()),
    }
}

impl FleetLister for Scripted {
    /// The rows' job and `blocker`.
    async fn list_jobs(
        &self,
        _: Option<&str>,
        _: Option<String>,
    ) -> Result<Page<String>, CallError> {
        Ok(Page {
            items: vec!["job-a".into(), "blocker".into()],
            next_token: None,
        })
    }
    async fn describe_job(&self, job_id: &str) -> Result<JobCounts, CallError> {
        self.describe_jobs.fetch_add(1, Ordering::Relaxed);
        let status = if job_id == "done" {
            "COMPLETED"
        } else {
            "IN_PROGRESS"
        };
        Ok(JobCounts {
            context: JobContext {
                status: Some(status.into()),
                in_progress_timeout_minutes: None,
            },
            ..JobCounts::default()
        })
    }
    /// `blocker` is IN_PROGRESS on the things named `t-...`; no other job is on any.
    async fn list_for_job(
        &self,
        job: &str,
        status: Option<&str>,
        _: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        self.queue_reads.fetch_add(1, Ordering::Relaxed);
        assert_eq!(status, Some("IN_PROGRESS"));
        let things: &[&str] = if job == "blocker" {
            &["t-on", "t-off", "t-on2"]
        } else {
            &[]
        };
        Ok(Page {
            items: things
                .iter()
                .map(|t| ListedExecution {
                    thing_name: t.to_string(),
                    job_id: job.into(),
                    thing_arn: None,
                    summary: Default::default(),
                })
                .collect(),
            next_token: None,
        })
    }
    async fn list_for_thing(
        &self,
        _: &str,
        _: Option<&str>,
        _: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        unreachable!("a thing's queue is read from the account's IN_PROGRESS executions")
    }
}

const DAY: i64 = 86_400_000;

fn row(thing: &str, job: &str, status: &str) -> Row {
    Row {
        thing_name: thing.into(),
        job_id: job.into(),
        requested_execution_number: None,
        outcome: Outcome::Ok,
        error: None,
        attempts: 1,
        fetched_at_ms: 10 * DAY,
        execution: Some(ExecutionRecord {
            status: Some(status.into()),
            queued_at_ms: Some(DAY),
            ..Default::default()
        }),
        source: Source::Describe,
        retry_attempt: None,
        origin: None,
        carried_from: None,
        context: Default::default(),
    }
}

/// Sends `rows` through a stage over `client`; the rows as the writer got them, by ordinal.
async fn through(client: Arc<Scripted>, rows: Vec<Row>) -> HashMap<u64, Box<Row>> {
    let (out_tx, mut out_rx) = mpsc::channel(100_000);
    let (_stop, shutdown) = watch::channel(false);
    let parts = StageParts {
        settings: ContextSettings {
            jobs: true,
            things: true,
            rps: None,
            queued_after_ms: DAY,
        },
        engine: EngineSettings {
            concurrency: 4,
            max_attempts: 2,
            call_timeout: Duration::from_secs(5),
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(2),
            },
        },
        counters: Arc::new(Counters::default()),
        shutdown,
        label: String::new(),
    };
    let (tx, stage) = spawn(client, parts, out_tx);
    for (ordinal, row) in rows.into_iter().enumerate() {
        tx.send(WriterMsg::Row {
            row: Box::new(row),
            ordinal: ordinal as u64,
        })
        .await
        .unwrap();
    }
    drop(tx);
    stage.expect("a stage").await.unwrap().unwrap();
    let mut got = HashMap::new();
    while let Some(WriterMsg::Row { row, ordinal }) = out_rx.recv().await {
        assert!(
            got.insert(ordinal, row).is_none(),
            "ordinal {ordinal} twice"
        );
    }
    got
}

#[tokio::test]
async fn each_thing_is_asked_once_in_batches_of_100_and_each_row_gets_its_own() {
    let client = Scripted::new(Answer::Documents);
    // 250 things x 2 jobs, the second job's rows after all the first's.
    let rows: Vec<Row> = ["job-a", "done"]
        .iter()
        .flat_map(|j| (0..250).map(move |i| row(&format!("t{i}"), j, "SUCCEEDED")))
        .collect();
    let got = through(client.clone(), rows).await;
    assert_eq!(got.len(), 500);
    assert_eq!(
        client.searches.load(Ordering::Relaxed),
        3,
        "250 things, 100 a call"
    );
    assert_eq!(
        client.describe_jobs.load(Ordering::Relaxed),
        2,
        "once a job"
    );
    let mut asked = client.asked.lock().unwrap().clone();
    asked.sort();
    asked.dedup();
    assert_eq!(asked.len(), 250);
    assert_eq!(
        client.registry_reads.load(Ordering::Relaxed),
        0,
        "an index that answers"
    );
    for r in got.values() {
        let t = r.context.thing.as_ref().expect("a document");
        assert_eq!(
            t.shape.thing_type.as_deref(),
            Some(&*format!("type-of-{}", r.thing_name))
        );
        let job = r.context.job.as_ref().unwrap();
        assert_eq!(
            job.status.as_deref() == Some("COMPLETED"),
            r.job_id == "done"
        );
    }
}

#[tokio::test]
async fn a_stuck_queued_row_on_a_thing_not_offline_names_what_blocks_it() {
    let client = Scripted::new(Answer::Documents);
    let rows = vec![
        row("t-on", "job-a", "QUEUED"),
        row("t-off", "job-a", "QUEUED"),
        row("t-on", "job-b", "QUEUED"),
        row("t-on2", "job-a", "SUCCEEDED"),
    ];
    let got = through(client.clone(), rows).await;
    assert_eq!(got[&0].context.blocked_by.as_deref(), Some("blocker"));
    assert_eq!(
        got[&1].context.blocked_by, None,
        "offline: no queue is read for it"
    );
    assert_eq!(got[&2].context.blocked_by.as_deref(), Some("blocker"));
    assert_eq!(got[&3].context.blocked_by, None);
    assert_eq!(
        client.queue_reads.load(Ordering::Relaxed),
        2,
        "the account's IN_PROGRESS executions read once: a page for each of its two jobs"
    );
}

#[tokio::test]
async fn a_missing_index_is_asked_once_and_the_things_come_from_the_registry() {
    let client = Scripted::new(Answer::Missing);
    let rows: Vec<Row> = (0..300)
        .map(|i| row(&format!("t{i}"), "job-a", "QUEUED"))
        .collect();
    let got = through(client.clone(), rows).await;
    assert_eq!(got.len(), 300);
    assert_eq!(client.searches.load(Ordering::Relaxed), 1);
    assert_from_the_registry(&client, &got);
}

/// Every row has its thing's type and groups from the registry, its connectivity unknown, and
/// the registry was read once: 2 pages of things, 1 of groups, 2 + 1 of their members.
fn assert_from_the_registry(client: &Scripted, got: &HashMap<u64, Box<Row>>) {
    assert_eq!(client.registry_reads.load(Ordering::Relaxed), 6);
    for r in got.values() {
        let t = r.context.thing.as_ref().expect("the registry's");
        let n: usize = r.thing_name[1..].parse().unwrap();
        assert_eq!(t.shape.thing_type, Some(format!("reg-{}", n % 3)));
        let want: &[&str] = if n < 10 { &["all", "canary"] } else { &["all"] };
        assert_eq!(t.shape.groups, want, "{}", r.thing_name);
        assert_eq!(t.connected, None);
        assert!(r.context.job.is_some());
    }
}

#[tokio::test]
async fn a_registry_listing_that_breaks_off_keeps_the_things_it_listed() {
    let client = Scripted::new(Answer::MissingAndListingBreaks);
    let rows: Vec<Row> = (0..REGISTERED)
        .map(|i| row(&format!("t{i}"), "job-a", "SUCCEEDED"))
        .collect();
    let got = through(client.clone(), rows).await;
    assert_eq!(got.len(), REGISTERED);
    for r in got.values() {
        let n: usize = r.thing_name[1..].parse().unwrap();
        match &r.context.thing {
            // The first page (250 things) was read, with the groups of its things.
            Some(t) => {
                assert!(n < 250, "{}", r.thing_name);
                assert_eq!(t.shape.thing_type, Some(format!("reg-{}", n % 3)));
                let want: &[&str] = if n < 10 { &["all", "canary"] } else { &["all"] };
                assert_eq!(t.shape.groups, want, "{}", r.thing_name);
            }
            None => assert!(n >= 250, "{} lost", r.thing_name),
        }
    }
}

#[tokio::test]
async fn a_registry_of_things_each_its_own_shape_is_read_only_so_far() {
    use super::registry::MAX_SHAPES;
    let client = Scripted::new(Answer::MissingSerials);
    let rows = vec![
        row("t5", "job-a", "SUCCEEDED"),
        row("t250000", "job-a", "SUCCEEDED"),
    ];
    let got = through(client.clone(), rows).await;
    let serial = |r: &Row| r.context.thing.as_ref().map(|t| t.shape.attributes.clone());
    assert_eq!(
        serial(&got[&0]),
        Some(vec![("serial".into(), "SN-5".into())])
    );
    assert_eq!(serial(&got[&1]), None, "listed past the bound: not read");
    // The things' pages up to the bound, then the groups' listings (1 + 2 + 1).
    assert_eq!(
        client.registry_reads.load(Ordering::Relaxed) as usize,
        MAX_SHAPES / 250 + 4
    );
}

#[tokio::test]
async fn an_index_that_pages_without_end_is_left_after_a_few_pages() {
    let client = Scripted::new(Answer::EndlessPages);
    let got = through(client.clone(), vec![row("t1", "job-a", "SUCCEEDED")]).await;
    assert_eq!(got.len(), 1);
    assert!(
        client.searches.load(Ordering::Relaxed) <= 2,
        "a token seen twice ends it"
    );
}

#[tokio::test]
async fn a_search_index_not_permitted_is_left_out_and_the_things_come_from_the_registry() {
    let client = Scripted::new(Answer::Denied);
    let rows: Vec<Row> = (0..300)
        .map(|i| row(&format!("t{i}"), "job-a", "QUEUED"))
        .collect();
    let got = through(client.clone(), rows).await;
    assert_eq!(got.len(), 300);
    assert_eq!(
        client.searches.load(Ordering::Relaxed),
        1,
        "asked once, then no more"
    );
    assert_from_the_registry(&client, &got);
}

#[tokio::test]
async fn one_failed_query_leaves_the_index_on_for_the_next_things() {
    let client = Scripted::new(Answer::FailFirst);
    let rows: Vec<Row> = (0..300)
        .map(|i| row(&format!("t{i}"), "job-a", "SUCCEEDED"))
        .collect();
    let got = through(client.clone(), rows).await;
    let with = got.values().filter(|r| r.context.thing.is_some()).count();
    assert_eq!(
        with, 200,
        "the first batch of 100 failed, the next two answered"
    );
    assert_eq!(client.searches.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn an_index_that_stops_answering_is_asked_no_more_after_three_calls_in_a_row() {
    let client = Scripted::new(Answer::Stalled);
    let rows: Vec<Row> = (0..1000)
        .map(|i| row(&format!("t{i}"), "job-a", "SUCCEEDED"))
        .collect();
    let got = through(client.clone(), rows).await;
    assert_eq!(got.len(), 1000, "every row still goes on");
    // From the third failed batch on, things come from the registry (which lists t0..t299); the
    // two batches that failed before went on without, as any failed call's rows do.
    for r in got.values() {
        let n: usize = r.thing_name[1..].parse().unwrap();
        assert_eq!(
            r.context.thing.is_some(),
            (200..REGISTERED).contains(&n),
            "{}",
            r.thing_name
        );
    }
    assert!(got.values().all(|r| r
        .context
        .thing
        .as_ref()
        .is_none_or(|t| t.connected.is_none())));
    assert_eq!(
        client.searches.load(Ordering::Relaxed),
        6,
        "three calls of two attempts each, then none for the other 7 batches"
    );
}

#[tokio::test]
async fn the_stage_says_why_an_audit_stopped_on_it() {
    let fatal = async { Err(Stop::Interrupted) };
    let stage = tokio::spawn(fatal);
    let end = super::join(Err(Stop::WriterGone), Some(stage)).await;
    assert!(matches!(end, Err(Stop::Interrupted)), "{end:?}");
    let ok = tokio::spawn(async { Ok(()) });
    assert!(matches!(
        super::join(Err(Stop::WriterGone), Some(ok)).await,
        Err(Stop::WriterGone)
    ));
}

#[test]
fn the_plan_line_states_the_context_calls_and_their_time() {
    let all = ContextSettings {
        jobs: true,
        things: true,
        rps: Some(10.0),
        queued_after_ms: DAY,
    };
    let line = all.plan_line(Some(2), 2_050, false).unwrap();
    assert!(
        line.starts_with(
            "context: 2 DescribeJob and about 21 SearchIndex calls (2s at 10 calls/s an API, \
             beside the audit's); the account's IN_PROGRESS executions"
        ),
        "{line}"
    );
    let by_thing = all.plan_line(None, 100, true).unwrap();
    assert!(
        by_thing.starts_with("context: a DescribeJob per job and at most 1 SearchIndex calls"),
        "{by_thing}"
    );
    let jobs = ContextSettings {
        things: false,
        ..all.clone()
    };
    assert_eq!(
        jobs.plan_line(Some(3), 9, false).as_deref(),
        Some("context: 3 DescribeJob calls (0s at 10 calls/s an API, beside the audit's)")
    );
    assert_eq!(ContextSettings::none().plan_line(Some(3), 9, false), None);
}

//! The listing of a discovery: each job's executions (or each thing's), page by page; each summary
//! becomes a list row, or describe work for the engine when it needs detail.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::audit::baseline::Baseline;
use crate::audit::config::DiscoverSpec;
use crate::audit::engine::{Stop, Work};
use crate::aws::call::Counters;
use crate::aws::client::{FleetClient, FleetLister, ListedExecution, Page};
use crate::dataset::schema::Origin;
use crate::dataset::WriterMsg;
use crate::input::pair::{pair_key, Pair};
use crate::input::InputError;
use crate::time::now_ms;

use super::{list_row, Ctx};

/// What one listing walks: a job's executions, or a thing's.
pub(super) enum Unit {
    Job(String),
    Thing(String),
}

/// One listing's state: where rows and describe work go, what an earlier run committed, and the next
/// ordinal.
pub(super) struct Lister<C> {
    pub ctx: Arc<Ctx<C>>,
    pub spec: DiscoverSpec,
    pub origin: Arc<Origin>,
    pub rows: mpsc::Sender<WriterMsg>,
    pub work: mpsc::Sender<Result<Work, InputError>>,
    /// Pairs already committed (a resume): listed again, not written again.
    pub committed: HashSet<u128>,
    pub next_ordinal: u64,
    /// Executions listed, committed ones included.
    pub listed: u64,
    /// The previous audit whose rows of unchanged executions are carried.
    pub baseline: Option<Arc<Baseline>>,
}

impl<C: FleetClient + FleetLister> Lister<C> {
    /// Lists every unit; returns how it ended. Dropping the lister closes the engine's work.
    pub async fn run(&mut self, units: super::Units) -> Result<(), Stop> {
        for unit in units {
            self.list_unit(&unit?).await?;
        }
        Ok(())
    }

    /// Every page of one job's (or thing's) executions.
    async fn list_unit(&mut self, unit: &Unit) -> Result<(), Stop> {
        let ctx = self.ctx.clone();
        let status = self.spec.execution_status.clone();
        let (limiter, what) = match unit {
            Unit::Job(j) => (&ctx.limits.for_job, format!("ListJobExecutionsForJob {j}")),
            Unit::Thing(t) => (
                &ctx.limits.for_thing,
                format!("ListJobExecutionsForThing {t}"),
            ),
        };
        let mut token = None;
        loop {
            let page = ctx
                .call(limiter, &what, || {
                    let (ctx, status, token) = (&ctx, status.as_deref(), token.clone());
                    async move {
                        match unit {
                            Unit::Job(j) => ctx.client.list_for_job(j, status, token).await,
                            Unit::Thing(t) => ctx.client.list_for_thing(t, status, token).await,
                        }
                    }
                })
                .await?;
            let Some(page) = page else { break };
            token = page.next_token.clone();
            let items = self.number(page);
            self.dispatch(items).await?;
            if token.is_none() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The page's executions not committed yet, each with its ordinal.
    fn number(&mut self, page: Page<ListedExecution>) -> Vec<(u64, ListedExecution)> {
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            self.listed += 1;
            if self
                .committed
                .contains(&pair_key(&item.thing_name, &item.job_id))
            {
                continue;
            }
            out.push((self.next_ordinal, item));
            self.next_ordinal += 1;
        }
        out
    }

    /// Sends one page's items: the baseline's rows of unchanged executions, describes to the engine,
    /// the rest as list rows.
    async fn dispatch(&self, items: Vec<(u64, ListedExecution)>) -> Result<(), Stop> {
        let counters: &Counters = &self.ctx.counters;
        let listed_at = now_ms();
        for (ordinal, item) in items {
            let wants = self.spec.describe.wants(item.summary.status.as_deref());
            let carried = self.baseline.as_ref().and_then(|b| {
                let row = b.get(&self.origin, &item.thing_name, &item.job_id)?;
                // A row is carried when it is as detailed as this run wants it.
                (row.unchanged(&item.summary) && (row.described() || !wants))
                    .then(|| row.carry(listed_at, self.origin.clone()))
            });
            if let Some(row) = carried {
                self.rows
                    .send(WriterMsg::Row {
                        row: Box::new(row),
                        ordinal,
                    })
                    .await
                    .map_err(|_| Stop::WriterGone)?;
                counters.carried.fetch_add(1, Ordering::Relaxed);
                counters
                    .describes_saved
                    .fetch_add(u64::from(wants), Ordering::Relaxed);
                counters.ok.fetch_add(1, Ordering::Relaxed);
                counters.done.fetch_add(1, Ordering::Relaxed);
            } else if wants {
                let w = Work {
                    ordinal,
                    pair: Pair {
                        thing_name: item.thing_name,
                        job_id: item.job_id,
                        execution_number: None,
                    },
                    retry_attempt: item.summary.retry_attempt,
                };
                self.work.send(Ok(w)).await.map_err(|_| Stop::EngineGone)?;
            } else {
                let mut row = Box::new(list_row(&item, 1));
                row.origin = Some(self.origin.clone());
                self.rows
                    .send(WriterMsg::Row { row, ordinal })
                    .await
                    .map_err(|_| Stop::WriterGone)?;
                counters.ok.fetch_add(1, Ordering::Relaxed);
                counters.done.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

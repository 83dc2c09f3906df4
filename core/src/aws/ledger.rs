//! The job ledger on DynamoDB: [`DynamoLedger`], a [`LedgerPort`] with the semantics of
//! [`crate::ledger::memory::MemoryLedger`] (a row counted once, its first outcome standing, a
//! completion claimed once).
//!
//! # Items
//!
//! One table, partition key `job` (S: the [`JobKey`]), sort key `item` (S). A job's items:
//!
//! | `item` | attributes |
//! | --- | --- |
//! | `job` (the header) | `label`, `expected`, `rowsRead`, `completedAt`, `report` (`requested` / `written`), `reportedAt` |
//! | `count#0` .. `count#7` (counter shards) | `done`, `o_<outcome>`, `r_<reason>` (counts), `label`, `startedAt`, `updatedAt` |
//! | `row#000000000042`, `user#<user>` ([`RowRecord::item_key`]) | `row`, `user`, `outcome`, `reason`, `detail`, `at`, `deliveries`, `stage` |
//!
//! Every item carries `expiresAt` (epoch seconds, the time of its last write plus the ledger's
//! retention): the table's TTL attribute, so a job's items expire on their own.
//!
//! A job's counts are the sums over its shards. Each [`LedgerPort::record`] adds to one shard
//! chosen at random: workers recording rows of the same job at once then mostly write different
//! items, instead of all contending for one (DynamoDB cancels a transaction that meets another
//! one writing the same item with `TransactionConflict`). `startedAt` is set by a shard's first
//! write (`if_not_exists`) and `updatedAt` by its last one; the summary takes the earliest and
//! the latest over the shards, which are the first and last `at` recorded as long as each shard's
//! writes come in time order (out of order, the summary's bounds may be off by the overlap).
//!
//! # Exactly once
//!
//! [`LedgerPort::record`] writes up to [`MAX_ROWS_PER_TRANSACTION`] rows and their counts in one
//! `TransactWriteItems`: a `Put` per row, conditioned on `attribute_not_exists(item)`, and one
//! `Update` of a counter shard that `ADD`s the rows' counts. Either all of it is written or none.
//! When a row is already recorded (a duplicate delivery, another worker, an ingest retry) its
//! condition fails, the transaction is cancelled and its `CancellationReasons` say which rows
//! failed `ConditionalCheckFailed`: those are dropped (their first record stands) and the rest is
//! written again with its counts recomputed. A cancellation for contention or throughput
//! (`TransactionConflict`, `ThrottlingError`, `ProvisionedThroughputExceeded`) is retried after a
//! jittered backoff, on another shard, a few times. Each attempt has its own client request
//! token, so the SDK's own retry of an attempt that DynamoDB did apply is answered as applied.
//! The number of new rows returned is exact, except after an error of the transport that the SDK
//! gave up on: whatever DynamoDB applied is counted once, and a later record of the same rows
//! returns 0 for them.
//!
//! # Cost (on-demand write request units)
//!
//! A transactional write costs 2 write units per item written, per KB of the item (rounded up);
//! row items stay under 1 KB (the detail is bounded by [`RowRecord::bounded`]) and so do
//! shards. A transaction of k new rows costs 2 k + 2 units: 2.02 per row for k = 99 (the ingest's
//! rejects, a big batch), 2.2 for k = 10 (a worker batch of 10 users), 4 for a single row. A
//! transaction cancelled for duplicate rows is charged as well (about as much again), and the
//! retry without them costs 2 per remaining row + 2. The header costs 1 unit per write
//! (`set_expected`, `claim_completion`, `mark_reported`): three per job.
//!
//! # Reads
//!
//! [`LedgerPort::summary`] (the completion check after each record) is one consistent
//! `BatchGetItem` of the header and the shards by their keys: 9 read units (each item rounded up
//! to 4 KB), one request. So a worker batch costs two requests: the transaction and this read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, TransactWriteItem, Update,
};

use crate::ledger::{JobKey, JobSummary, LedgerError, LedgerPort, ReportState, RowRecord, Stage};

/// Counter shards per job (`count#0` .. `count#7`).
pub const SHARDS: u32 = 8;
/// Rows per transaction: DynamoDB takes 100 actions in one, and one is the counter shard.
pub const MAX_ROWS_PER_TRANSACTION: usize = 99;
/// Attempts of one transaction cancelled for contention or throughput.
const CONTENTION_ATTEMPTS: u32 = 6;
/// First backoff after a contention cancellation; doubled on each further one.
const BACKOFF_BASE_MS: u64 = 40;

/// The header's sort key.
pub const HEADER_ITEM: &str = "job";
/// Sort key prefix of the counter shards.
pub const SHARD_PREFIX: &str = "count#";
/// Sort key prefix of the rows with a row number.
pub const ROW_PREFIX: &str = "row#";
/// Sort key prefix of the rows without one (by user).
pub const USER_PREFIX: &str = "user#";
/// The table's TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expiresAt";

const JOB: &str = "job";
const ITEM: &str = "item";
const LABEL: &str = "label";
const EXPECTED: &str = "expected";
const ROWS_READ: &str = "rowsRead";
const COMPLETED_AT: &str = "completedAt";
const REPORT: &str = "report";
const REPORTED_AT: &str = "reportedAt";
const DONE: &str = "done";
const STARTED_AT: &str = "startedAt";
const UPDATED_AT: &str = "updatedAt";
const OUTCOME_PREFIX: &str = "o_";
const REASON_PREFIX: &str = "r_";
const ROW: &str = "row";
const USER: &str = "user";
const OUTCOME: &str = "outcome";
const REASON: &str = "reason";
const DETAIL: &str = "detail";
const AT: &str = "at";
const DELIVERIES: &str = "deliveries";
const STAGE: &str = "stage";

const REQUESTED: &str = "requested";
const WRITTEN: &str = "written";

type Item = HashMap<String, AttributeValue>;

/// A [`LedgerPort`] on a DynamoDB table (see the module docs).
#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// How long items live after their last write (the `expiresAt` TTL attribute).
    ttl: Duration,
    /// Items per query page; `None`: DynamoDB's own (1 MB).
    page_size: Option<i32>,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, ttl: Duration) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
            ttl,
            page_size: None,
        }
    }

    /// Items live `days` days after their last write (`LEDGER_RETENTION_DAYS`).
    pub fn with_retention_days(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        days: u32,
    ) -> Self {
        DynamoLedger::new(client, table, Duration::from_secs(u64::from(days) * 86_400))
    }

    /// Reads at most `items` items per query page (tests of the pagination).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items.max(1));
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn expires_at(&self) -> AttributeValue {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        n(now.saturating_add(self.ttl.as_secs()))
    }

    fn key(job: &JobKey, item: &str) -> Item {
        HashMap::from([
            (JOB.to_string(), s(job.as_str())),
            (ITEM.to_string(), s(item)),
        ])
    }

    fn store_error<E, R>(&self, op: &str, job: &JobKey, e: &SdkError<E, R>) -> LedgerError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let code = e
            .code()
            .unwrap_or("no AWS error code: the request did not get an answer");
        LedgerError::Store(format!(
            "{op} on table {} (job {job}) failed ({code}): {}",
            self.table,
            DisplayErrorContext(e)
        ))
    }

    fn build_error(&self, what: &str, e: impl std::fmt::Display) -> LedgerError {
        LedgerError::Store(format!(
            "cannot build the {what} request for table {}: {e}",
            self.table
        ))
    }

    /// One transaction: the rows' `Put`s (each only if its item does not exist yet) and the
    /// `Update` of one counter shard by their counts.
    fn transaction(
        &self,
        job: &JobKey,
        label: &str,
        rows: &[(String, RowRecord)],
    ) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let expires = self.expires_at();
        let mut actions = Vec::with_capacity(rows.len() + 1);
        for (key, r) in rows {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(row_item(job, key, r, expires.clone())))
                .condition_expression("attribute_not_exists(#item)")
                .expression_attribute_names("#item", ITEM)
                .build()
                .map_err(|e| self.build_error("row Put", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }

        let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, r) in rows {
            *by_outcome.entry(r.outcome.as_str()).or_default() += 1;
            if !r.reason.is_empty() {
                *by_reason.entry(r.reason.as_str()).or_default() += 1;
            }
        }
        let first = rows.iter().map(|(_, r)| r.at.as_str()).min().unwrap_or("");
        let last = rows.iter().map(|(_, r)| r.at.as_str()).max().unwrap_or("");
        let shard = format!("{SHARD_PREFIX}{}", rand::random_range(0..SHARDS));

        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(DynamoLedger::key(job, &shard)))
            .expression_attribute_names("#done", DONE)
            .expression_attribute_names("#startedAt", STARTED_AT)
            .expression_attribute_names("#updatedAt", UPDATED_AT)
            .expression_attribute_names("#expiresAt", EXPIRES_AT)
            .expression_attribute_values(":n", n(rows.len() as u64))
            .expression_attribute_values(":first", s(first))
            .expression_attribute_values(":last", s(last))
            .expression_attribute_values(":exp", expires);
        let mut adds = vec!["#done :n".to_string()];
        for (i, (outcome, count)) in by_outcome.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#o{i}"), format!("{OUTCOME_PREFIX}{outcome}"))
                .expression_attribute_values(format!(":o{i}"), n(*count));
            adds.push(format!("#o{i} :o{i}"));
        }
        for (i, (reason, count)) in by_reason.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#r{i}"), format!("{REASON_PREFIX}{reason}"))
                .expression_attribute_values(format!(":r{i}"), n(*count));
            adds.push(format!("#r{i} :r{i}"));
        }
        let mut sets = vec![
            "#startedAt = if_not_exists(#startedAt, :first)",
            "#updatedAt = :last",
            "#expiresAt = :exp",
        ];
        if !label.is_empty() {
            update = update
                .expression_attribute_names("#label", LABEL)
                .expression_attribute_values(":label", s(label));
            sets.push("#label = if_not_exists(#label, :label)");
        }
        let update = update
            .update_expression(format!("ADD {} SET {}", adds.join(", "), sets.join(", ")))
            .build()
            .map_err(|e| self.build_error("counter Update", e))?;
        actions.push(TransactWriteItem::builder().update(update).build());
        Ok(actions)
    }

    /// Records one transaction's worth of rows (distinct item keys); returns how many were new.
    async fn record_chunk(
        &self,
        job: &JobKey,
        label: &str,
        mut pending: Vec<(String, RowRecord)>,
    ) -> Result<u64, LedgerError> {
        let mut contention = 0u32;
        loop {
            if pending.is_empty() {
                return Ok(0);
            }
            let actions = self.transaction(job, label, &pending)?;
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await
            {
                Ok(_) => return Ok(pending.len() as u64),
                Err(e) => e,
            };
            let verdict = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Verdict::of(c.cancellation_reasons(), pending.len())
                }
                // Another attempt with the same token is still running (the SDK's retry).
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => Verdict {
                    transient: true,
                    ..Verdict::default()
                },
                _ => return Err(self.store_error("TransactWriteItems", job, &err)),
            };
            if let Some(why) = verdict.refused {
                return Err(LedgerError::Store(format!(
                    "TransactWriteItems on table {} (job {job}) was cancelled: {why}",
                    self.table
                )));
            }
            if verdict.recorded.is_empty() && !verdict.transient {
                return Err(LedgerError::Store(format!(
                    "TransactWriteItems on table {} (job {job}) was cancelled without a reason \
                     to act on (cancellation reasons: {})",
                    self.table, verdict.codes
                )));
            }
            if !verdict.recorded.is_empty() {
                // Recorded before: their first record stands. Each such round drops at least one
                // row, so this loop ends.
                let recorded: HashSet<usize> = verdict.recorded.into_iter().collect();
                pending = pending
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !recorded.contains(i))
                    .map(|(_, r)| r)
                    .collect();
            }
            if verdict.transient {
                contention += 1;
                if contention >= CONTENTION_ATTEMPTS {
                    return Err(LedgerError::Store(format!(
                        "TransactWriteItems on table {} (job {job}) was still cancelled after \
                         {contention} attempts ({})",
                        self.table, verdict.codes
                    )));
                }
                let ceiling = BACKOFF_BASE_MS << contention.min(6);
                let wait = rand::random_range(ceiling / 2..=ceiling);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }

    async fn header(&self, job: &JobKey) -> Result<Option<Item>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(DynamoLedger::key(job, HEADER_ITEM)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.store_error("GetItem (header)", job, &e))?;
        Ok(out.item.filter(|i| !i.is_empty()))
    }

    /// The header and the counter shards of a job, in one consistent `BatchGetItem` of their
    /// known keys (the keys a batch left unprocessed are asked again, with a backoff). One request
    /// where a `GetItem` and a `Query` took two; and unlike a `Query` on the shards' prefix, whose
    /// cost a service may pay over the whole partition, the read touches only these items.
    async fn summary_items(&self, job: &JobKey) -> Result<(Option<Item>, Vec<Item>), LedgerError> {
        let mut keys: Vec<Item> = std::iter::once(HEADER_ITEM.to_string())
            .chain((0..SHARDS).map(|i| format!("{SHARD_PREFIX}{i}")))
            .map(|item| DynamoLedger::key(job, &item))
            .collect();
        let mut header = None;
        let mut shards = Vec::new();
        let mut attempts = 0;
        loop {
            let wanted = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| self.build_error("BatchGetItem (summary)", e))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, wanted)
                .send()
                .await
                .map_err(|e| self.store_error("BatchGetItem (summary)", job, &e))?;
            let items = out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default();
            for item in items.into_iter().filter(|i| !i.is_empty()) {
                match item.get(ITEM) {
                    Some(AttributeValue::S(k)) if k == HEADER_ITEM => header = Some(item),
                    _ => shards.push(item),
                }
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok((header, shards));
            }
            attempts += 1;
            if attempts >= CONTENTION_ATTEMPTS {
                return Err(LedgerError::Store(format!(
                    "BatchGetItem (summary) on table {} (job {job}) left {} keys unprocessed \
                     after {attempts} attempts",
                    self.table,
                    keys.len()
                )));
            }
            let ceiling = BACKOFF_BASE_MS << attempts.min(6);
            let wait = rand::random_range(ceiling / 2..=ceiling);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Every item of the job whose sort key starts with `prefix`, in sort key order (consistent,
    /// page after page).
    async fn query_prefix(
        &self,
        job: &JobKey,
        prefix: &str,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, LedgerError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#job = :job AND begins_with(#item, :prefix)")
                .expression_attribute_names("#job", JOB)
                .expression_attribute_names("#item", ITEM)
                .expression_attribute_values(":job", s(job.as_str()))
                .expression_attribute_values(":prefix", s(prefix))
                .set_limit(limit.or(self.page_size))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.store_error(&format!("Query ({prefix}*)"), job, &e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && limit.is_none() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The job has counts (it may have no header yet).
    async fn has_shards(&self, job: &JobKey) -> Result<bool, LedgerError> {
        Ok(!self
            .query_prefix(job, SHARD_PREFIX, Some(1))
            .await?
            .is_empty())
    }

    /// An UpdateItem of the header. `Ok(false)` when its condition failed.
    async fn update_header(
        &self,
        op: &str,
        job: &JobKey,
        expression: &str,
        condition: Option<&str>,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, LedgerError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(DynamoLedger::key(job, HEADER_ITEM)))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_string));
        // DynamoDB refuses placeholders that the expressions do not use.
        let text = format!("{expression} {}", condition.unwrap_or(""));
        for (k, v) in names {
            if uses(&text, k) {
                req = req.expression_attribute_names(*k, *v);
            }
        }
        for (k, v) in values {
            if uses(&text, k) {
                req = req.expression_attribute_values(k, v);
            }
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.store_error(op, job, &e)),
        }
    }

    /// Sets completedAt and report = requested, under `condition`.
    async fn claim(&self, job: &JobKey, at: &str, condition: &str) -> Result<bool, LedgerError> {
        self.update_header(
            "UpdateItem (claim the completion)",
            job,
            "SET #completedAt = :at, #report = :requested, #expiresAt = :exp",
            Some(condition),
            &[
                ("#item", ITEM),
                ("#completedAt", COMPLETED_AT),
                ("#report", REPORT),
                ("#expiresAt", EXPIRES_AT),
            ],
            vec![
                (":at", s(at)),
                (":requested", s(REQUESTED)),
                (":exp", self.expires_at()),
            ],
        )
        .await
    }

    /// Sets report = written.
    async fn reported(
        &self,
        job: &JobKey,
        at: &str,
        condition: Option<&str>,
    ) -> Result<bool, LedgerError> {
        self.update_header(
            "UpdateItem (mark the reports written)",
            job,
            "SET #report = :written, #reportedAt = :at, #expiresAt = :exp",
            condition,
            &[
                ("#item", ITEM),
                ("#report", REPORT),
                ("#reportedAt", REPORTED_AT),
                ("#expiresAt", EXPIRES_AT),
            ],
            vec![
                (":at", s(at)),
                (":written", s(WRITTEN)),
                (":exp", self.expires_at()),
            ],
        )
        .await
    }
}

/// What a cancelled transaction's reasons say.
#[derive(Debug, Default)]
struct Verdict {
    /// Rows (indexes) already recorded: their condition failed.
    recorded: Vec<usize>,
    /// Contention or throughput: worth another attempt.
    transient: bool,
    /// A reason no retry fixes (validation, item collection size, unknown).
    refused: Option<String>,
    /// Every reason's code, for messages.
    codes: String,
}

impl Verdict {
    fn of(reasons: &[CancellationReason], rows: usize) -> Verdict {
        let mut v = Verdict::default();
        let mut codes = Vec::with_capacity(reasons.len());
        for (i, r) in reasons.iter().enumerate() {
            let code = r.code().unwrap_or("None");
            codes.push(code);
            match code {
                "None" => {}
                "ConditionalCheckFailed" if i < rows => v.recorded.push(i),
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" => {
                    v.transient = true
                }
                _ => {
                    let what = if i < rows {
                        "a row"
                    } else {
                        "the counter shard"
                    };
                    v.refused.get_or_insert_with(|| {
                        format!("{code} on {what}: {}", r.message().unwrap_or("no message"))
                    });
                }
            }
        }
        v.codes = if codes.is_empty() {
            "none given".to_string()
        } else {
            codes.join(", ")
        };
        v
    }
}

/// `text` names the placeholder `name` (not only a longer one that starts the same).
fn uses(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        !text[i + name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn row_item(job: &JobKey, key: &str, r: &RowRecord, expires: AttributeValue) -> Item {
    let mut item = DynamoLedger::key(job, key);
    if let Some(row) = r.row {
        item.insert(ROW.into(), n(row));
    }
    item.insert(USER.into(), s(&r.user));
    item.insert(OUTCOME.into(), s(&r.outcome));
    if !r.reason.is_empty() {
        item.insert(REASON.into(), s(&r.reason));
    }
    if !r.detail.is_empty() {
        item.insert(DETAIL.into(), s(&r.detail));
    }
    item.insert(AT.into(), s(&r.at));
    item.insert(DELIVERIES.into(), n(u64::from(r.deliveries)));
    item.insert(STAGE.into(), s(r.stage.as_str()));
    item.insert(EXPIRES_AT.into(), expires);
    item
}

/// Reads attributes of one item, naming the item in errors.
struct Reader<'a> {
    job: &'a JobKey,
    item: &'a Item,
}

impl<'a> Reader<'a> {
    fn new(job: &'a JobKey, item: &'a Item) -> Reader<'a> {
        Reader { job, item }
    }

    fn unreadable(&self, why: String) -> LedgerError {
        let key = self
            .item
            .get(ITEM)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .unwrap_or("?");
        LedgerError::Unreadable {
            job: self.job.to_string(),
            why: format!("item {key}: {why}"),
        }
    }

    fn opt_s(&self, name: &str) -> Result<Option<&'a str>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(other) => Err(self.unreadable(format!("{name} is not a string: {other:?}"))),
        }
    }

    fn req_s(&self, name: &str) -> Result<&'a str, LedgerError> {
        self.opt_s(name)?
            .ok_or_else(|| self.unreadable(format!("{name} is missing")))
    }

    fn opt_n(&self, name: &str) -> Result<Option<u64>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(v) => self.number(name, v).map(Some),
        }
    }

    fn number(&self, name: &str, v: &AttributeValue) -> Result<u64, LedgerError> {
        match v {
            AttributeValue::N(t) => t
                .parse::<u64>()
                .map_err(|_| self.unreadable(format!("{name} is not a whole number: {t}"))),
            other => Err(self.unreadable(format!("{name} is not a number: {other:?}"))),
        }
    }
}

fn parse_row(job: &JobKey, item: &Item) -> Result<RowRecord, LedgerError> {
    let r = Reader::new(job, item);
    let stage = r.req_s(STAGE)?;
    let deliveries = r
        .opt_n(DELIVERIES)?
        .ok_or_else(|| r.unreadable(format!("{DELIVERIES} is missing")))?;
    Ok(RowRecord {
        row: r.opt_n(ROW)?,
        user: r.req_s(USER)?.to_string(),
        outcome: r.req_s(OUTCOME)?.to_string(),
        reason: r.opt_s(REASON)?.unwrap_or_default().to_string(),
        detail: r.opt_s(DETAIL)?.unwrap_or_default().to_string(),
        at: r.req_s(AT)?.to_string(),
        deliveries: u32::try_from(deliveries)
            .map_err(|_| r.unreadable(format!("{DELIVERIES} is out of range: {deliveries}")))?,
        stage: Stage::parse(stage)
            .ok_or_else(|| r.unreadable(format!("{STAGE} is unknown: {stage}")))?,
    })
}

fn summarise(
    job: &JobKey,
    header: Option<&Item>,
    shards: &[Item],
) -> Result<JobSummary, LedgerError> {
    let mut sum = JobSummary {
        job: job.clone(),
        ..JobSummary::default()
    };
    if let Some(h) = header {
        let r = Reader::new(job, h);
        sum.label = r.opt_s(LABEL)?.unwrap_or_default().to_string();
        sum.expected = r.opt_n(EXPECTED)?;
        sum.rows_read = r.opt_n(ROWS_READ)?;
        sum.completed_at = r.opt_s(COMPLETED_AT)?.map(str::to_string);
        sum.report = match r.opt_s(REPORT)? {
            None => None,
            Some(REQUESTED) => Some(ReportState::Requested),
            Some(WRITTEN) => Some(ReportState::Written),
            Some(other) => return Err(r.unreadable(format!("{REPORT} is unknown: {other}"))),
        };
    }
    for shard in shards {
        let r = Reader::new(job, shard);
        if sum.label.is_empty() {
            sum.label = r.opt_s(LABEL)?.unwrap_or_default().to_string();
        }
        for (name, v) in shard {
            let counts = if let Some(outcome) = name.strip_prefix(OUTCOME_PREFIX) {
                Some((&mut sum.by_outcome, outcome))
            } else {
                name.strip_prefix(REASON_PREFIX)
                    .map(|reason| (&mut sum.by_reason, reason))
            };
            if let Some((counts, key)) = counts {
                let c = r.number(name, v)?;
                let total = counts.entry(key.to_string()).or_default();
                *total = total.saturating_add(c);
            }
        }
        sum.done = sum.done.saturating_add(r.opt_n(DONE)?.unwrap_or(0));
        if let Some(t) = r.opt_s(STARTED_AT)? {
            if sum.started_at.as_deref().is_none_or(|s| t < s) {
                sum.started_at = Some(t.to_string());
            }
        }
        if let Some(t) = r.opt_s(UPDATED_AT)? {
            if sum.updated_at.as_deref().is_none_or(|s| t > s) {
                sum.updated_at = Some(t.to_string());
            }
        }
    }
    Ok(sum)
}

#[async_trait]
impl LedgerPort for DynamoLedger {
    async fn record(
        &self,
        job: &JobKey,
        label: &str,
        rows: &[RowRecord],
    ) -> Result<u64, LedgerError> {
        if rows.is_empty() {
            // As the memory ledger: the job exists from now on, with its label.
            let mut expr = "SET #expiresAt = :exp".to_string();
            let mut names = vec![("#expiresAt", EXPIRES_AT)];
            let mut values = vec![(":exp", self.expires_at())];
            if !label.is_empty() {
                expr.push_str(", #label = if_not_exists(#label, :label)");
                names.push(("#label", LABEL));
                values.push((":label", s(label)));
            }
            self.update_header("UpdateItem (header)", job, &expr, None, &names, values)
                .await?;
            return Ok(0);
        }
        // A row twice in one batch: the first stands (one transaction cannot write an item twice).
        let mut seen = HashSet::with_capacity(rows.len());
        let unique: Vec<(String, RowRecord)> = rows
            .iter()
            .filter_map(|r| {
                let key = r.item_key();
                seen.insert(key.clone()).then(|| (key, r.clone().bounded()))
            })
            .collect();
        let mut new = 0;
        for chunk in unique.chunks(MAX_ROWS_PER_TRANSACTION) {
            new += self.record_chunk(job, label, chunk.to_vec()).await?;
        }
        Ok(new)
    }

    async fn set_expected(
        &self,
        job: &JobKey,
        label: &str,
        expected: u64,
        rows_read: u64,
    ) -> Result<(), LedgerError> {
        let mut expr =
            "SET #expected = :expected, #rowsRead = :rowsRead, #expiresAt = :exp".to_string();
        let mut names = vec![
            ("#expected", EXPECTED),
            ("#rowsRead", ROWS_READ),
            ("#expiresAt", EXPIRES_AT),
        ];
        let mut values = vec![
            (":expected", n(expected)),
            (":rowsRead", n(rows_read)),
            (":exp", self.expires_at()),
        ];
        if !label.is_empty() {
            expr.push_str(", #label = if_not_exists(#label, :label)");
            names.push(("#label", LABEL));
            values.push((":label", s(label)));
        }
        self.update_header(
            "UpdateItem (expected rows)",
            job,
            &expr,
            None,
            &names,
            values,
        )
        .await?;
        Ok(())
    }

    async fn summary(&self, job: &JobKey) -> Result<Option<JobSummary>, LedgerError> {
        let (header, shards) = self.summary_items(job).await?;
        if header.is_none() && shards.is_empty() {
            return Ok(None);
        }
        summarise(job, header.as_ref(), &shards).map(Some)
    }

    async fn rows(&self, job: &JobKey) -> Result<Vec<RowRecord>, LedgerError> {
        let mut rows = Vec::new();
        for prefix in [ROW_PREFIX, USER_PREFIX] {
            for item in self.query_prefix(job, prefix, None).await? {
                rows.push(parse_row(job, &item)?);
            }
        }
        Ok(rows)
    }

    async fn claim_completion(&self, job: &JobKey, at: &str) -> Result<bool, LedgerError> {
        if self
            .claim(
                job,
                at,
                "attribute_exists(#item) AND attribute_not_exists(#completedAt)",
            )
            .await?
        {
            return Ok(true);
        }
        // Claimed already, or no header yet: a job that only has counts exists all the same
        // (as in the memory ledger), and an unknown job is not claimed. The last word is the
        // condition on completedAt.
        let exists = match self.header(job).await? {
            Some(h) if h.contains_key(COMPLETED_AT) => return Ok(false),
            Some(_) => true,
            None => self.has_shards(job).await?,
        };
        if !exists {
            return Ok(false);
        }
        self.claim(job, at, "attribute_not_exists(#completedAt)")
            .await
    }

    async fn release_completion(&self, job: &JobKey) -> Result<(), LedgerError> {
        // A failed condition: not claimed, or its reports already written. Nothing to undo.
        self.update_header(
            "UpdateItem (release the completion)",
            job,
            "REMOVE #completedAt, #report",
            Some("#report = :requested"),
            &[("#completedAt", COMPLETED_AT), ("#report", REPORT)],
            vec![(":requested", s(REQUESTED))],
        )
        .await?;
        Ok(())
    }

    async fn mark_reported(&self, job: &JobKey, at: &str) -> Result<(), LedgerError> {
        if self
            .reported(job, at, Some("attribute_exists(#item)"))
            .await?
        {
            return Ok(());
        }
        // No header: a job with counts only is marked all the same, an unknown one is not.
        if self.has_shards(job).await? {
            self.reported(job, at, None).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn placeholders_are_matched_whole() {
        assert!(uses("SET #report = :r", "#report"));
        assert!(!uses("SET #reportedAt = :r", "#report"));
        assert!(uses("SET #reportedAt = :r, #report = :x", "#report"));
        assert!(!uses("SET #a = :at", ":a"));
        assert!(uses("attribute_exists(#item)", "#item"));
    }

    #[test]
    fn cancellation_reasons_name_the_recorded_rows_and_the_retryable_causes() {
        let v = Verdict::of(
            &[
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
            ],
            4,
        );
        assert_eq!(v.recorded, vec![1, 3]);
        assert!(!v.transient && v.refused.is_none());

        let v = Verdict::of(&[reason("None"), reason("TransactionConflict")], 1);
        assert!(v.recorded.is_empty() && v.transient && v.refused.is_none());

        let v = Verdict::of(&[reason("ValidationError"), reason("None")], 1);
        assert!(v
            .refused
            .is_some_and(|w| w.contains("ValidationError on a row")));

        let v = Verdict::of(&[], 3);
        assert!(v.recorded.is_empty() && !v.transient && v.codes == "none given");
    }

    #[test]
    fn shard_counters_sum_back_into_the_summary() {
        let job = JobKey("s3://b/k@r".into());
        let shard = |done: u64, created: u64, rejected: u64, start: &str, end: &str| {
            HashMap::from([
                (ITEM.to_string(), s("count#1")),
                (DONE.to_string(), n(done)),
                ("o_created".to_string(), n(created)),
                ("o_rejected".to_string(), n(rejected)),
                ("r_invalid_email".to_string(), n(rejected)),
                (STARTED_AT.to_string(), s(start)),
                (UPDATED_AT.to_string(), s(end)),
                (LABEL.to_string(), s("s3://b/k")),
                (EXPIRES_AT.to_string(), n(1)),
            ])
        };
        let header = HashMap::from([
            (ITEM.to_string(), s(HEADER_ITEM)),
            (EXPECTED.to_string(), n(5)),
            (ROWS_READ.to_string(), n(6)),
            (REPORT.to_string(), s(WRITTEN)),
        ]);
        let sum = summarise(
            &job,
            Some(&header),
            &[shard(2, 1, 1, "t2", "t5"), shard(3, 3, 0, "t1", "t4")],
        )
        .unwrap();
        assert_eq!(sum.done, 5);
        assert_eq!(sum.expected, Some(5));
        assert_eq!(sum.rows_read, Some(6));
        assert_eq!(sum.label, "s3://b/k");
        assert_eq!(sum.by_outcome.get("created"), Some(&4));
        assert_eq!(sum.by_outcome.get("rejected"), Some(&1));
        assert_eq!(sum.by_reason.get("invalid_email"), Some(&1));
        assert_eq!(sum.started_at.as_deref(), Some("t1"));
        assert_eq!(sum.updated_at.as_deref(), Some("t5"));
        assert_eq!(sum.report, Some(ReportState::Written));

        let bad = HashMap::from([(ITEM.to_string(), s("count#0")), (DONE.to_string(), s("x"))]);
        assert!(matches!(
            summarise(&job, None, &[bad]),
            Err(LedgerError::Unreadable { .. })
        ));
    }

    #[test]
    fn a_row_item_reads_back_as_it_was_recorded() {
        let job = JobKey("producer:onboarding/1".into());
        for row in [Some(7), None] {
            let r = RowRecord {
                row,
                user: "A@contoso.com".into(),
                outcome: "rejected".into(),
                reason: if row.is_some() {
                    "invalid_email".into()
                } else {
                    String::new()
                },
                detail: if row.is_some() {
                    "bad".into()
                } else {
                    String::new()
                },
                at: "2026-12-03T10:00:00Z".into(),
                deliveries: 3,
                stage: Stage::Reconcile,
            };
            let item = row_item(&job, &r.item_key(), &r, n(9));
            assert_eq!(parse_row(&job, &item).unwrap(), r);
        }
    }
}

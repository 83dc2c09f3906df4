//! Where the worker delivers a Temporary Access Pass, and how a redelivered message knows its
//! pass was delivered (README, "Temporary Access Pass").
//!
//! A pass value is returned once by Graph and goes to exactly one place:
//! - a request with `replyTo` (an onboarding producer): that queue, which must be one of the
//!   deployment's `PassDeliveryQueueArns`; anything else is `invalid_message`, before any pass
//!   is made. A marker object (no secret in it) records the delivery;
//! - a row of an uploaded file: its own object `passes/<key>/<run>/<row>.csv`, encrypted with the
//!   pass key that only the helpdesk principal may decrypt. The object is its own record.
//!
//! A duplicate delivery of a message whose pass was delivered finds the record and makes no
//! second pass. Before a pass is made, a *pending* record is written for the route (which also
//! proves the bucket and the key can be written, before any pass exists); once Graph made it, its
//! method id goes into that record, then the pass is delivered. A pass that was made but not
//! delivered (the worker stopped in between) is the one the pending record names: nobody has it,
//! so the next delivery replaces it and delivers the new one. Any other pass the user has is
//! someone else's (`tap_exists` unless `forcedUpdate`). No record holds a pass value.

use async_trait::async_trait;

use crate::message::{Job, Request};
use crate::tap::IssuedPass;

/// Where one request's pass goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An object of its own under `passes/`: the pass file of one row (its own record).
    File { key: String },
    /// A reply queue; `marker` is the object that records the delivery.
    Queue { arn: String, marker: String },
}

/// A pass's target and its pending record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRoute {
    pub target: Target,
    /// The object that names the pass being made for this route (no secret in it).
    pub pending: String,
}

impl PassRoute {
    fn new(target: Target) -> PassRoute {
        let record = match &target {
            Target::File { key } => key,
            Target::Queue { marker, .. } => marker,
        };
        let digest = xxhash_rust::xxh3::xxh3_128(record.as_bytes());
        PassRoute {
            pending: format!("{PASSES_PREFIX}.pending/{digest:032x}"),
            target,
        }
    }

    /// The object whose existence says the pass was delivered.
    pub fn delivered_record(&self) -> &str {
        match &self.target {
            Target::File { key } => key,
            Target::Queue { marker, .. } => marker,
        }
    }
}

/// Why a pass could not be delivered, or its records not read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// May pass if tried later (throttling, a network error, a queue being created).
    #[error("pass delivery: {0}")]
    Unavailable(String),
    /// The deployment refuses it (no such bucket, access denied, a KMS key that may not be
    /// used): a configuration fault until an administrator fixes it.
    #[error("Temporary Access Passes cannot be delivered: {0}")]
    Refused(String),
}

/// The pass file prefix.
pub const PASSES_PREFIX: &str = "passes/";

/// A key segment that cannot change the object's path.
fn segment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where the pass files of an uploaded file's rows are: `passes/<key>/`, and with `run`
/// `passes/<key>/<run>/` (one object per row, `<row:08>.csv`).
pub fn pass_files_prefix(key: &str, run: Option<&str>) -> String {
    match run {
        Some(run) => format!("{PASSES_PREFIX}{key}/{}/", segment(run)),
        None => format!("{PASSES_PREFIX}{key}/"),
    }
}

/// The route of `req`'s pass, or why the message cannot have one (`invalid_message`).
/// `allowed_queues`: the deployment's `PassDeliveryQueueArns`.
pub fn route(req: &Request, allowed_queues: &[String]) -> Result<PassRoute, String> {
    if let Some(arn) = &req.reply_to {
        if !allowed_queues.iter().any(|q| q == arn) {
            return Err(format!(
                "'replyTo' {arn} is not one of the deployment's pass delivery queues (PassDeliveryQueueArns): no pass is issued"
            ));
        }
        // The job names the request: a redelivery finds its record, another request does not.
        let job = match &req.job {
            Job::S3 {
                bucket,
                key,
                etag,
                run,
            } => format!(
                "s3_{bucket}_{key}_{}_{}",
                run.as_deref().unwrap_or(etag),
                req.row.unwrap_or(0)
            ),
            Job::Producer {
                producer,
                id: Some(id),
            } => format!("{producer}_{id}"),
            Job::Producer { id: None, .. } => {
                return Err("a Temporary Access Pass with 'replyTo' needs 'job.id': the id of this request (a new hire's event id), so that a redelivery of it makes no second pass and another request does".into());
            }
        };
        let digest = xxhash_rust::xxh3::xxh3_128(job.as_bytes());
        return Ok(PassRoute::new(Target::Queue {
            arn: arn.clone(),
            marker: format!(
                "{PASSES_PREFIX}.delivered/{digest:032x}/{}.json",
                segment(&crate::user::user_key(&req.user))
            ),
        }));
    }
    match &req.job {
        Job::S3 { key, etag, run, .. } => {
            let Some(row) = req.row else {
                return Err("a Temporary Access Pass for an uploaded file needs the message's 'row' (or a 'replyTo')".into());
            };
            let run = run.as_deref().unwrap_or(etag.trim_matches('"'));
            Ok(PassRoute::new(Target::File {
                key: format!("{}{row:08}.csv", pass_files_prefix(key, Some(run))),
            }))
        }
        Job::Producer { .. } => Err(
            "a Temporary Access Pass needs 'replyTo': the queue (one of PassDeliveryQueueArns) the pass is delivered to; no pass is issued"
                .into(),
        ),
    }
}

/// The queue message a reply queue receives.
pub fn reply_body(req: &Request, pass: &IssuedPass) -> String {
    serde_json::json!({
        "job": req.job,
        "user": req.user,
        "row": req.row,
        "temporaryAccessPass": pass.value.expose(),
        "methodId": pass.method_id,
        "createdDateTime": pass.created,
        "startDateTime": pass.start,
        "lifetimeInMinutes": pass.lifetime_in_minutes,
        "isUsableOnce": pass.is_usable_once,
    })
    .to_string()
}

/// A pass file: the header and one row, Excel-safe.
pub fn pass_file(user: &str, pass: &IssuedPass) -> Vec<u8> {
    let mut w = crate::results::SafeCsv::new(Vec::new());
    // Writing to memory cannot fail.
    let _ = w.record(crate::tap::PASS_FILE_HEADER);
    let _ = w.record(pass.file_row(user));
    w.into_inner().unwrap_or_default()
}

/// What the worker knows before it applies a request that asks for a pass.
pub enum Prepared {
    /// Deliver a new pass along this route; the pass an earlier delivery made and did not
    /// deliver, if any (it is replaced).
    Route(PassRoute, Option<String>),
    /// An earlier delivery of the message delivered its pass: make none.
    Delivered,
    /// The message cannot have a pass (`invalid_message`).
    Invalid(String),
    /// The records could not be read or written (or there is no delivery): no pass is made.
    Failed(DeliveryError),
}

/// Routes `req`'s pass and looks up whether it was delivered.
pub async fn prepare(delivery: Option<&dyn PassDeliveryPort>, req: &Request) -> Prepared {
    let Some(delivery) = delivery else {
        return Prepared::Failed(DeliveryError::Refused(
            "the worker has no pass delivery configured (PASS_BUCKET, PASS_KMS_KEY_ARN)".into(),
        ));
    };
    let route = match route(req, delivery.allowed_queues()) {
        Ok(r) => r,
        Err(detail) => return Prepared::Invalid(detail),
    };
    let looked_up = async {
        if delivery.delivered(&route).await? {
            return Ok(None);
        }
        // An earlier delivery made a pass it names and did not deliver it; else the record is
        // written before any pass exists, so that a bucket or key the worker may not use is
        // found now, not after Graph made a pass that could not be delivered.
        let own = delivery.pending(&route).await?;
        if own.is_none() {
            delivery.record_pending(&route, None).await?;
        }
        Ok(Some(own))
    };
    match looked_up.await {
        Ok(None) => Prepared::Delivered,
        Ok(Some(own)) => Prepared::Route(route, own),
        Err(e) => Prepared::Failed(e),
    }
}

/// Hands an issued pass over: its id into the route's pending record (the next delivery
/// replaces a pass it names that was not delivered), then the pass itself. A pass whose id
/// cannot be recorded is deleted at once: unrecorded, the next delivery would take it for
/// someone else's (`tap_exists`).
pub async fn hand_over(
    delivery: Option<&dyn PassDeliveryPort>,
    route: Option<&PassRoute>,
    client: &crate::graph::GraphClient,
    req: &Request,
    pass: IssuedPass,
) -> Result<(), DeliveryError> {
    let (Some(d), Some(route)) = (delivery, route) else {
        return Err(DeliveryError::Unavailable("no route for the pass".into()));
    };
    if let Err(e) = d.record_pending(route, Some(&pass.method_id)).await {
        if let Err(de) = client.delete_tap(&req.user, &pass.method_id).await {
            tracing::error!(error = %de, "a Temporary Access Pass whose id could not be recorded could not be deleted either; the next delivery finds it as tap_exists");
        }
        return Err(e);
    }
    d.deliver(route, req, &pass).await
}

/// The user's result when a pass could not be delivered (or prepared): retried by the queue;
/// a refusal by the deployment is a configuration fault as well.
pub fn failed(e: &DeliveryError, detail: String) -> crate::apply::UserResult {
    let mut r = crate::apply::UserResult::transient_failure(detail);
    if let DeliveryError::Refused(why) = e {
        r.config_fault = Some(crate::graph::error::ConfigFault::PassDelivery(why.clone()));
    }
    r
}

/// Delivery of passes: the AWS adapter is [`crate::aws::passes::AwsPassDelivery`].
#[async_trait]
pub trait PassDeliveryPort: Send + Sync {
    /// The deployment's reply queues.
    fn allowed_queues(&self) -> &[String];
    /// Whether an earlier delivery of this message delivered its pass.
    async fn delivered(&self, route: &PassRoute) -> Result<bool, DeliveryError>;
    /// The method id the route's pending record names (`None`: no record, or no pass made yet).
    async fn pending(&self, route: &PassRoute) -> Result<Option<String>, DeliveryError>;
    /// Writes the route's pending record: a pass is being made (`None`) or was made (its id).
    async fn record_pending(
        &self,
        route: &PassRoute,
        method_id: Option<&str>,
    ) -> Result<(), DeliveryError>;
    /// Delivers `pass` along `route`, then records it.
    async fn deliver(
        &self,
        route: &PassRoute,
        req: &Request,
        pass: &IssuedPass,
    ) -> Result<(), DeliveryError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_request;

    const Q: &str = "arn:aws:sqs:eu-west-1:123456789012:helpdesk-passes";

    fn req(v: serde_json::Value) -> Request {
        parse_request(&v.to_string()).unwrap()
    }

    #[test]
    fn routes() {
        let tap = serde_json::json!({"lifetimeInMinutes": 60});
        let allowed = vec![Q.to_string()];
        let r = req(
            serde_json::json!({"v": 1, "job": {"producer": "hr", "id": "7"},
            "user": "New.Hire@contoso.com", "temporaryAccessPass": tap, "replyTo": Q}),
        );
        let routed = route(&r, &allowed).unwrap();
        match &routed.target {
            Target::Queue { arn, marker } => {
                assert_eq!(arn, Q);
                assert!(marker.starts_with("passes/.delivered/"), "{marker}");
                assert!(marker.ends_with("/new.hire@contoso.com.json"), "{marker}");
            }
            other => panic!("{other:?}"),
        }
        assert!(routed.pending.starts_with("passes/.pending/"));
        // Another request of the producer is another route.
        let other = req(
            serde_json::json!({"v": 1, "job": {"producer": "hr", "id": "8"},
            "user": "New.Hire@contoso.com", "temporaryAccessPass": tap, "replyTo": Q}),
        );
        assert_ne!(route(&other, &allowed).unwrap(), routed);
        // Without a job id a redelivery could not be told from another request.
        let no_id = req(serde_json::json!({"v": 1, "job": {"producer": "hr"},
            "user": "a@contoso.com", "temporaryAccessPass": tap, "replyTo": Q}));
        assert!(route(&no_id, &allowed).unwrap_err().contains("'job.id'"));
        // Not on the list: refused, whatever the job.
        let e = route(&r, &[]).unwrap_err();
        assert!(e.contains("PassDeliveryQueueArns"), "{e}");
        let r = req(serde_json::json!({"v": 1, "job": {"producer": "hr"},
            "user": "a@contoso.com", "temporaryAccessPass": tap}));
        assert!(route(&r, &allowed).unwrap_err().contains("'replyTo'"));
        let r = req(
            serde_json::json!({"v": 1, "job": {"bucket": "bkt", "key": "incoming/new hires.csv",
            "etag": "\"e1\"", "run": "e1-2"}, "row": 12, "user": "a@contoso.com", "temporaryAccessPass": tap}),
        );
        assert_eq!(
            route(&r, &allowed).unwrap().target,
            Target::File {
                key: "passes/incoming/new hires.csv/e1-2/00000012.csv".into()
            }
        );
    }

    #[test]
    fn a_pass_file_holds_one_excel_safe_row() {
        let p = IssuedPass {
            method_id: "m".into(),
            value: crate::tap::PassValue::new("=x1y2z3w4".into()),
            start: None,
            lifetime_in_minutes: 60,
            is_usable_once: true,
            created: None,
        };
        let text = String::from_utf8(pass_file("a@contoso.com", &p)).unwrap();
        assert_eq!(
            text,
            "UPN,TemporaryAccessPass,StartDateTime,LifetimeInMinutes,IsUsableOnce\na@contoso.com,'=x1y2z3w4,,60,true\n"
        );
    }
}

//! The ingest's [`Sink`] on SQS: requests to the work queue, rejects to the DLQ, 10 entries per
//! `SendMessageBatch`, several calls in flight, and an exact account of what is confirmed sent.

use super::engine::{Dest, Sink, SinkError, Tag};
use crate::aws::sqs::{OutMessage, SqsError, SqsSender, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use tokio::task::JoinSet;

type BatchResult = (Vec<Tag>, Result<(), SqsError>);

pub struct SqsSink {
    queue: SqsSender,
    dlq: SqsSender,
    buffers: [(Vec<(Tag, OutMessage)>, usize); 2],
    in_flight: JoinSet<BatchResult>,
    max_in_flight: usize,
    /// Confirmed since the last successful flush.
    confirmed: Vec<Tag>,
    /// Messages confirmed in all.
    pub sent: u64,
}

impl SqsSink {
    pub fn new(queue: SqsSender, dlq: SqsSender, max_in_flight: usize) -> SqsSink {
        SqsSink {
            queue,
            dlq,
            buffers: [(Vec::new(), 0), (Vec::new(), 0)],
            in_flight: JoinSet::new(),
            max_in_flight: max_in_flight.max(1),
            confirmed: Vec::new(),
            sent: 0,
        }
    }

    fn index(dest: Dest) -> usize {
        match dest {
            Dest::Queue => 0,
            Dest::Dlq => 1,
        }
    }

    async fn dispatch(&mut self, i: usize) -> Result<(), SinkError> {
        if self.buffers[i].0.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        let batch = std::mem::take(&mut self.buffers[i].0);
        self.buffers[i].1 = 0;
        let sender = if i == 0 {
            self.queue.clone()
        } else {
            self.dlq.clone()
        };
        self.in_flight.spawn(async move {
            let (tags, msgs): (Vec<Tag>, Vec<OutMessage>) = batch.into_iter().unzip();
            let (ok, result) = sender.send_batch_tracked(msgs).await;
            (
                ok.into_iter()
                    .filter_map(|i| tags.get(i).copied())
                    .collect(),
                result,
            )
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), SinkError> {
        match self.in_flight.join_next().await {
            None => Ok(()),
            Some(Err(e)) => Err(SinkError(format!("a send task failed: {e}"))),
            Some(Ok((tags, result))) => {
                self.sent += tags.len() as u64;
                self.confirmed.extend(tags);
                result.map_err(|e| SinkError(e.to_string()))
            }
        }
    }
}

impl Sink for SqsSink {
    async fn send(&mut self, tag: Tag, dest: Dest, msg: OutMessage) -> Result<(), SinkError> {
        let i = Self::index(dest);
        if !self.buffers[i].0.is_empty() && self.buffers[i].1 + msg.size() > MAX_BATCH_BYTES {
            self.dispatch(i).await?;
        }
        self.buffers[i].1 += msg.size();
        self.buffers[i].0.push((tag, msg));
        if self.buffers[i].0.len() >= MAX_BATCH_ENTRIES {
            self.dispatch(i).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.dispatch(0).await?;
        self.dispatch(1).await?;
        let mut first = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => {
                self.confirmed.clear();
                Ok(())
            }
        }
    }

    async fn settle(&mut self) -> Vec<Tag> {
        // Buffered messages were never sent: drop them; wait for the calls in flight.
        self.buffers = [(Vec::new(), 0), (Vec::new(), 0)];
        while !self.in_flight.is_empty() {
            let _ = self.join_one().await;
        }
        std::mem::take(&mut self.confirmed)
    }
}

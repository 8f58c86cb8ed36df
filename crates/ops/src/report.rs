//! What an operation did, step by step: done, failed (with the upstream error), not attempted.

use crate::error::{Error, Result};
use crate::execute::{CallError, CallResult};
use crate::plan::{Call, OperationKind, Problem, Request};
use crate::OperationId;
use serde::{Deserialize, Serialize};
use store::{
    AuditRecord, OperationRecord, OperationStatus, OperationStepRecord, StepCounts, StepStatus,
};

/// Unix milliseconds as an ISO 8601 UTC time to the second, e.g. `2025-01-31T09:21:07Z`.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// One audit entry as a line: id, time, actor, action, target, outcome, then the detail's
/// request (for calls) or its summary (for operations).
pub fn render_audit(entry: &AuditRecord) -> String {
    let detail = &entry.detail;
    let what = detail["request"]
        .as_str()
        .or_else(|| detail["summary"].as_str())
        .unwrap_or_default();
    let error = detail["error"]["message"]
        .as_str()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    format!(
        "{:>7}  {}  {}  {}  {}  {}  {what}{error}",
        entry.id,
        format_time(entry.at),
        entry.actor.as_deref().unwrap_or("-"),
        entry.action,
        entry.target.as_deref().unwrap_or("-"),
        entry.outcome,
    )
}

/// Where one step stands, as a report says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// The call succeeded, or its state was found in place.
    Done,
    /// The call failed; see [`StepReport::error`].
    Failed,
    /// Not attempted: the operation was only planned (a dry run), or an earlier step failed.
    NotAttempted,
    /// Started by an apply that stopped before recording the outcome (a crash). A re-run
    /// checks the real state before calling again.
    Interrupted,
}

impl StepState {
    /// The name, e.g. `not_attempted`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::NotAttempted => "not_attempted",
            StepState::Interrupted => "interrupted",
        }
    }
}

impl From<StepStatus> for StepState {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Pending => StepState::NotAttempted,
            StepStatus::Started => StepState::Interrupted,
            StepStatus::Done => StepState::Done,
            StepStatus::Failed => StepState::Failed,
        }
    }
}

/// One step of an operation and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Position in the plan, from 0.
    pub index: u32,
    /// The call.
    pub call: Call,
    /// The call as an HTTP request line.
    pub request: String,
    /// Whose account, which group.
    pub note: String,
    /// Where it stands.
    pub state: StepState,
    /// How many times an apply started it.
    pub attempts: i64,
    /// What it did, when done.
    pub result: Option<CallResult>,
    /// The upstream error, when failed.
    pub error: Option<CallError>,
    /// When it last started (unix ms).
    pub started_at: Option<i64>,
    /// When its outcome was recorded (unix ms).
    pub finished_at: Option<i64>,
}

/// What the re-harvest after an apply found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarvestSummary {
    /// The harvest run, when it started.
    pub run_id: Option<i64>,
    /// Each touched database: crawled completely (the graph can show the result) or not.
    pub databases: Vec<HarvestedDatabase>,
    /// Why the harvest could not run at all.
    pub error: Option<String>,
}

/// One database of a [`HarvestSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarvestedDatabase {
    /// The database.
    pub database: String,
    /// True when its crawl was complete and committed.
    pub complete: bool,
    /// Why not, when not.
    pub cause: Option<String>,
}

/// An operation: what was asked, the plan, and where each step stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationReport {
    /// The operation (for `apply`, the operations query and the audit log's `operation:ID`).
    pub id: OperationId,
    /// Which scenario.
    pub kind: OperationKind,
    /// `planned`, `running`, `completed` or `failed`.
    pub status: OperationStatus,
    /// One line for people.
    pub summary: String,
    /// What was asked.
    pub request: Request,
    /// What planning could not settle or wants known.
    pub problems: Vec<Problem>,
    /// When it was planned (unix ms).
    pub created_at: i64,
    /// Who planned it.
    pub created_by: Option<String>,
    /// Who applied it last.
    pub applied_by: Option<String>,
    /// How many applies there were.
    pub apply_count: i64,
    /// When the first apply started (unix ms).
    pub started_at: Option<i64>,
    /// When the latest apply finished (unix ms).
    pub finished_at: Option<i64>,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Steps done.
    pub done: u64,
    /// Steps failed (at most one: a failure stops the apply).
    pub failed: u64,
    /// Steps not attempted.
    pub not_attempted: u64,
    /// Steps interrupted (outcome unknown until a re-run checks).
    pub interrupted: u64,
    /// The re-harvest of the touched databases after this apply; `None` when nothing was
    /// applied now (a dry run, a listing, an operation completed earlier).
    pub harvest: Option<HarvestSummary>,
}

impl OperationReport {
    /// Builds the report of a stored operation.
    pub fn from_record(record: OperationRecord, harvest: Option<HarvestSummary>) -> Result<Self> {
        let id = record.id;
        let corrupt = |what: &str, e: serde_json::Error| Error::Corrupt {
            id,
            detail: format!("{what}: {e}"),
        };
        let kind = OperationKind::parse(&record.kind).ok_or_else(|| Error::Corrupt {
            id,
            detail: format!("unknown kind {:?}", record.kind),
        })?;
        let request: Request =
            serde_json::from_value(record.request).map_err(|e| corrupt("request", e))?;
        let problems: Vec<Problem> =
            serde_json::from_value(record.problems).map_err(|e| corrupt("problems", e))?;
        let steps = record
            .steps
            .into_iter()
            .map(|s| step_report(id, s))
            .collect::<Result<Vec<_>>>()?;
        let StepCounts {
            pending,
            started,
            done,
            failed,
        } = record.counts;
        Ok(OperationReport {
            id,
            kind,
            status: record.status,
            summary: record.summary,
            request,
            problems,
            created_at: record.created_at,
            created_by: record.created_by,
            applied_by: record.applied_by,
            apply_count: record.apply_count,
            started_at: record.started_at,
            finished_at: record.finished_at,
            steps,
            done,
            failed,
            not_attempted: pending,
            interrupted: started,
            harvest,
        })
    }

    /// True when every step is done.
    pub fn is_complete(&self) -> bool {
        self.status == OperationStatus::Completed
    }

    /// Steps in one state.
    pub fn steps_in(&self, state: StepState) -> impl Iterator<Item = &StepReport> {
        self.steps.iter().filter(move |s| s.state == state)
    }

    /// The report as text: a headline, one line per step, the problems, the re-harvest.
    pub fn render(&self) -> String {
        let mut out = format!(
            "operation {} ({}): {}\n  planned {} by {}",
            self.id,
            self.kind,
            self.summary,
            format_time(self.created_at),
            self.created_by.as_deref().unwrap_or("-"),
        );
        if let Some(by) = &self.applied_by {
            out.push_str(&format!("; applied by {by}"));
        }
        if let Some(at) = self.finished_at {
            out.push_str(&format!(", finished {}", format_time(at)));
        }
        out.push_str(&format!(
            "\n  status {}: {} done, {} failed, {} not attempted",
            self.status.as_str(),
            self.done,
            self.failed,
            self.not_attempted
        ));
        if self.interrupted > 0 {
            out.push_str(&format!(", {} interrupted", self.interrupted));
        }
        out.push('\n');
        for s in &self.steps {
            let outcome = match (&s.result, &s.error) {
                (Some(r), _) => r.to_string(),
                (None, Some(e)) => e.to_string(),
                (None, None) => String::new(),
            };
            out.push_str(&format!(
                "  [{}] {:<13} {}\n      {}{}\n",
                s.index,
                s.state.as_str(),
                s.request,
                s.note,
                if outcome.is_empty() {
                    String::new()
                } else {
                    format!(": {outcome}")
                }
            ));
        }
        for p in &self.problems {
            out.push_str(&format!(
                "  problem {} {}: {}\n",
                p.kind.as_str(),
                p.subject,
                p.detail
            ));
        }
        if let Some(h) = &self.harvest {
            match &h.error {
                Some(e) => out.push_str(&format!("  re-harvest failed: {e}\n")),
                None => {
                    for d in &h.databases {
                        match &d.cause {
                            None => out.push_str(&format!("  re-harvested {}\n", d.database)),
                            Some(c) => out.push_str(&format!(
                                "  re-harvest of {} INCOMPLETE: {c}\n",
                                d.database
                            )),
                        }
                    }
                }
            }
        }
        out
    }
}

fn step_report(id: OperationId, s: OperationStepRecord) -> Result<StepReport> {
    let corrupt = |what: &str, e: serde_json::Error| Error::Corrupt {
        id,
        detail: format!("step {} {what}: {e}", s.index),
    };
    let call: Call = serde_json::from_value(s.call.clone()).map_err(|e| corrupt("call", e))?;
    let result = s
        .result
        .clone()
        .map(serde_json::from_value::<CallResult>)
        .transpose()
        .map_err(|e| corrupt("result", e))?;
    let error = s
        .error
        .clone()
        .map(serde_json::from_value::<CallError>)
        .transpose()
        .map_err(|e| corrupt("error", e))?;
    Ok(StepReport {
        index: s.index,
        request: call.to_string(),
        call,
        note: s.note.unwrap_or_default(),
        state: s.status.into(),
        attempts: s.attempts,
        // A done step keeps no error, a failed one no result: the store clears the other.
        result,
        error,
        started_at: s.started_at,
        finished_at: s.finished_at,
    })
}

/// An operation in a listing: no steps, only their counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationSummary {
    /// The operation.
    pub id: OperationId,
    /// Which scenario.
    pub kind: OperationKind,
    /// Where it stands.
    pub status: OperationStatus,
    /// One line for people.
    pub summary: String,
    /// When it was planned (unix ms).
    pub created_at: i64,
    /// Who planned it.
    pub created_by: Option<String>,
    /// Who applied it last.
    pub applied_by: Option<String>,
    /// When the latest apply finished (unix ms).
    pub finished_at: Option<i64>,
    /// Steps in all.
    pub steps: u64,
    /// Steps done.
    pub done: u64,
    /// Steps failed.
    pub failed: u64,
    /// Steps not attempted.
    pub not_attempted: u64,
    /// Steps interrupted.
    pub interrupted: u64,
}

impl OperationSummary {
    pub(crate) fn from_record(r: OperationRecord) -> Result<Self> {
        let kind = OperationKind::parse(&r.kind).ok_or_else(|| Error::Corrupt {
            id: r.id,
            detail: format!("unknown kind {:?}", r.kind),
        })?;
        Ok(OperationSummary {
            id: r.id,
            kind,
            status: r.status,
            summary: r.summary,
            created_at: r.created_at,
            created_by: r.created_by,
            applied_by: r.applied_by,
            finished_at: r.finished_at,
            steps: r.counts.total(),
            done: r.counts.done,
            failed: r.counts.failed,
            not_attempted: r.counts.pending,
            interrupted: r.counts.started,
        })
    }

    /// One line: id, time planned, kind, status, counts, summary.
    pub fn render(&self) -> String {
        format!(
            "{:>6}  {}  {:<10} {:<9} {}/{} done{}  {}",
            self.id,
            format_time(self.created_at),
            self.kind.as_str(),
            self.status.as_str(),
            self.done,
            self.steps,
            if self.failed > 0 { ", 1 failed" } else { "" },
            self.summary
        )
    }
}

/// A stored operation read back as a report (no re-harvest), for callers that hold a store but
/// no iManage client (listing, showing).
impl TryFrom<OperationRecord> for OperationReport {
    type Error = Error;

    fn try_from(record: OperationRecord) -> Result<Self> {
        OperationReport::from_record(record, None)
    }
}

impl TryFrom<OperationRecord> for OperationSummary {
    type Error = Error;

    fn try_from(record: OperationRecord) -> Result<Self> {
        OperationSummary::from_record(record)
    }
}

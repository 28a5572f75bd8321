//! A run as evidence: the report of one execution, built from its audit trail, and the check
//! that a report (Markdown or JSON, as Vigilo wrote it) still matches that trail.
//!
//! # What a report is
//!
//! [`ExecutionReport`] is a pure function ([`derive()`]) of three things:
//! - the audit entries linked to the execution (`link_execution` or target = its key), up to
//!   and including the **audit head** the report names: every fact of the report (who, when,
//!   statuses, notes, approvals) is read from these entries, and each line carries the `seq`
//!   and `hash` of the entries behind it;
//! - the body of the runbook version the run snapshotted (titles and estimates), pinned by its
//!   **version hash** ([`version_hash`]);
//! - the workspace's slug.
//!
//! Nothing else goes in (no "generated at" time, no current names): the same trail gives the
//! same report, byte for byte, whenever it is rendered. That is what makes it verifiable:
//! [`compare()`] renders the report again from the trail as of the head the file names and
//! compares it with the file, naming the first difference ("step 3 `By`: the report says
//! @bob, the audit trail says @carol (audit entries 40, 41)"). A changed character anywhere
//! in a Markdown or JSON report is found: in a fact, a hash, a `seq`, or in the text around
//! them. Line endings are normalised (CRLF to LF) before comparing, since ticket systems and
//! mail clients change them.
//!
//! Renderings: [`markdown::render`] (reads well pasted into a ticket or shown on a code host),
//! JSON (`serde_json` of [`ExecutionReport`], pretty, with the field names of the CLI
//! contract), and [`csv::render`] (one row per step, for spreadsheets; not verifiable, as it
//! leaves out the audit head).
//!
//! # Extending it
//!
//! Hand-overs, step notes and multi-approvals are lists ([`ExecutionFacts::handoffs`],
//! [`StepFacts::notes`], [`StepFacts::approvals`]) filled by [`derive()`] from the entries that
//! record them: a new kind of entry adds one arm to its fold. An entry of a kind the fold does
//! not know yet is still listed behind its step (or the execution), so every entry of the run
//! is accounted for.

pub mod compare;
pub mod csv;
pub mod derive;
pub mod markdown;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::execution::{ExecutionStatus, StepStatus};
use crate::ids::Key;
use crate::runbook::RunbookBody;

pub use compare::{Claimed, Mismatch, claimed, compare};
pub use derive::{DeriveError, derive};

/// The version of the report layout (Markdown and JSON), written into every report so that a
/// later Vigilo can still render (and so verify) reports of this layout.
pub const REPORT_FORMAT: u32 = 1;

/// The formats `exec report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// Markdown: a ticket, a code host. Verifiable.
    Md,
    /// JSON with the contract's field names. Verifiable.
    Json,
    /// CSV, one row per step (RFC 4180). Not verifiable (no audit head).
    Csv,
}

impl ReportFormat {
    /// The format's name (`md`, `json`, `csv`), also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
            ReportFormat::Csv => "csv",
        }
    }
}

/// An audit entry behind a line of the report: its place in the chain and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRef {
    /// The entry's `seq` in the workspace's chain.
    pub seq: u64,
    /// The entry's hash (lowercase hex SHA-256).
    pub hash: String,
}

/// A hand-over of the run from one operator to another (filled once hand-overs are recorded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The operator before.
    pub from: String,
    /// The operator after.
    pub to: String,
    /// Who handed it over (the operator, or an admin taking it over).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One approval of a step: who, as which role, when, and when it lapsed if it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalFact {
    /// The approver's handle.
    pub by: String,
    /// The role that satisfied the step's rule at that moment (a workspace role or a team role).
    pub role: String,
    /// When.
    pub at: DateTime<Utc>,
    /// When it lapsed (`approval-expires`), from its `execution.approval_expired` entry; absent
    /// for an approval that stood (reports of runs without lapses read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lapsed_at: Option<DateTime<Utc>>,
}

/// A note on a step (filled once step notes are recorded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteFact {
    /// Who wrote it.
    pub author: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The text, Markdown.
    pub text: String,
}

/// The facts of the execution as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionFacts {
    /// `EX-…`.
    pub key: Key,
    /// The runbook, `RB-…`.
    pub runbook: Key,
    /// The runbook's title at that version.
    pub title: String,
    /// The runbook version the run snapshotted.
    pub version: u32,
    /// [`version_hash`] of that version's body.
    pub version_hash: String,
    /// The run's operator (after every hand-over).
    pub operator: String,
    /// Every hand-over, oldest first.
    pub handoffs: Vec<Handoff>,
    /// `running`, `completed` or `aborted`.
    pub status: ExecutionStatus,
    /// A practice run.
    pub rehearsal: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it was sealed (completed, or aborted: `status` says which).
    pub completed_at: Option<DateTime<Utc>>,
    /// Minutes from start to seal, one decimal (sealed runs).
    pub actual_minutes: Option<f64>,
    /// The sum of the step estimates.
    pub est_minutes: u64,
    /// The linked change.
    pub change: Option<Key>,
    /// The linked incident.
    pub incident: Option<Key>,
    /// Why it was aborted.
    pub abort_reason: Option<String>,
    /// The entries behind these facts: the start, the seal, hand-overs.
    pub audit: Vec<AuditRef>,
}

/// The facts of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepFacts {
    /// 1-based order.
    pub order: u32,
    /// The step's title in the snapshotted version.
    pub title: String,
    /// Where it stands.
    pub status: StepStatus,
    /// Who marked it (done, skipped, failed).
    pub by: Option<String>,
    /// When it was marked.
    pub at: Option<DateTime<Utc>>,
    /// The estimate.
    pub est_minutes: u32,
    /// Minutes from becoming current to being marked, one decimal.
    pub actual_minutes: Option<f64>,
    /// The note (done, failed) or reason (skipped).
    pub note: Option<String>,
    /// Every approval, oldest first (a retried step is approved again).
    pub approvals: Vec<ApprovalFact>,
    /// Notes added to the step, oldest first.
    pub notes: Vec<NoteFact>,
    /// The entries behind the step's line, by `seq`.
    pub audit: Vec<AuditRef>,
}

/// The report of one execution: a typed value every surface renders. See the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionReport {
    /// [`REPORT_FORMAT`].
    pub report_format: u32,
    /// The workspace's slug.
    pub workspace: String,
    /// The execution.
    pub execution: ExecutionFacts,
    /// Every step, in order.
    pub steps: Vec<StepFacts>,
    /// The head of the workspace's chain when the report was made: the report covers the
    /// entries up to it.
    pub audit_head: AuditRef,
}

impl ExecutionReport {
    /// The report as pretty JSON (two-space indent) ending in a newline: the `--format json`
    /// document, verifiable by [`compare()`].
    pub fn to_json(&self) -> String {
        // Plain structs, strings, numbers and times: serialising cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The report in `format`.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Md => markdown::render(self),
            ReportFormat::Json => self.to_json(),
            ReportFormat::Csv => csv::render(self),
        }
    }

    /// The `seq` of every entry behind the report, in order, without repeats.
    pub fn entries(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .execution
            .audit
            .iter()
            .chain(self.steps.iter().flat_map(|s| &s.audit))
            .map(|r| r.seq)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }
}

/// The hash of a runbook version's content: the lowercase hex SHA-256 of the canonical JSON of
/// its [`RunbookBody`] — `serde_json` without `preserve_order`, so struct fields in declaration
/// order (`title`, `description`, `category`, `steps`; each step `id`, `title`, `description`,
/// `owner_role`, `est_minutes`, `expected_outcome`, `verification`, `rollback_note`,
/// `requires_approval`, `is_destructive`), no whitespace. The version number, author and time
/// are not part of it: two versions with the same content hash the same.
pub fn version_hash(body: &RunbookBody) -> String {
    let mut hasher = Sha256::new();
    // Validated fields, strings and numbers: serialising cannot fail.
    if let Ok(bytes) = serde_json::to_vec(body) {
        hasher.update(&bytes);
    }
    hex::encode(hasher.finalize())
}

/// A time as reports show it to people: `2026-05-01 09:00:05Z` (seconds; JSON keeps the
/// microseconds).
pub(crate) fn show_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

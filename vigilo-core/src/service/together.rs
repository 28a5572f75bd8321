//! Running together: notes on any step, hand-over and takeover, and the drift of a run whose
//! runbook got a newer published version. Each change is one command of the state machine
//! ([`Command::Note`], [`Command::HandOver`], [`Command::TakeOver`]) applied by
//! [`Vigilo::act`], so it is one event, one commit and one audit entry.

use super::executions::ActOutcome;
use super::{Vigilo, Who};
use crate::authz::{Action, Subject};
use crate::error::{Error, Result};
use crate::execution::machine::Command;
use crate::execution::{Drift, Execution, drift};
use crate::ids::Key;
use crate::runbook::diff::diff;
use crate::store::StoreError;

impl Vigilo {
    /// Adds a note to step `step` of `execution` (1-based; `None`: the current step, or once
    /// sealed the step the run stopped at) without changing its state. Allowed to whoever may
    /// act on the run ([`Action::ActOnExecution`]), sealed runs included (post-mortem notes).
    ///
    /// `seen_rev` is the revision the author saw (a card's, a form's): the same author's same
    /// text on the same step added after it is refused as a repeat ([`ExecError::DuplicateNote`](crate::execution::ExecError::DuplicateNote),
    /// a conflict), so a double click or a redelivered request adds it once. `None` uses the
    /// revision read now.
    pub async fn add_note(
        &self,
        who: &Who,
        execution: Key,
        step: Option<u32>,
        text: &str,
        seen_rev: Option<u64>,
    ) -> Result<ActOutcome> {
        self.actor(who).await?;
        let exec = self.load_execution(who, execution).await?;
        let step = match step {
            Some(s) => s,
            None => exec.note_step_index().map_or(1, |i| i as u32 + 1),
        };
        self.act(
            who,
            execution,
            Command::Note {
                step,
                text: text.to_owned(),
                seen_rev: Some(seen_rev.unwrap_or(exec.rev)),
            },
        )
        .await
    }

    /// Hands `execution` to the member `to` (a handle, `@` optional): allowed to its operator
    /// at that moment, an admin or the owner ([`Action::HandOverExecution`]). The new operator
    /// must be a current member who may execute runbooks ([`Action::ExecuteRunbook`]); for a
    /// rehearsal, any member. From then on the new operator is the one that counts: for who
    /// may act on the steps, and for `approver_must_differ` on its gated steps.
    pub async fn hand_over(&self, who: &Who, execution: Key, to: &str) -> Result<ActOutcome> {
        self.actor(who).await?;
        let exec = self.load_execution(who, execution).await?;
        let (user, membership) = self.member(who.workspace, to).await?;
        if !exec.rehearsal {
            crate::authz::authorize(
                user.id,
                membership.role,
                Action::ExecuteRunbook,
                &Subject::NONE,
            )
            .map_err(|_| {
                Error::refused(
                    crate::error::Rule::CannotOperate,
                    format!(
                        "@{} is a {} and may not execute runbooks, so cannot operate {execution}; hand it to an operator, an admin or the owner",
                        user.handle,
                        membership.role.as_str()
                    ),
                )
            })?;
        }
        self.act(who, execution, Command::HandOver { to: user.id })
            .await
    }

    /// Makes the actor the operator of `execution`: admins and the owner
    /// ([`Action::TakeOverExecution`]), e.g. for a run whose operator left.
    pub async fn take_over(&self, who: &Who, execution: Key) -> Result<ActOutcome> {
        self.act(who, execution, Command::TakeOver).await
    }

    /// The drift of `execution`: the newest published version of its runbook when it is newer
    /// than the run's own, with the number of steps changed and the diff. `None` when the run is
    /// on the newest published version. Any member.
    pub async fn execution_drift(&self, who: &Who, execution: Key) -> Result<Option<Drift>> {
        let exec = self.execution(who, execution).await?;
        self.drift_of(who, &exec).await
    }

    /// [`Vigilo::execution_drift`] of an execution already read (by `who`, a member).
    pub async fn drift_of(&self, who: &Who, exec: &Execution) -> Result<Option<Drift>> {
        let rb = match self.store.runbook(who.workspace, exec.runbook).await {
            Ok(rb) => rb,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(newer) = drift::newer_version(exec, &rb) else {
            return Ok(None);
        };
        let old = self
            .store
            .runbook_version(who.workspace, rb.id, exec.runbook_version)
            .await?;
        Ok(Some(Drift::of(diff(
            exec.runbook_version,
            &old.body,
            newer,
            &rb.body,
        ))))
    }
}

//! Gated steps waiting for approvals, for front ends that remind the people who can give them.
//! A system read: it names no acting member, like the audit check, and records the lapses due
//! by now on the way (each once, as every read does).

use chrono::{DateTime, Utc};

use super::Vigilo;
use crate::error::Result;
use crate::execution::{Execution, StepStatus};
use crate::ids::WorkspaceId;
use crate::roles::RoleRequirement;
use crate::store::ExecutionQuery;
use crate::workspace::{Membership, User};

/// How many open executions one call looks at, at most.
const MAX_OPEN: usize = 1000;

/// A running execution whose current step waits for approvals.
#[derive(Clone, Debug)]
pub struct WaitingApproval {
    /// The execution as it stands (lapses due by now recorded).
    pub execution: Execution,
    /// The step waiting (1-based).
    pub step: u32,
    /// When the step became current: with the step, it names one wait (a retried step waits
    /// anew).
    pub since: DateTime<Utc>,
    /// Approvals still missing.
    pub missing: u32,
    /// The members who could approve it now: active, their role satisfying the step's
    /// `owner_role`, not the run's operator while the workspace keeps `approver_must_differ`,
    /// and not among the approvals standing.
    pub approvers: Vec<(User, Membership)>,
    /// Whether this call recorded lapses of the execution (its card changed).
    pub lapsed_now: bool,
}

impl Vigilo {
    /// The running executions of `workspace` whose current step waits for approvals, with who
    /// could give them. Failed steps are left out (they are retried, skipped or aborted first).
    pub async fn waiting_approvals(&self, workspace: WorkspaceId) -> Result<Vec<WaitingApproval>> {
        let ws = self.store.workspace(workspace).await?;
        let open = self
            .store
            .list_executions(
                workspace,
                &ExecutionQuery {
                    open_only: true,
                    limit: MAX_OPEN,
                    ..Default::default()
                },
            )
            .await?;
        let mut members: Option<Vec<(User, Membership)>> = None;
        let mut out = Vec::new();
        for read in open {
            let needs = read
                .current()
                .is_some_and(|s| s.step.approvals_needed() > 0);
            if !needs {
                continue;
            }
            let rev = read.rev;
            let exec = self.record_lapses(workspace, read).await?;
            let Some(idx) = exec.current_index() else {
                continue;
            };
            let step = &exec.steps[idx];
            let missing = step.approvals_missing();
            if missing == 0 || step.status == StepStatus::Failed {
                continue;
            }
            if members.is_none() {
                members = Some(self.store.list_members(workspace).await?);
            }
            let requirement = RoleRequirement::from_owner_role(step.step.owner_role.as_str());
            let approvers = members
                .iter()
                .flatten()
                .filter(|(u, m)| {
                    m.is_active()
                        && requirement.satisfied_by(m.role, &m.team_roles)
                        && !(ws.policy.approver_must_differ && u.id == exec.operator)
                        && !step.approvals.iter().any(|a| a.by == u.id)
                })
                .cloned()
                .collect();
            out.push(WaitingApproval {
                step: idx as u32 + 1,
                since: step.started_at.unwrap_or(exec.started_at),
                missing,
                approvers,
                lapsed_now: exec.rev != rev,
                execution: exec,
            });
        }
        Ok(out)
    }
}

//! The `--json` shapes, named as the product page names fields (`key`, `version`, `title`,
//! `is_published`, `steps[].order`, `est_minutes`, `status`, `actual_minutes`, …). Users appear
//! by handle.

use serde_json::{Value, json};
use vigilo_core::change::{ChangeRequest, PlanTask};
use vigilo_core::execution::{
    Approval, Drift, ExecStep, Execution, ExecutionStatus, ExecutionSummary,
};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookBody, Step};
use vigilo_core::service::ChangeView;
use vigilo_core::workspace::{Membership, User, Workspace};

use super::Ctx;

/// A step of a runbook body.
pub fn step(order: usize, s: &Step) -> Value {
    json!({
        "order": order,
        "id": s.id,
        "title": s.title.as_str(),
        "description": s.description.as_str(),
        "owner_role": s.owner_role.as_str(),
        "est_minutes": s.est_minutes.get(),
        "expected_outcome": s.expected_outcome.as_str(),
        "verification": s.verification.as_str(),
        "rollback_note": s.rollback_note.as_str(),
        "requires_approval": s.requires_approval,
        "approvals_required": s.approvals_needed(),
        "approval_expires_minutes": s.approval_expires_minutes.map(|m| m.minutes()),
        "is_destructive": s.is_destructive,
    })
}

/// A step's approvals as `--json` shows them: `{by, role, at}` each (and, for lapsed ones,
/// `lapsed_at`).
async fn approvals(ctx: &Ctx, es: &ExecStep, list: &[Approval]) -> Value {
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let mut v = json!({
            "by": ctx.handle(a.by).await,
            "role": a.satisfied_as,
            "at": a.at,
        });
        if let (Some(t), Value::Object(m)) = (es.lapses_at(a), &mut v) {
            m.insert("lapses_at".into(), json!(t));
        }
        out.push(v);
    }
    Value::Array(out)
}

/// The steps of a body.
pub fn steps(b: &RunbookBody) -> Value {
    Value::Array(
        b.steps
            .iter()
            .enumerate()
            .map(|(i, s)| step(i + 1, s))
            .collect(),
    )
}

/// A runbook without its steps (lists).
pub async fn runbook_summary(ctx: &Ctx, rb: &Runbook) -> Value {
    json!({
        "id": rb.id,
        "key": rb.key,
        "version": rb.version,
        "title": rb.body.title.as_str(),
        "category": rb.body.category.as_str(),
        "owner": ctx.handle(rb.owner).await,
        "is_published": rb.is_published,
        "archived_at": rb.archived_at,
        "step_count": rb.body.steps.len(),
        "est_minutes": rb.body.est_total_minutes(),
        "created_at": rb.created_at,
        "updated_at": rb.updated_at,
    })
}

/// A runbook with its description and steps; `body` and `version` may be an older version's.
pub async fn runbook(ctx: &Ctx, rb: &Runbook, version: u32, body: &RunbookBody) -> Value {
    let mut v = runbook_summary(ctx, rb).await;
    if let Value::Object(m) = &mut v {
        m.insert("version".into(), json!(version));
        m.insert("current_version".into(), json!(rb.version));
        m.insert("title".into(), json!(body.title.as_str()));
        m.insert("category".into(), json!(body.category.as_str()));
        m.insert("description".into(), json!(body.description.as_str()));
        m.insert("step_count".into(), json!(body.steps.len()));
        m.insert("est_minutes".into(), json!(body.est_total_minutes()));
        m.insert("steps".into(), steps(body));
    }
    v
}

/// An execution with its steps and timing, its operator and hand-overs, every step's notes,
/// and `newer_version` (from `drift`: the newest published version when newer than the run's,
/// else `null`).
pub async fn execution(
    ctx: &Ctx,
    e: &Execution,
    s: &ExecutionSummary,
    drift: Option<&Drift>,
) -> Value {
    let mut steps = Vec::with_capacity(e.steps.len());
    for (i, (es, t)) in e.steps.iter().zip(&s.steps).enumerate() {
        let mut notes = Vec::with_capacity(es.notes.len());
        for n in &es.notes {
            notes.push(json!({
                "author": ctx.handle(n.author).await,
                "at": n.at,
                "text": n.text.as_str(),
            }));
        }
        steps.push(json!({
            "order": i + 1,
            "id": es.step.id,
            "title": es.step.title.as_str(),
            "status": es.status.as_str(),
            "owner_role": es.step.owner_role.as_str(),
            "est_minutes": es.step.est_minutes.get(),
            "requires_approval": es.step.requires_approval,
            "approvals_required": es.step.approvals_needed(),
            "approval_expires_minutes": es.step.approval_expires_minutes.map(|m| m.minutes()),
            "approvals": approvals(ctx, es, &es.approvals).await,
            "approvals_missing": es.approvals_missing(),
            "lapsed_approvals": approvals(ctx, es, &es.lapsed).await,
            "is_destructive": es.step.is_destructive,
            "started_at": es.started_at,
            "completed_at": es.completed_at,
            "note": es.note.as_ref().map(|n| n.as_str()),
            "actual_minutes": t.actual_minutes,
            "variance_minutes": t.variance_minutes,
            "actor": ctx.handle_opt(es.actor).await,
            "approved_by": ctx.handle_opt(es.approvals.first().map(|a| a.by)).await,
            "approved_at": es.approvals.first().map(|a| a.at),
            "failures": es.failures,
            "notes": notes,
        }));
    }
    let mut handoffs = Vec::with_capacity(e.handoffs.len());
    for h in &e.handoffs {
        handoffs.push(json!({
            "from": ctx.handle(h.from).await,
            "to": ctx.handle(h.to).await,
            "by": ctx.handle(h.by).await,
            "at": h.at,
            "takeover": h.is_takeover(),
        }));
    }
    json!({
        "id": e.id,
        "key": e.key,
        "runbook": e.runbook_key,
        "runbook_version": e.runbook_version,
        "title": e.title,
        "status": e.status.as_str(),
        "operator": ctx.handle(e.operator).await,
        "change": e.change,
        "incident": e.incident,
        "rehearsal": e.rehearsal,
        "started_at": e.started_at,
        "completed_at": (e.status == ExecutionStatus::Completed).then_some(e.sealed_at).flatten(),
        "sealed_at": e.sealed_at,
        "abort_reason": e.abort_reason.as_ref().map(|r| r.as_str()),
        "current_step": e.current_index().map(|i| i + 1),
        "est_minutes": s.est_minutes,
        "actual_minutes": s.actual_minutes,
        "variance_minutes": s.variance_minutes,
        "done": s.done,
        "skipped": s.skipped,
        "failed": s.failed,
        "pending": s.pending,
        "steps": steps,
        "started_by": ctx.handle(e.started_by()).await,
        "handoffs": handoffs,
        "newer_version": drift.map(|d| d.newer_version),
        "newer_version_steps_changed": drift.map(|d| d.steps_changed),
    })
}

/// An execution in a list.
pub async fn execution_summary(ctx: &Ctx, e: &Execution) -> Value {
    json!({
        "id": e.id,
        "key": e.key,
        "runbook": e.runbook_key,
        "runbook_version": e.runbook_version,
        "title": e.title,
        "status": e.status.as_str(),
        "operator": ctx.handle(e.operator).await,
        "change": e.change,
        "incident": e.incident,
        "rehearsal": e.rehearsal,
        "started_at": e.started_at,
        "sealed_at": e.sealed_at,
        "current_step": e.current_index().map(|i| i + 1),
        "step_count": e.steps.len(),
    })
}

/// A task of a change's plan.
pub fn task(order: usize, t: &PlanTask) -> Value {
    json!({
        "order": order,
        "id": t.id,
        "from_step": t.from_step,
        "title": t.title,
        "description": t.description.as_str(),
        "owner_role": t.owner_role.as_str(),
        "est_minutes": t.est_minutes.get(),
        "expected_outcome": t.expected_outcome.as_str(),
        "verification": t.verification.as_str(),
        "rollback_note": t.rollback_note.as_str(),
        "requires_approval": t.requires_approval,
        "is_destructive": t.is_destructive,
    })
}

/// A change without its plan (lists).
pub async fn change_summary(ctx: &Ctx, c: &ChangeRequest) -> Value {
    json!({
        "id": c.id,
        "key": c.key,
        "title": c.title.as_str(),
        "status": c.status.as_str(),
        "owner": ctx.handle(c.owner).await,
        "source": c.source.as_ref().map(|s| json!({ "runbook": s.key, "version": s.version })),
        "task_count": c.tasks.len(),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
}

/// A change with its plan and source banner.
pub async fn change(ctx: &Ctx, v: &ChangeView) -> Value {
    let c = &v.change;
    let mut out = change_summary(ctx, c).await;
    if let Value::Object(m) = &mut out {
        m.insert("description".into(), json!(c.description.as_str()));
        m.insert(
            "newer_version_available".into(),
            json!(v.newer_version_available),
        );
        m.insert(
            "tasks".into(),
            Value::Array(
                c.tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| task(i + 1, t))
                    .collect(),
            ),
        );
    }
    out
}

/// An incident.
pub async fn incident(ctx: &Ctx, i: &Incident) -> Value {
    json!({
        "id": i.id,
        "key": i.key,
        "title": i.title.as_str(),
        "status": i.status.as_str(),
        "created_by": ctx.handle(i.created_by).await,
        "created_at": i.created_at,
        "resolved_at": i.resolved_at,
    })
}

/// A member.
pub fn member(u: &User, m: &Membership) -> Value {
    json!({
        "id": u.id,
        "handle": u.handle.as_str(),
        "name": m.display_name.as_str(),
        "role": m.role.as_str(),
        "team_roles": m.team_roles.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "chat_identities": m.chat_identities,
        "removed_at": m.removed_at,
    })
}

/// A workspace.
pub fn workspace(w: &Workspace) -> Value {
    json!({
        "id": w.id,
        "slug": w.slug.as_str(),
        "slack_team": w.slack_team,
        "approver_must_differ": w.policy.approver_must_differ,
        "created_at": w.created_at,
    })
}

//! The demo workspace a fresh console database starts with: workspace `acme`, four people with
//! different roles, and three realistic published runbooks.
//!
//! | user | rank | team roles |
//! |---|---|---|
//! | alice | owner | — |
//! | bob | operator | sre |
//! | carol | member | dba |
//! | dave | admin | — |
//!
//! The workspace keeps the default policy `approver_must_differ`: whoever starts an execution
//! cannot approve its gated steps. So alice starts the TLS rotation, carol (dba) is refused when
//! she tries to approve its `sre` step, and bob approves it (`/as bob`).

use vigilo_core::error::Result;
use vigilo_core::ids::Key;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, NewMember, Vigilo, Who};
use vigilo_core::workspace::{User, Workspace};

/// The demo workspace's slug.
pub const DEMO_WORKSPACE: &str = "acme";
/// The demo workspace's owner, the console's default user.
pub const DEMO_OWNER: &str = "alice";

/// What [`seed_demo`] created.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// The workspace.
    pub workspace: Workspace,
    /// Its owner.
    pub owner: User,
    /// The runbooks, in key order.
    pub runbooks: Vec<(Key, String)>,
}

/// True when the database has no workspace yet.
pub async fn is_fresh(vigilo: &Vigilo) -> Result<bool> {
    Ok(vigilo.workspaces().await?.is_empty())
}

/// Creates the demo workspace, its members and its runbooks.
pub async fn seed_demo(vigilo: &Vigilo) -> Result<Seeded> {
    let (workspace, owner) = vigilo
        .create_workspace(DEMO_WORKSPACE, DEMO_OWNER, "Alice Martin")
        .await?;
    let who = Who::new(workspace.id, owner.id);
    let members = [
        ("bob", "Bob Okafor", WorkspaceRole::Operator, vec!["sre"]),
        ("carol", "Carol Jensen", WorkspaceRole::Member, vec!["dba"]),
        ("dave", "Dave Lindqvist", WorkspaceRole::Admin, vec![]),
    ];
    let mut ids = std::collections::HashMap::new();
    for (handle, name, role, teams) in members {
        let (user, _) = vigilo
            .add_member(
                &who,
                NewMember {
                    handle: handle.into(),
                    display_name: name.into(),
                    role,
                    team_roles: teams.into_iter().map(String::from).collect(),
                    chat_identity: None,
                },
            )
            .await?;
        ids.insert(handle, user.id);
    }
    let mut runbooks = Vec::new();
    for (owner_handle, input) in demo_runbooks() {
        let title = input.title.clone();
        let rb = vigilo
            .create_runbook(
                &who,
                input,
                CreateRunbook {
                    owner: ids.get(owner_handle).copied(),
                    publish: true,
                    ..Default::default()
                },
            )
            .await?;
        runbooks.push((rb.key, title));
    }
    tracing::info!(workspace = DEMO_WORKSPACE, "seeded the demo workspace");
    Ok(Seeded {
        workspace,
        owner,
        runbooks,
    })
}

/// The demo runbooks with their owners' handles: TLS rotation (RB-00001), orders database
/// restore (RB-00002), checkout deploy rollback (RB-00003).
pub fn demo_runbooks() -> Vec<(&'static str, RunbookInput)> {
    vec![
        ("bob", tls_rotation()),
        ("dave", orders_restore()),
        ("bob", checkout_rollback()),
    ]
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn tls_rotation() -> RunbookInput {
    RunbookInput {
        title: s("Rotate the TLS certificate on the edge proxies"),
        description: s(
            "Replace the `shop.acme.example` certificate on the four edge proxies \
            (`edge-1` … `edge-4`) before it expires. Run it from the bastion host with the \
            `edge-admin` role. Certificates live in Vault under `secret/edge/tls`; the \
            [certificate inventory](https://wiki.acme.example/ops/cert-inventory) lists expiries.",
        ),
        category: s("security"),
        steps: vec![
            StepInput {
                title: s("Announce the rotation"),
                description: s(
                    "Post in `#ops-changes` that the edge TLS rotation starts now, with a \
                    link to the change request. Ask on-call to keep an eye on the 5xx dashboard.",
                ),
                owner_role: s("sre"),
                est_minutes: 5,
                expected_outcome: s("The announcement is posted and on-call has acknowledged it."),
                ..Default::default()
            },
            StepInput {
                title: s("Fetch and check the new certificate"),
                description: s("Fetch the new key pair from Vault to the bastion:\n\n\
                    ```sh\nvault kv get -field=cert secret/edge/tls/2025 > /tmp/edge.pem\n\
                    vault kv get -field=key secret/edge/tls/2025 > /tmp/edge.key\n```\n\n\
                    Check that the subject, the SANs and the expiry are right, and that the key \
                    matches the certificate."),
                owner_role: s("sre"),
                est_minutes: 10,
                expected_outcome: s(
                    "Subject `CN=shop.acme.example`, SANs include `www.shop.acme.example`, \
                    expiry about 13 months out; both modulus hashes are equal.",
                ),
                verification: s(
                    "openssl x509 -in /tmp/edge.pem -noout -subject -enddate -ext subjectAltName && \
                    diff <(openssl x509 -in /tmp/edge.pem -noout -modulus | sha256sum) \
                    <(openssl rsa -in /tmp/edge.key -noout -modulus | sha256sum)",
                ),
                ..Default::default()
            },
            StepInput {
                title: s("Back up the current certificate"),
                description: s(
                    "On every edge proxy, copy the live pair next to itself:\n\n\
                    ```sh\nfor h in edge-1 edge-2 edge-3 edge-4; do\n  ssh $h 'sudo cp -a /etc/nginx/tls/edge.pem /etc/nginx/tls/edge.pem.bak && \
                    sudo cp -a /etc/nginx/tls/edge.key /etc/nginx/tls/edge.key.bak'\ndone\n```",
                ),
                owner_role: s("sre"),
                est_minutes: 5,
                expected_outcome: s(
                    "Each proxy has `edge.pem.bak` and `edge.key.bak` with today's date.",
                ),
                verification: s(
                    "for h in edge-1 edge-2 edge-3 edge-4; do ssh $h ls -l /etc/nginx/tls/; done",
                ),
                ..Default::default()
            },
            StepInput {
                title: s("Install the new certificate and reload the proxies"),
                description: s(
                    "Copy the new pair over the live one on each proxy, test the nginx \
                    configuration, and reload **one proxy at a time**, waiting 30 seconds between \
                    them. This overwrites the live certificate: it is the point of no easy return.",
                ),
                owner_role: s("sre"),
                est_minutes: 15,
                expected_outcome: s("`nginx -t` passes on every proxy and each reload returns 0."),
                verification: s(
                    "for h in edge-1 edge-2 edge-3 edge-4; do ssh $h 'sudo nginx -t && sudo systemctl reload nginx'; sleep 30; done",
                ),
                rollback_note: s(
                    "Restore `edge.pem.bak` and `edge.key.bak` over the live files on the \
                    affected proxies and reload nginx; the old certificate is valid until its expiry.",
                ),
                requires_approval: true,
                is_destructive: true,
                ..Default::default()
            },
            StepInput {
                title: s("Verify the served certificate from outside"),
                description: s(
                    "From a machine outside the VPN, check that every proxy serves the new \
                    certificate and that browsers see a complete chain.",
                ),
                owner_role: s("sre"),
                est_minutes: 5,
                expected_outcome: s(
                    "The new serial and expiry on all four proxies; `Verify return code: 0 (ok)`.",
                ),
                verification: s(
                    "for h in edge-1 edge-2 edge-3 edge-4; do echo | openssl s_client -connect $h.acme.example:443 -servername shop.acme.example 2>/dev/null | openssl x509 -noout -serial -enddate; done",
                ),
                ..Default::default()
            },
            StepInput {
                title: s("Update the inventory and close out"),
                description: s(
                    "Record the new serial and expiry in the certificate inventory, delete \
                    `/tmp/edge.pem` and `/tmp/edge.key` from the bastion, and post the result in \
                    `#ops-changes`.",
                ),
                owner_role: s("sre"),
                est_minutes: 5,
                expected_outcome: s(
                    "The inventory shows the new expiry; no key material is left on the bastion.",
                ),
                verification: s("ls /tmp/edge.* 2>/dev/null | wc -l   # expect 0"),
                ..Default::default()
            },
        ],
    }
}

fn orders_restore() -> RunbookInput {
    RunbookInput {
        title: s("Restore the orders database from backup"),
        description: s(
            "Point-in-time restore of the `orders` PostgreSQL cluster on `db-orders-1` \
            with pgBackRest, for data loss or corruption. Writes are stopped for the whole \
            procedure; expect about an hour of checkout downtime.",
        ),
        category: s("database"),
        steps: vec![
            StepInput {
                title: s("Stop writes to the orders database"),
                description: s(
                    "Put the shop in maintenance mode so no order is written during the restore:\n\n\
                    ```sh\nkubectl -n shop scale deploy/orders-api --replicas=0\n```",
                ),
                owner_role: s("sre"),
                est_minutes: 5,
                expected_outcome: s("The status page shows maintenance; `orders-api` has no pods."),
                verification: s(
                    "kubectl -n shop get deploy orders-api -o jsonpath='{.status.replicas}'",
                ),
                rollback_note: s("Scale `orders-api` back to 6 replicas."),
                ..Default::default()
            },
            StepInput {
                title: s("Choose the restore point"),
                description: s(
                    "List the backups and agree with the incident lead on the target time: \
                    the last moment before the data went bad, in UTC.",
                ),
                owner_role: s("dba"),
                est_minutes: 10,
                expected_outcome: s("A target time covered by a full backup plus archived WAL."),
                verification: s("sudo -u postgres pgbackrest --stanza=orders info"),
                ..Default::default()
            },
            StepInput {
                title: s("Stop PostgreSQL and restore"),
                description: s(
                    "Stop the cluster and restore to the chosen time with delta restore. \
                    The current data directory is **overwritten**.\n\n\
                    ```sh\nsudo systemctl stop postgresql@16-main\nsudo -u postgres pgbackrest --stanza=orders --delta \\\n  --type=time \"--target=<restore point>\" --target-action=promote restore\n```",
                ),
                owner_role: s("dba"),
                est_minutes: 30,
                expected_outcome: s(
                    "pgBackRest ends with `restore command end: completed successfully`.",
                ),
                verification: s("sudo tail -n 20 /var/log/pgbackrest/orders-restore.log"),
                rollback_note: s(
                    "None once started: the data directory is overwritten. If the restore \
                    fails, restore again from the previous full backup.",
                ),
                requires_approval: true,
                is_destructive: true,
                ..Default::default()
            },
            StepInput {
                title: s("Start PostgreSQL and check the data"),
                description: s(
                    "Start the cluster, wait for recovery to finish, and check that the newest \
                    order is just before the restore point.",
                ),
                owner_role: s("dba"),
                est_minutes: 10,
                expected_outcome: s(
                    "`pg_is_in_recovery()` is false; the newest order is from just before the target time.",
                ),
                verification: s(
                    "sudo systemctl start postgresql@16-main && psql -h db-orders-1 -U postgres -d orders -c \"select pg_is_in_recovery(), max(created_at) from orders;\"",
                ),
                ..Default::default()
            },
            StepInput {
                title: s("Reopen writes"),
                description: s(
                    "Scale `orders-api` back up and take the shop out of maintenance mode; \
                    place a test order with the internal test card.",
                ),
                owner_role: s("sre"),
                est_minutes: 5,
                expected_outcome: s(
                    "The test order appears in the admin panel; error rates are normal.",
                ),
                verification: s(
                    "kubectl -n shop scale deploy/orders-api --replicas=6 && kubectl -n shop rollout status deploy/orders-api",
                ),
                ..Default::default()
            },
        ],
    }
}

fn checkout_rollback() -> RunbookInput {
    RunbookInput {
        title: s("Roll back a bad deploy of the checkout service"),
        description: s(
            "When a checkout release raises errors or latency, roll back to the previous \
            revision first and investigate afterwards.",
        ),
        category: s("deploy"),
        steps: vec![
            StepInput {
                title: s("Confirm the bad release"),
                description: s(
                    "Compare the error rate and p95 latency before and after the last rollout \
                    on the checkout dashboard, and note the bad revision.",
                ),
                owner_role: s("operator"),
                est_minutes: 5,
                expected_outcome: s("The regression starts with the last rollout."),
                verification: s("kubectl -n shop rollout history deploy/checkout"),
                ..Default::default()
            },
            StepInput {
                title: s("Freeze the pipeline"),
                description: s(
                    "Pause the `checkout` pipeline so no new release goes out during the rollback.",
                ),
                owner_role: s("operator"),
                est_minutes: 2,
                expected_outcome: s("The pipeline shows *paused*."),
                ..Default::default()
            },
            StepInput {
                title: s("Roll back to the previous revision"),
                description: s("```sh\nkubectl -n shop rollout undo deploy/checkout\n```"),
                owner_role: s("operator"),
                est_minutes: 5,
                expected_outcome: s("The rollout completes and every pod runs the previous image."),
                verification: s("kubectl -n shop rollout status deploy/checkout --timeout=5m"),
                rollback_note: s(
                    "Roll forward with `kubectl -n shop rollout undo deploy/checkout` again.",
                ),
                ..Default::default()
            },
            StepInput {
                title: s("Watch the error rate"),
                description: s("Watch the checkout dashboard for ten minutes."),
                owner_role: s("operator"),
                est_minutes: 10,
                expected_outcome: s(
                    "Error rate and p95 latency are back to their level before the release.",
                ),
                ..Default::default()
            },
            StepInput {
                title: s("Report and unfreeze"),
                description: s(
                    "Post what happened in the incident channel, open a ticket for the fix, \
                    and unpause the pipeline once a fixed release is ready.",
                ),
                owner_role: s("operator"),
                est_minutes: 5,
                ..Default::default()
            },
        ],
    }
}

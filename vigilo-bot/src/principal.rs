//! Who is really behind a terminal surface (the CLI, the console): the operating-system user
//! and host, recorded in every audit entry next to the acting user that `--as` or `/as` claims.
//!
//! `--as` is a claim made by whoever holds the database credentials; the principal is what the
//! machine says about the process, so an auditor can tell who typed the command.

use vigilo_core::audit::{Origin, Surface};

/// `user@host` of this process: the user from `USER` or `LOGNAME` (else the numeric uid), the
/// host from the kernel (else `HOSTNAME`).
pub fn local_principal() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .or_else(uid)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{}@{}", user.trim(), host)
}

/// The origin of a terminal surface's changes.
pub fn local_origin(surface: Surface) -> Origin {
    Origin::new(surface, local_principal())
}

/// The real uid from `/proc/self/status`, as `uid:N`.
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let uid = line.split_whitespace().nth(1)?;
    Some(format!("uid:{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_principal_names_a_user_and_a_host() {
        let p = local_principal();
        let (user, host) = p.split_once('@').unwrap_or_default();
        assert!(!user.is_empty() && !host.is_empty(), "{p}");
    }
}

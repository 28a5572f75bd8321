//! Step-level diffs between two runbook versions.

//! Rendering of diffs for people.

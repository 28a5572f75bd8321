//! [`MessageRefs`]: how a surface turns the engine's symbolic [`Anchor`]s into its own message
//! references (Slack: channel and `ts`).
//!
//! The flow, for every reply of the engine:
//! 1. `refs.place(workspace, &reply.target)` says where to send it: a new message (optionally
//!    in the thread of a known message) or an update of a known message.
//! 2. After posting, if `reply.anchor` is set, `refs.remember(workspace, anchor, id)` records
//!    the platform's id for that message.
//!
//! When a reference is unknown (the surface restarted, or evicted it), an update falls back to
//! a new message in the execution's thread, or in the channel: nothing is lost, only placed
//! less neatly. A surface that receives a button press can call
//! [`MessageRefs::remember`] with the pressed message's id first (the button's
//! [`ButtonValue::anchor`](super::reply::ButtonValue::anchor)), so updates find their card
//! even after a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use vigilo_core::ids::WorkspaceId;

use super::reply::{Anchor, Target};

/// How many references a [`MessageRefs`] keeps by default before forgetting the oldest.
pub const DEFAULT_CAPACITY: usize = 50_000;

/// Where to send a reply, resolved against the known references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement<R> {
    /// Post a new message; in the thread of `thread` when given.
    Post {
        /// The parent message, if the reply belongs in a thread.
        thread: Option<R>,
    },
    /// Replace this message.
    Update(R),
    /// Show nothing: a refresh of a message the surface does not know.
    Skip,
}

/// A bounded, thread-safe map from anchors to a surface's message references `R`.
#[derive(Debug)]
pub struct MessageRefs<R> {
    inner: Mutex<Inner<R>>,
    capacity: usize,
}

#[derive(Debug)]
struct Inner<R> {
    map: HashMap<(WorkspaceId, Anchor), R>,
    order: VecDeque<(WorkspaceId, Anchor)>,
}

impl<R: Clone> Default for MessageRefs<R> {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<R: Clone> MessageRefs<R> {
    /// An empty map keeping [`DEFAULT_CAPACITY`] references.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map keeping at most `capacity` references (the oldest are forgotten first).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<R>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `anchor` in `workspace` is the message `reference`.
    pub fn remember(&self, workspace: WorkspaceId, anchor: Anchor, reference: R) {
        let mut inner = self.lock();
        let key = (workspace, anchor);
        if inner.map.insert(key, reference).is_none() {
            inner.order.push_back(key);
        }
        while inner.map.len() > self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.map.remove(&old);
                }
                None => break,
            }
        }
    }

    /// The reference of `anchor`, if known.
    pub fn get(&self, workspace: WorkspaceId, anchor: Anchor) -> Option<R> {
        self.lock().map.get(&(workspace, anchor)).cloned()
    }

    /// Where a reply with `target` goes; see the module documentation for the fallbacks.
    pub fn place(&self, workspace: WorkspaceId, target: &Target) -> Placement<R> {
        match *target {
            Target::NewMessage => Placement::Post { thread: None },
            Target::Thread(parent) => Placement::Post {
                thread: self.get(workspace, parent),
            },
            Target::Update(anchor) => match self.get(workspace, anchor) {
                Some(r) => Placement::Update(r),
                None => Placement::Post {
                    thread: self.get(workspace, Anchor::Execution(anchor.execution())),
                },
            },
            Target::Refresh(anchor) => match self.get(workspace, anchor) {
                Some(r) => Placement::Update(r),
                None => Placement::Skip,
            },
        }
    }

    /// How many references are kept.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when no reference is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use vigilo_core::ids::{Key, KeyKind};

    use super::*;

    #[test]
    fn places_and_falls_back() {
        let ws = WorkspaceId::new();
        let ex = Key::new(KeyKind::Execution, 1);
        let refs: MessageRefs<&str> = MessageRefs::with_capacity(2);
        let card = Anchor::StepCard {
            execution: ex,
            step: 1,
        };
        assert_eq!(
            refs.place(ws, &Target::Update(card)),
            Placement::Post { thread: None }
        );
        refs.remember(ws, Anchor::Execution(ex), "ts-header");
        refs.remember(ws, card, "ts-card");
        assert_eq!(
            refs.place(ws, &Target::Update(card)),
            Placement::Update("ts-card")
        );
        assert_eq!(
            refs.place(ws, &Target::Refresh(card)),
            Placement::Update("ts-card")
        );
        let other = Anchor::Execution(Key::new(KeyKind::Execution, 9));
        assert_eq!(refs.place(ws, &Target::Refresh(other)), Placement::Skip);
        assert_eq!(
            refs.place(ws, &Target::Thread(Anchor::Execution(ex))),
            Placement::Post {
                thread: Some("ts-header")
            }
        );
        refs.remember(
            ws,
            Anchor::StepCard {
                execution: ex,
                step: 2,
            },
            "ts-2",
        );
        assert_eq!(refs.len(), 2);
        assert_eq!(refs.get(ws, Anchor::Execution(ex)), None);
    }
}

//! # vigilo-bot
//!
//! Vigilo's chat front ends.
//!
//! - [`chat`]: the platform-neutral engine: command parser, reply model, handlers calling
//!   [`vigilo_core::service::Vigilo`], markdown rendering and platform limits. A surface parses
//!   nothing itself: it builds a [`chat::ChatContext`], calls [`chat::ChatEngine::handle_text`]
//!   or [`chat::ChatEngine::click`], and shows the [`chat::Reply`]s it gets back.
//! - [`console`]: the same conversation in a terminal (`vigilo console`), scriptable through
//!   standard input; [`console::seed`] is the demo workspace a fresh console database starts
//!   with.

// Every public item says what it is and why: the crates are meant to be embedded.
#![deny(missing_docs)]

pub mod chart;
pub mod chat;
pub mod cli;
pub mod console;
pub mod principal;
pub mod slack;

//! Interaction payloads as Slack sends them, read leniently.
//!
//! Slack's payloads vary by install and surface more than any typed model admits: an org-wide
//! (Enterprise Grid) install sends `"team": null` and puts the team in `user.team_id` or
//! `view.team_id`; a click from a workflow function has no `response_url` and no `trigger_id`;
//! messages carry block types and fields added after any SDK was written. So the payload is read
//! as JSON and only the fields Vigilo needs are picked out, each optional: anything that is a
//! JSON object is an [`Interaction`], and what is missing is decided by the handler (which
//! answers 200 and, where it can, explains privately).

use serde_json::Value;

/// The fields of an interaction payload Vigilo uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interaction {
    /// `block_actions`, `view_submission`, `view_closed`, `shortcut`, …
    pub kind: String,
    /// The Slack team of the person acting (`T…`), from wherever the payload carries it:
    /// `team.id`, else `user.team_id`, else `view.team_id`.
    pub team: Option<String>,
    /// The Enterprise Grid organisation (`E…`), if any.
    pub enterprise: Option<String>,
    /// The person acting (`U…` or `W…`).
    pub user: Option<String>,
    /// The channel the interaction happened in.
    pub channel: Option<String>,
    /// The message the clicked button is on.
    pub message_ts: Option<String>,
    /// The thread of that message.
    pub thread_ts: Option<String>,
    /// Whether that message is ephemeral.
    pub is_ephemeral: bool,
    /// What opens a modal in answer (absent on some surfaces).
    pub trigger_id: Option<String>,
    /// The first action of a `block_actions` payload.
    pub action: Option<Action>,
    /// The modal of a `view_submission`.
    pub view: Option<View>,
}

/// One action of a `block_actions` payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Action {
    /// The element's `action_id`.
    pub action_id: String,
    /// The button's `value`, if it has one.
    pub value: Option<String>,
}

/// The modal of a `view_submission` payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The modal's `callback_id`.
    pub callback_id: Option<String>,
    /// The modal's `private_metadata`.
    pub private_metadata: Option<String>,
    /// The whole `state.values` object, to read inputs from.
    pub state_values: Value,
}

impl View {
    /// The `value` of the input `action_id` in block `block_id`, if given.
    pub fn input(&self, block_id: &str, action_id: &str) -> Option<String> {
        self.state_values
            .get(block_id)?
            .get(action_id)?
            .get("value")?
            .as_str()
            .map(str::to_owned)
    }
}

/// Why a payload could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all.
    #[error("malformed payload JSON")]
    NotJson,
    /// JSON, but not an object with a `type`.
    #[error("the payload has no type")]
    NoType,
}

/// Reads an interaction payload; see the module documentation.
pub fn parse(json: &str) -> Result<Interaction, PayloadError> {
    let value: Value = serde_json::from_str(json).map_err(|_| PayloadError::NotJson)?;
    from_value(&value)
}

/// Reads an interaction payload already parsed as JSON (Socket Mode hands one over).
pub fn from_value(v: &Value) -> Result<Interaction, PayloadError> {
    let kind = text(v, "/type").ok_or(PayloadError::NoType)?;
    let team = text(v, "/team/id")
        .or_else(|| text(v, "/user/team_id"))
        .or_else(|| text(v, "/view/team_id"))
        .or_else(|| text(v, "/team_id"));
    let enterprise = text(v, "/enterprise/id")
        .or_else(|| text(v, "/user/enterprise_id"))
        .or_else(|| text(v, "/enterprise_id"));
    let action = v
        .get("actions")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .map(|a| Action {
            action_id: text(a, "/action_id").unwrap_or_default(),
            value: text(a, "/value"),
        });
    let view = v.get("view").filter(|x| x.is_object()).map(|view| View {
        callback_id: text(view, "/callback_id"),
        private_metadata: text(view, "/private_metadata"),
        state_values: view
            .pointer("/state/values")
            .cloned()
            .unwrap_or(Value::Null),
    });
    Ok(Interaction {
        kind,
        team,
        enterprise,
        user: text(v, "/user/id"),
        channel: text(v, "/channel/id").or_else(|| text(v, "/container/channel_id")),
        message_ts: text(v, "/container/message_ts").or_else(|| text(v, "/message/ts")),
        thread_ts: text(v, "/message/thread_ts").or_else(|| text(v, "/container/thread_ts")),
        is_ephemeral: v
            .pointer("/container/is_ephemeral")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        trigger_id: text(v, "/trigger_id"),
        action,
        view,
    })
}

/// A non-empty string at `pointer`.
fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_comes_from_the_user_when_team_is_null() {
        let p = parse(
            r#"{"type":"view_submission","team":null,"user":{"id":"W1","team_id":"T9"},
                "view":{"team_id":"T9","callback_id":"c","state":{"values":{"b":{"a":{"value":"hi"}}}}},
                "enterprise":{"id":"E1"}}"#,
        )
        .unwrap();
        assert_eq!(p.team.as_deref(), Some("T9"));
        assert_eq!(p.enterprise.as_deref(), Some("E1"));
        assert_eq!(p.view.unwrap().input("b", "a").as_deref(), Some("hi"));
    }

    #[test]
    fn missing_fields_are_none() {
        let p = parse(r#"{"type":"block_actions","actions":[{"action_id":"a"}]}"#).unwrap();
        assert_eq!(p.trigger_id, None);
        assert_eq!(p.action.unwrap().value, None);
        assert_eq!(parse("{nope"), Err(PayloadError::NotJson));
        assert_eq!(parse("[1]"), Err(PayloadError::NoType));
    }
}

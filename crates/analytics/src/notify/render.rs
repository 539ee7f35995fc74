//! What a notification says in words (e-mail): read from the notice's JSON
//! (`{"event", "alert"}`) generically, so that fields an alert gains later
//! (an explanation, the rule's rationalization) appear once they are
//! there, and their absence leaves the message whole.

use std::fmt::Write as _;

use serde_json::Value;

use super::email::Rendered;

/// The rationalization fields of a rule, as they may travel with an alert
/// (DESIGN.md, "Alarm management"), and their labels.
const RATIONALIZATION: [(&str, &str); 4] = [
    ("cause", "Cause"),
    ("consequence", "Consequence"),
    ("operator_action", "Operator action"),
    ("response_time", "Response time"),
];

/// Longest text of one field in a message.
const FIELD_CHARS: usize = 2000;

/// The parts of a notice a message reads. `event` and `alert` are the
/// notice's objects; a flat notice (no `alert` object) is read as both.
#[derive(Debug, Clone, Copy)]
pub(super) struct Notice<'a> {
    event: &'a Value,
    alert: &'a Value,
}

impl<'a> Notice<'a> {
    pub(super) fn of(json: &'a Value) -> Self {
        Self {
            event: json
                .get("event")
                .filter(|event| event.is_object())
                .unwrap_or(json),
            alert: json
                .get("alert")
                .filter(|alert| alert.is_object())
                .unwrap_or(json),
        }
    }

    /// The event's transition (`fired`, `acknowledged`, `escalated`, …).
    pub(super) fn transition(&self) -> Option<&'a str> {
        text(self.event, "transition")
    }

    /// The alert's severity.
    pub(super) fn severity(&self) -> Option<&'a str> {
        text(self.alert, "severity")
    }

    /// A field of the alert, else of the rule it carries, else of the
    /// alert's `rationalization` object.
    fn alert_field(&self, name: &str) -> Option<&'a Value> {
        [
            Some(self.alert),
            self.alert.get("rule"),
            self.alert.get("rationalization"),
        ]
        .into_iter()
        .flatten()
        .find_map(|holder| holder.get(name).filter(|value| !value.is_null()))
    }

    fn explanation(&self) -> Option<&'a Value> {
        [self.event, self.alert]
            .into_iter()
            .find_map(|holder| holder.get("explanation").filter(|value| !value.is_null()))
    }

    /// One line: `at SEVERITY sensor rule: transition — message`.
    fn line(&self) -> String {
        let at = text(self.event, "at").unwrap_or("");
        let severity = self.severity().unwrap_or("?").to_uppercase();
        let what = self.subject_of();
        let transition = self.transition().unwrap_or("event");
        let message = text(self.alert, "message").unwrap_or("");
        cut(
            &format!("{at} {severity} {what}: {transition} — {message}"),
            400,
        )
    }

    /// `site/sensor rule` or what of it the notice has.
    fn subject_of(&self) -> String {
        let site = text(self.alert, "site").unwrap_or("?");
        let target = text(self.alert, "sensor").map(str::to_owned).or_else(|| {
            self.alert.get("gateway").and_then(|gateway| {
                Some(format!(
                    "gateway {}/{}",
                    text(gateway, "group")?,
                    text(gateway, "edge_node")?
                ))
            })
        });
        let rule = text(self.alert, "rule_name").or_else(|| text(self.alert, "kind"));
        let mut subject = site.to_owned();
        if let Some(target) = target {
            let _ = write!(subject, "/{target}");
        }
        if let Some(rule) = rule {
            let _ = write!(subject, " {rule}");
        }
        subject
    }
}

/// The e-mail of one alert event; `escalation` marks an escalation's.
pub(super) fn notice_email(json: &Value) -> Rendered {
    let notice = Notice::of(json);
    let severity = notice.severity().unwrap_or("alert").to_uppercase();
    let state = text(notice.alert, "state")
        .or(notice.transition())
        .unwrap_or("changed");
    let escalated = notice.transition() == Some("escalated");
    let prefix = if escalated { "ESCALATED " } else { "" };
    let subject = cut(
        &format!(
            "[Stoker] {prefix}{severity} {}: {state}",
            notice.subject_of()
        ),
        250,
    );
    let mut text_body = String::new();
    let mut field = |label: &str, value: Option<String>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            let _ = writeln!(text_body, "{label}: {}", cut(&value, FIELD_CHARS));
        }
    };
    field("Alarm", text(notice.alert, "rule_name").map(str::to_owned));
    field("Site", text(notice.alert, "site").map(str::to_owned));
    field("Sensor", text(notice.alert, "sensor").map(str::to_owned));
    field("Severity", notice.severity().map(str::to_owned));
    field("State", Some(state.to_owned()));
    field(
        "Event",
        notice.transition().map(|transition| {
            let at = text(notice.event, "at").unwrap_or("");
            let actor = text(notice.event, "actor").unwrap_or("");
            format!("{transition} at {at} by {actor}")
        }),
    );
    field("Message", text(notice.alert, "message").map(str::to_owned));
    field("Value", notice.alert.get("value").and_then(scalar));
    field("Threshold", notice.alert.get("threshold").and_then(scalar));
    field(
        "Opened at",
        text(notice.alert, "opened_at").map(str::to_owned),
    );
    field("Detail", text(notice.event, "detail").map(str::to_owned));
    for (name, label) in RATIONALIZATION {
        field(label, notice.alert_field(name).and_then(scalar));
    }
    if let Some(explanation) = notice.explanation() {
        let _ = writeln!(text_body, "\nExplanation:");
        explain(&mut text_body, explanation);
    }
    if let Some(id) = text(notice.alert, "id") {
        let _ = writeln!(text_body, "\nAlert {id}");
    }
    Rendered {
        subject,
        text: text_body,
    }
}

/// The e-mail of a flood digest: the site, the flood, and one line per
/// held notification.
pub(super) fn digest_email(
    site: &str,
    started_at: &str,
    ended: bool,
    notices: &[Value],
    unlisted: usize,
) -> Rendered {
    let total = notices.len() + unlisted;
    let subject = format!(
        "[Stoker] Alarm flood at {site}: {total} notification{} gathered{}",
        if total == 1 { "" } else { "s" },
        if ended { " (flood over)" } else { "" }
    );
    let mut text_body = format!(
        "Site {site} is in an alarm flood since {started_at}{}: its notifications are gathered into digests.\n\n",
        if ended { " (now over)" } else { "" }
    );
    for notice in notices {
        let _ = writeln!(text_body, "{}", Notice::of(notice).line());
    }
    if unlisted > 0 {
        let _ = writeln!(text_body, "… and {unlisted} more (see the alarm list).");
    }
    Rendered {
        subject,
        text: text_body,
    }
}

/// The explanation, one `key: value` line per field (nested objects
/// indented), whatever its shape.
fn explain(out: &mut String, value: &Value) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                match value {
                    Value::Object(_) => {
                        let _ = writeln!(out, "  {key}:");
                        if let Value::Object(inner) = value {
                            for (inner_key, inner_value) in inner {
                                let shown = scalar(inner_value).unwrap_or_default();
                                let _ =
                                    writeln!(out, "    {inner_key}: {}", cut(&shown, FIELD_CHARS));
                            }
                        }
                    }
                    other => {
                        let shown = scalar(other).unwrap_or_default();
                        let _ = writeln!(out, "  {key}: {}", cut(&shown, FIELD_CHARS));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(
                out,
                "  {}",
                cut(&scalar(other).unwrap_or_default(), FIELD_CHARS)
            );
        }
    }
}

fn text<'a>(holder: &'a Value, name: &str) -> Option<&'a str> {
    holder.get(name).and_then(Value::as_str)
}

/// A value as text: a string as is, anything else as compact JSON; none
/// for null.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// `text` cut to `limit` characters, control characters as spaces (a
/// subject must stay on one line).
fn cut(text: &str, limit: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .take(limit)
        .collect();
    if text.chars().count() > limit {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn notice() -> Value {
        json!({
            "event": {"id": 7, "transition": "fired", "at": "2026-12-07T10:00:00Z",
                      "actor": "analytics", "detail": "mean over 1m = 13.2 > 12.5",
                      "explanation": {"aggregate": "mean", "buckets": [13.1, 13.3],
                                      "held_for": "30s"}},
            "alert": {"id": "0193", "rule_name": "Steam pressure high", "site": "bh1",
                      "sensor": "b1_steam_pressure", "severity": "critical",
                      "state": "unacknowledged", "value": 13.2, "threshold": 12.5,
                      "message": "mean over 1m = 13.2 bar", "operator_action": "Reduce the firing rate",
                      "cause": null}
        })
    }

    #[test]
    fn an_alert_email_names_what_and_why() {
        let email = notice_email(&notice());
        assert_eq!(
            email.subject,
            "[Stoker] CRITICAL bh1/b1_steam_pressure Steam pressure high: unacknowledged"
        );
        for expected in [
            "Message: mean over 1m = 13.2 bar",
            "Value: 13.2",
            "Threshold: 12.5",
            "Operator action: Reduce the firing rate",
            "Explanation:",
            "  aggregate: mean",
            "  buckets: [13.1,13.3]",
        ] {
            assert!(
                email.text.contains(expected),
                "{expected:?} in {}",
                email.text
            );
        }
        assert!(!email.text.contains("Cause"), "{}", email.text);
    }

    #[test]
    fn a_bare_notice_still_makes_an_email() {
        let email = notice_email(&json!({"transition": "fired", "site": "bh1"}));
        assert!(email.subject.contains("bh1"), "{}", email.subject);
        let email = notice_email(&json!([1, 2]));
        assert!(email.subject.starts_with("[Stoker]"), "{}", email.subject);
    }

    #[test]
    fn an_escalation_says_so() {
        let mut escalated = notice();
        escalated["event"]["transition"] = json!("escalated");
        assert!(
            notice_email(&escalated)
                .subject
                .contains("ESCALATED CRITICAL")
        );
    }

    #[test]
    fn a_digest_lists_the_alarms() {
        let email = digest_email(
            "bh1",
            "2026-12-07T10:00:00Z",
            false,
            &[notice(), notice()],
            3,
        );
        assert!(
            email.subject.contains("5 notifications"),
            "{}",
            email.subject
        );
        assert_eq!(
            email.text.matches("CRITICAL bh1/b1_steam_pressure").count(),
            2
        );
        assert!(email.text.contains("3 more"));
    }
}

//! Replies, events and errors as text.

use qmp_shell::json::Json;
use qmp_tokio::{Error, Event, RawJson};

/// `value` as JSON text, indented or on one line.
pub fn json(value: &Json, pretty: bool) -> String {
    if pretty {
        value.to_pretty()
    } else {
        value.to_compact()
    }
}

/// A reply's `return` value, members in the order QEMU sent them.
pub fn reply(raw: &RawJson, pretty: bool) -> String {
    match Json::parse(raw.as_str()) {
        Ok(value) => json(&value, pretty),
        Err(_) => raw.as_str().to_owned(),
    }
}

/// An event as a JSON object: `{"event": NAME, "data": ..., "timestamp":
/// {"seconds": ..., "microseconds": ...}}` (`data` only when it has some).
pub fn event(event: &Event, pretty: bool) -> String {
    let mut members = vec![("event".to_owned(), Json::String(event.name.clone()))];
    if let Some(data) = &event.data {
        let data = Json::parse(data.as_str()).unwrap_or(Json::Null);
        members.push(("data".to_owned(), data));
    }
    let timestamp = Json::Object(vec![
        (
            "seconds".to_owned(),
            Json::Number(event.timestamp.seconds.into()),
        ),
        (
            "microseconds".to_owned(),
            Json::Number(event.timestamp.microseconds.into()),
        ),
    ]);
    members.push(("timestamp".to_owned(), timestamp));
    json(&Json::Object(members), pretty)
}

/// `error: <class>: <desc>` for an error reply, `error: <what>` otherwise.
pub fn error(error: &Error) -> String {
    match error {
        Error::Qmp(e) => format!("error: {}: {}", e.class, e.desc),
        other => format!("error: {other}"),
    }
}

/// The text a `human-monitor-command` returned, without carriage returns
/// and the final line ending.
pub fn hmp_text(raw: &RawJson) -> String {
    let text: String = raw.decode().unwrap_or_else(|_| raw.as_str().to_owned());
    text.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_tokio::{ErrorClass, QmpError, Timestamp};

    #[test]
    fn reply_keeps_order() {
        let raw = RawJson::from_text(r#"{"status":"running","running":true}"#).unwrap();
        assert_eq!(reply(&raw, false), r#"{"status":"running","running":true}"#);
        assert_eq!(
            reply(&raw, true),
            "{\n  \"status\": \"running\",\n  \"running\": true\n}"
        );
    }

    #[test]
    fn events() {
        let stop = Event {
            name: "STOP".into(),
            data: None,
            timestamp: Timestamp {
                seconds: 5,
                microseconds: -1,
            },
        };
        assert_eq!(
            event(&stop, false),
            r#"{"event":"STOP","timestamp":{"seconds":5,"microseconds":-1}}"#
        );
        let with_data = Event {
            data: Some(RawJson::from_text(r#"{"reason":"host-qmp-quit"}"#).unwrap()),
            ..stop
        };
        assert!(event(&with_data, false).contains(r#""data":{"reason":"host-qmp-quit"}"#));
    }

    #[test]
    fn errors() {
        let e = Error::Qmp(QmpError::new(
            ErrorClass::DeviceNotFound,
            "Device 'x' not found",
        ));
        assert_eq!(error(&e), "error: DeviceNotFound: Device 'x' not found");
        assert_eq!(error(&Error::Timeout), "error: the QMP call timed out");
    }

    #[test]
    fn hmp() {
        let raw = RawJson::from_text(r#""QEMU 10.0.2\r\n""#).unwrap();
        assert_eq!(hmp_text(&raw), "QEMU 10.0.2");
        let raw = RawJson::from_text(r#""""#).unwrap();
        assert_eq!(hmp_text(&raw), "");
    }
}

//! Re-indenting a message the way QEMU's `-mon ...,pretty=on` writes it.
//!
//! The text is re-laid token by token, never re-parsed: strings, numbers and
//! literals are copied as they are, so an id is echoed exactly as the client
//! wrote it (a number too large for 64 bits, object members in their order)
//! however it is indented.

use alloc::vec::Vec;
use bytes::{BufMut, BytesMut};

/// Spaces per nesting level, as QEMU indents.
const INDENT: usize = 4;

/// Appends `message` (valid JSON, any layout) to `out` as QEMU's pretty
/// output lays it out, every line ended with CRLF:
///
/// ```text
/// {
///     "return": {
///     },
///     "id": [
///         1,
///         2
///     ]
/// }
/// ```
///
/// Containers open on the line of their key and close on a line of their
/// own, empty ones too; `"key": value` has one space after the colon.
pub(crate) fn write_pretty(message: &[u8], out: &mut BytesMut) {
    let mut depth = 0usize;
    // A new line is started lazily, before the next token, so that an empty
    // container closes on the line after it opened with no blank line.
    let mut line_ended = false;
    let mut bytes = message.iter().copied().enumerate();
    while let Some((start, byte)) = bytes.next() {
        if matches!(byte, b' ' | b'\t' | b'\r' | b'\n') {
            continue;
        }
        if matches!(byte, b'}' | b']') {
            depth = depth.saturating_sub(1);
            new_line(out, depth);
        } else if line_ended {
            new_line(out, depth);
        }
        line_ended = false;
        match byte {
            b'{' | b'[' => {
                out.put_u8(byte);
                depth += 1;
                line_ended = true;
            }
            b',' => {
                out.put_u8(b',');
                line_ended = true;
            }
            b':' => out.extend_from_slice(b": "),
            b'"' => {
                let mut end = start + 1;
                let mut escaped = false;
                for (index, byte) in bytes.by_ref() {
                    end = index + 1;
                    match byte {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => break,
                        _ => {}
                    }
                }
                out.extend_from_slice(&message[start..end]);
            }
            _ => out.put_u8(byte),
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `compact` (JSON as serde_json writes it, with no whitespace) to
/// `out` spaced as QEMU's one-line output is: `{"a": 1, "b": [2, 3]}`,
/// one space after each colon and comma outside strings.
pub(crate) fn write_spaced(compact: &[u8], out: &mut Vec<u8>) {
    out.reserve(compact.len() + compact.len() / 8);
    let mut in_string = false;
    let mut escaped = false;
    for &byte in compact {
        out.push(byte);
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b':' | b',') {
            out.push(b' ');
        }
    }
}

/// Ends the current line and indents the next one to `depth`.
fn new_line(out: &mut BytesMut, depth: usize) {
    out.extend_from_slice(b"\r\n");
    out.resize(out.len() + depth * INDENT, b' ');
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn pretty(message: &str) -> String {
        let mut out = BytesMut::new();
        write_pretty(message.as_bytes(), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn lays_out_as_qemu_does() {
        assert_eq!(
            pretty(r#"{"return": {}, "id": [1, {"a":"b"}]}"#),
            "{\r\n    \"return\": {\r\n    },\r\n    \"id\": [\r\n        1,\r\n        {\r\n            \"a\": \"b\"\r\n        }\r\n    ]\r\n}\r\n"
        );
    }

    #[test]
    fn keeps_tokens_as_written() {
        let text = pretty(r#"{"id": {"z": 18446744073709551616123, "a": 1.50e+3}}"#);
        assert!(text.contains("\"z\": 18446744073709551616123,"), "{text}");
        assert!(text.contains("\"a\": 1.50e+3\r\n"), "{text}");
        assert!(text.find("\"z\"") < text.find("\"a\""), "members reordered");
    }

    #[test]
    fn spaces_as_qemu_does_on_one_line() {
        let mut out = Vec::new();
        write_spaced(br#"{"a":{"b":[1,2],"c":"x, y: \"z\""},"d":{}}"#, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a": {"b": [1, 2], "c": "x, y: \"z\""}, "d": {}}"#
        );
    }

    #[test]
    fn leaves_strings_alone() {
        let text = pretty(r#"{"desc": "a, b: {c} [d] \"e, f\" \\", "x": "  "}"#);
        assert!(
            text.contains(r#""desc": "a, b: {c} [d] \"e, f\" \\","#),
            "{text}"
        );
        assert!(text.contains(r#""x": "  ""#), "{text}");
    }

    /// The plain and `pretty=on` recordings of the same session: every
    /// message of the one, re-indented, is byte for byte the other's (those
    /// with other contents, such as timestamps, aside).
    #[test]
    fn matches_real_qemu_byte_for_byte() {
        use serde_json::value::RawValue;
        use serde_json::{Deserializer, Value};
        let captures: [(&[u8], &[u8]); 2] = [
            (
                include_bytes!("../../tests/captures/qemu-7.2-system.s2c"),
                include_bytes!("../../tests/captures/qemu-7.2-system-pretty.s2c"),
            ),
            (
                include_bytes!("../../tests/captures/qemu-10.0-system.s2c"),
                include_bytes!("../../tests/captures/qemu-10.0-system-pretty.s2c"),
            ),
        ];
        let messages = |capture: &[u8]| -> Vec<String> {
            Deserializer::from_slice(capture)
                .into_iter::<&RawValue>()
                .map(|message| String::from(message.unwrap().get()))
                .collect()
        };
        for (plain, pretty_capture) in captures {
            let (plain, pretty_capture) = (messages(plain), messages(pretty_capture));
            assert_eq!(plain.len(), pretty_capture.len());
            let mut compared = 0;
            for (plain, expected) in plain.iter().zip(&pretty_capture) {
                let value = |text: &str| serde_json::from_str::<Value>(text).unwrap();
                if value(plain) == value(expected) {
                    assert_eq!(pretty(plain), alloc::format!("{expected}\r\n"));
                    compared += 1;
                }
            }
            assert!(compared >= 18, "only {compared} messages compared");
        }
    }

    #[test]
    fn drops_the_input_layout() {
        assert_eq!(
            pretty("{ \"a\" :\r\n\t[ ] }"),
            pretty(r#"{"a":[]}"#),
            "whitespace outside strings is not kept"
        );
    }
}

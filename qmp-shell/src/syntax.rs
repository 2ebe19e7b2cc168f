//! The shell's line grammar: a line in, a command name and its JSON
//! arguments out. Pure: no I/O, no protocol.
//!
//! ```text
//! line     = blank | comment | json | command
//! comment  = "#" anything
//! json     = "{" ... "}"                    a whole QMP request object
//! command  = name { whitespace key "=" value }
//! key      = part { "." part }              parts are not empty
//! value    = '...'                          a string, exactly as written
//!          | "..."                          a JSON string (escapes work)
//!          | { ... } | [ ... ]              a JSON object or array
//!          | anything else up to a space    a JSON number, true, false or
//!                                           null if it is one, else a string
//! ```
//!
//! Dotted keys build nested objects: `file.driver=file file.filename=a.img`
//! gives `{"file": {"driver": "file", "filename": "a.img"}}`. Quoted, object
//! and array values may contain spaces; quotes anywhere else in a value are
//! ordinary characters (`desc=it's` is the string `it's`).
//!
//! ```
//! use qmp_shell::syntax::parse_line;
//!
//! let call = parse_line("blockdev-add driver=raw node-name=disk0 file.driver=null-co file.size=4096")
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(call.name, "blockdev-add");
//! assert_eq!(
//!     call.arguments.unwrap().to_compact(),
//!     r#"{"driver":"raw","node-name":"disk0","file":{"driver":"null-co","size":4096}}"#
//! );
//! ```

use crate::json::Json;
use std::fmt;
use std::iter::Peekable;
use std::str::CharIndices;

/// One command the shell should run.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The command's name, e.g. `query-status`.
    pub name: String,
    /// Its arguments, always a JSON object; `None` when the line gave none.
    pub arguments: Option<Json>,
    /// Whether to run it out of band (a raw JSON line with `exec-oob`).
    pub oob: bool,
}

impl Call {
    /// The request as QMP writes it, without the `id` the client adds:
    /// `{"execute": name, "arguments": {...}}`.
    pub fn to_request(&self) -> Json {
        let verb = if self.oob { "exec-oob" } else { "execute" };
        let mut members = vec![(verb.to_owned(), Json::String(self.name.clone()))];
        if let Some(arguments) = &self.arguments {
            members.push(("arguments".to_owned(), arguments.clone()));
        }
        Json::Object(members)
    }
}

/// Why a line could not be turned into a [`Call`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The line started with `key=value` instead of a command name.
    NameExpected {
        /// The first word.
        word: String,
    },
    /// A word after the command name has no `=`.
    MissingValue {
        /// The word.
        word: String,
    },
    /// A key is empty or has an empty dotted part (`=1`, `a..b`, `a.`).
    EmptyKeyPart {
        /// The key as written.
        key: String,
    },
    /// A quoted value has no closing quote.
    UnterminatedQuote {
        /// The key whose value it is.
        key: String,
    },
    /// An object or array value is not closed before the end of the line.
    UnclosedBracket {
        /// The key whose value it is.
        key: String,
    },
    /// Text follows a quoted, object or array value without a space.
    TrailingText {
        /// The key whose value it is.
        key: String,
    },
    /// A double-quoted, object or array value is not valid JSON.
    InvalidJson {
        /// The key whose value it is.
        key: String,
        /// serde_json's description.
        detail: String,
    },
    /// The same key was given twice.
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// One key sets a value where another needs an object of nested keys
    /// (`a=1 a.b=2`, or `a.b=2 a=1`).
    KeyConflict {
        /// The key that could not be placed.
        key: String,
        /// The key given earlier that it conflicts with.
        other: String,
    },
    /// A line starting with `{` is not valid JSON, or not one object.
    RawInvalid {
        /// What is wrong with it.
        detail: String,
    },
    /// A JSON request has neither `execute` nor `exec-oob` naming a command,
    /// or has both.
    RawNoCommand,
    /// A JSON request's `arguments` is not an object.
    RawArgumentsNotObject,
    /// A JSON request has a member QMP does not define for requests.
    RawUnknownMember {
        /// The member's name.
        member: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NameExpected { word } => {
                write!(f, "a line starts with a command name, not `{word}`")
            }
            ParseError::MissingValue { word } => {
                write!(f, "`{word}` is not of the form key=value")
            }
            ParseError::EmptyKeyPart { key } => write!(f, "the key `{key}` has an empty part"),
            ParseError::UnterminatedQuote { key } => {
                write!(f, "the value of `{key}` has no closing quote")
            }
            ParseError::UnclosedBracket { key } => {
                write!(f, "the value of `{key}` has an unclosed `{{` or `[`")
            }
            ParseError::TrailingText { key } => write!(
                f,
                "the value of `{key}` goes on after its closing quote or bracket"
            ),
            ParseError::InvalidJson { key, detail } => {
                write!(f, "the value of `{key}` is not valid JSON: {detail}")
            }
            ParseError::DuplicateKey { key } => write!(f, "`{key}` is given twice"),
            ParseError::KeyConflict { key, other } => write!(
                f,
                "`{key}` conflicts with `{other}`: a key cannot be both a value and an object of nested keys"
            ),
            ParseError::RawInvalid { detail } => write!(f, "not a JSON request: {detail}"),
            ParseError::RawNoCommand => f.write_str(
                "a JSON request needs one of \"execute\" or \"exec-oob\" with a command name",
            ),
            ParseError::RawArgumentsNotObject => {
                f.write_str("\"arguments\" of a JSON request must be an object")
            }
            ParseError::RawUnknownMember { member } => {
                write!(f, "a JSON request has no member {member:?}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one line: `Ok(None)` for a blank line or a `#` comment.
///
/// A line whose first non-blank character is `{` is a whole QMP request
/// (`{"execute": "stop"}`): its `execute` (or `exec-oob`) and `arguments`
/// are taken from it; an `id` member is ignored, since the client numbers
/// its requests itself.
pub fn parse_line(line: &str) -> Result<Option<Call>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.starts_with('{') {
        return parse_request(line).map(Some);
    }
    parse_command(line).map(Some)
}

/// Parses `name key=value ...` (see the [module docs](self)).
pub fn parse_command(line: &str) -> Result<Call, ParseError> {
    let mut words = Lexer::new(line);
    let name = match words.next_word()? {
        None => {
            return Err(ParseError::NameExpected {
                word: String::new(),
            })
        }
        Some(Word::Bare(name)) => name,
        Some(Word::Pair { key, .. }) => return Err(ParseError::NameExpected { word: key + "=" }),
    };
    let mut tree = Tree::default();
    let mut any = false;
    while let Some(word) = words.next_word()? {
        match word {
            Word::Bare(word) => return Err(ParseError::MissingValue { word }),
            Word::Pair { key, value } => {
                let value = value.into_json(&key)?;
                tree.insert(&key, value)?;
                any = true;
            }
        }
    }
    Ok(Call {
        name,
        arguments: any.then(|| tree.into_json()),
        oob: false,
    })
}

/// Parses a whole QMP request object.
pub fn parse_request(line: &str) -> Result<Call, ParseError> {
    let value = Json::parse(line).map_err(|e| ParseError::RawInvalid {
        detail: e.to_string(),
    })?;
    let Json::Object(members) = value else {
        return Err(ParseError::RawInvalid {
            detail: "not an object".into(),
        });
    };
    let mut command: Option<(String, bool)> = None;
    let mut arguments = None;
    for (member, value) in members {
        match member.as_str() {
            "execute" | "exec-oob" => {
                let Json::String(name) = value else {
                    return Err(ParseError::RawNoCommand);
                };
                if command.is_some() {
                    return Err(ParseError::RawNoCommand);
                }
                command = Some((name, member == "exec-oob"));
            }
            "arguments" => match value {
                Json::Object(_) => arguments = Some(value),
                _ => return Err(ParseError::RawArgumentsNotObject),
            },
            "id" => {}
            _ => return Err(ParseError::RawUnknownMember { member }),
        }
    }
    let (name, oob) = command.ok_or(ParseError::RawNoCommand)?;
    Ok(Call {
        name,
        arguments,
        oob,
    })
}

/// A word of a command line.
#[derive(Debug, PartialEq)]
enum Word {
    /// A word without `=`.
    Bare(String),
    /// `key=value`.
    Pair { key: String, value: Value },
}

/// A value as written, before it is turned into JSON.
#[derive(Debug, PartialEq)]
enum Value {
    /// Unquoted text.
    Bare(String),
    /// The text between single quotes.
    Literal(String),
    /// A double-quoted string, an object or an array: JSON text.
    Json(String),
}

impl Value {
    fn into_json(self, key: &str) -> Result<Json, ParseError> {
        match self {
            Value::Literal(text) => Ok(Json::String(text)),
            Value::Json(text) => Json::parse(&text).map_err(|e| ParseError::InvalidJson {
                key: key.to_owned(),
                detail: e.to_string(),
            }),
            Value::Bare(text) => Ok(match Json::parse(&text) {
                Ok(scalar @ (Json::Number(_) | Json::Bool(_) | Json::Null)) => scalar,
                _ => Json::String(text),
            }),
        }
    }
}

/// Splits a line into words, keeping quoted and bracketed values whole.
struct Lexer<'a> {
    text: &'a str,
    chars: Peekable<CharIndices<'a>>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            text,
            chars: text.char_indices().peekable(),
        }
    }

    fn next_word(&mut self) -> Result<Option<Word>, ParseError> {
        while self.chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if self.chars.peek().is_none() {
            return Ok(None);
        }
        let mut key = String::new();
        while let Some((_, c)) = self.chars.next_if(|(_, c)| !c.is_whitespace()) {
            if c == '=' {
                let value = self.value(&key)?;
                return Ok(Some(Word::Pair { key, value }));
            }
            key.push(c);
        }
        Ok(Some(Word::Bare(key)))
    }

    /// The value after `key=`, up to the next unquoted space.
    fn value(&mut self, key: &str) -> Result<Value, ParseError> {
        let Some(&(start, first)) = self.chars.peek() else {
            return Ok(Value::Bare(String::new()));
        };
        let value = match first {
            '\'' => {
                self.chars.next();
                let mut text = String::new();
                loop {
                    match self.chars.next() {
                        None => return Err(unterminated(key)),
                        Some((_, '\'')) => break,
                        Some((_, c)) => text.push(c),
                    }
                }
                Value::Literal(text)
            }
            '"' => {
                self.chars.next();
                self.skip_json_string().ok_or_else(|| unterminated(key))?;
                Value::Json(self.since(start))
            }
            '{' | '[' => {
                self.skip_structure()
                    .ok_or_else(|| ParseError::UnclosedBracket {
                        key: key.to_owned(),
                    })?;
                Value::Json(self.since(start))
            }
            _ => {
                while self.chars.next_if(|(_, c)| !c.is_whitespace()).is_some() {}
                return Ok(Value::Bare(self.since(start)));
            }
        };
        match self.chars.peek() {
            Some((_, c)) if !c.is_whitespace() => Err(ParseError::TrailingText {
                key: key.to_owned(),
            }),
            _ => Ok(value),
        }
    }

    /// The text from byte `start` to the current position.
    fn since(&mut self, start: usize) -> String {
        let end = self.chars.peek().map_or(self.text.len(), |&(i, _)| i);
        self.text[start..end].to_owned()
    }

    /// Skips the rest of a JSON string whose opening quote was consumed;
    /// `None` when it does not end.
    fn skip_json_string(&mut self) -> Option<()> {
        loop {
            match self.chars.next()?.1 {
                '"' => return Some(()),
                '\\' => {
                    self.chars.next()?;
                }
                _ => {}
            }
        }
    }

    /// Skips a balanced `{...}` or `[...]` (strings inside may hold
    /// brackets); `None` when the line ends first. Mismatched bracket kinds
    /// are left for the JSON parser to report.
    fn skip_structure(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.chars.next()?.1 {
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                '"' => self.skip_json_string()?,
                _ => {}
            }
        }
    }
}

fn unterminated(key: &str) -> ParseError {
    ParseError::UnterminatedQuote {
        key: key.to_owned(),
    }
}

/// The arguments being built: each key is either a value given on the line
/// or an object made by dotted keys.
#[derive(Default)]
struct Tree {
    members: Vec<(String, Node)>,
}

enum Node {
    /// A value given on the line, under the full key that gave it.
    Given { key: String, value: Json },
    /// An object made by dotted keys, with the first full key that made it.
    Nested { key: String, tree: Tree },
}

impl Node {
    fn key(&self) -> &str {
        match self {
            Node::Given { key, .. } | Node::Nested { key, .. } => key,
        }
    }
}

impl Tree {
    fn insert(&mut self, key: &str, value: Json) -> Result<(), ParseError> {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(ParseError::EmptyKeyPart {
                key: key.to_owned(),
            });
        }
        let (last, parents) = parts.split_last().expect("split yields at least one part");
        let mut tree = self;
        for part in parents {
            let index = match tree.members.iter().position(|(name, _)| name == part) {
                Some(index) => index,
                None => {
                    let nested = Node::Nested {
                        key: key.to_owned(),
                        tree: Tree::default(),
                    };
                    tree.members.push(((*part).to_owned(), nested));
                    tree.members.len() - 1
                }
            };
            tree = match &mut tree.members[index].1 {
                Node::Nested { tree, .. } => tree,
                Node::Given { key: other, .. } => {
                    return Err(ParseError::KeyConflict {
                        key: key.to_owned(),
                        other: other.clone(),
                    })
                }
            };
        }
        if let Some((_, existing)) = tree.members.iter().find(|(name, _)| name == last) {
            return Err(match existing {
                Node::Given { .. } => ParseError::DuplicateKey {
                    key: key.to_owned(),
                },
                Node::Nested { .. } => ParseError::KeyConflict {
                    key: key.to_owned(),
                    other: existing.key().to_owned(),
                },
            });
        }
        tree.members.push((
            (*last).to_owned(),
            Node::Given {
                key: key.to_owned(),
                value,
            },
        ));
        Ok(())
    }

    fn into_json(self) -> Json {
        Json::Object(
            self.members
                .into_iter()
                .map(|(name, node)| {
                    let value = match node {
                        Node::Given { value, .. } => value,
                        Node::Nested { tree, .. } => tree.into_json(),
                    };
                    (name, value)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arguments of `line` as compact JSON.
    fn args(line: &str) -> String {
        let call = parse_line(line).unwrap().unwrap();
        call.arguments.map(|a| a.to_compact()).unwrap_or_default()
    }

    fn err(line: &str) -> ParseError {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn name_alone() {
        let call = parse_line("  query-status  ").unwrap().unwrap();
        assert_eq!(call.name, "query-status");
        assert_eq!(call.arguments, None);
        assert!(!call.oob);
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line(" \t "), Ok(None));
        assert_eq!(parse_line("# query-status"), Ok(None));
    }

    #[test]
    fn scalars_are_json_where_they_parse() {
        assert_eq!(
            args("x a=1 b=-2.5 c=true d=false e=null f=1e3"),
            r#"{"a":1,"b":-2.5,"c":true,"d":false,"e":null,"f":1000.0}"#
        );
    }

    #[test]
    fn other_text_is_a_string() {
        assert_eq!(
            args("x a=disk0 b=/tmp/a.img c=01 d=1.2.3 e=True f=0x10 g=-"),
            r#"{"a":"disk0","b":"/tmp/a.img","c":"01","d":"1.2.3","e":"True","f":"0x10","g":"-"}"#
        );
    }

    #[test]
    fn empty_value_is_the_empty_string() {
        assert_eq!(args("x a= b=1"), r#"{"a":"","b":1}"#);
        assert_eq!(args("x a="), r#"{"a":""}"#);
    }

    #[test]
    fn equals_sign_inside_a_value_is_kept() {
        assert_eq!(args("x opts=a=b,c=d"), r#"{"opts":"a=b,c=d"}"#);
    }

    #[test]
    fn quotes_make_strings() {
        assert_eq!(
            args(r#"x a="1" b='true' c="two words" e="tab\there""#),
            r#"{"a":"1","b":"true","c":"two words","e":"tab\there"}"#
        );
        assert_eq!(args(r#"x a='say "hi" \n'"#), r#"{"a":"say \"hi\" \\n"}"#);
        assert_eq!(args("x a=''"), r#"{"a":""}"#);
    }

    #[test]
    fn quotes_inside_a_bare_value_are_ordinary() {
        assert_eq!(
            args(r#"x desc=it's q=a"b"#),
            r#"{"desc":"it's","q":"a\"b"}"#
        );
    }

    #[test]
    fn objects_and_arrays_with_spaces() {
        assert_eq!(
            args(r#"x a={"k": [1, 2], "s": "} ]"} b=[ "x y", {} ] c=[]"#),
            r#"{"a":{"k":[1,2],"s":"} ]"},"b":["x y",{}],"c":[]}"#
        );
    }

    #[test]
    fn object_values_keep_their_order() {
        assert_eq!(args(r#"x a={"z":1,"a":2}"#), r#"{"a":{"z":1,"a":2}}"#);
    }

    #[test]
    fn dotted_keys_nest() {
        assert_eq!(
            args("blockdev-add driver=qcow2 node-name=d0 file.driver=file file.filename=/a.img options.x.y=1"),
            r#"{"driver":"qcow2","node-name":"d0","file":{"driver":"file","filename":"/a.img"},"options":{"x":{"y":1}}}"#
        );
    }

    #[test]
    fn dotted_keys_may_be_interleaved() {
        assert_eq!(args("x a.b=1 c=2 a.d=3"), r#"{"a":{"b":1,"d":3},"c":2}"#);
    }

    #[test]
    fn duplicate_key() {
        assert_eq!(
            err("x a=1 a=2"),
            ParseError::DuplicateKey { key: "a".into() }
        );
        assert_eq!(
            err("x a.b=1 a.b='2'"),
            ParseError::DuplicateKey { key: "a.b".into() }
        );
    }

    #[test]
    fn value_then_nested_key_conflicts() {
        assert_eq!(
            err("x a=1 a.b=2"),
            ParseError::KeyConflict {
                key: "a.b".into(),
                other: "a".into()
            }
        );
        // An object given whole is a value too: it is not merged into.
        assert_eq!(
            err(r#"x a={"b":1} a.c=2"#),
            ParseError::KeyConflict {
                key: "a.c".into(),
                other: "a".into()
            }
        );
    }

    #[test]
    fn nested_key_then_value_conflicts() {
        assert_eq!(
            err("x a.b.c=1 a.b=2"),
            ParseError::KeyConflict {
                key: "a.b".into(),
                other: "a.b.c".into()
            }
        );
        let message = err("x a.b=1 a=2").to_string();
        assert!(message.contains("`a` conflicts with `a.b`"), "{message}");
    }

    #[test]
    fn empty_key_parts() {
        for (line, key) in [
            ("x =1", ""),
            ("x a..b=1", "a..b"),
            ("x .a=1", ".a"),
            ("x a.=1", "a."),
        ] {
            assert_eq!(
                err(line),
                ParseError::EmptyKeyPart { key: key.into() },
                "{line}"
            );
        }
    }

    #[test]
    fn word_without_value() {
        assert_eq!(
            err("device_del id=x extra"),
            ParseError::MissingValue {
                word: "extra".into()
            }
        );
    }

    #[test]
    fn line_must_start_with_a_name() {
        assert_eq!(err("id=x"), ParseError::NameExpected { word: "id=".into() });
    }

    #[test]
    fn unterminated_quotes_and_brackets() {
        assert_eq!(
            err(r#"x a="abc"#),
            ParseError::UnterminatedQuote { key: "a".into() }
        );
        assert_eq!(
            err(r#"x a="ab\"#),
            ParseError::UnterminatedQuote { key: "a".into() }
        );
        assert_eq!(
            err("x b='abc def"),
            ParseError::UnterminatedQuote { key: "b".into() }
        );
        assert_eq!(
            err(r#"x c={"k": [1, 2]"#),
            ParseError::UnclosedBracket { key: "c".into() }
        );
        assert_eq!(
            err(r#"x c={"k": "}"#),
            ParseError::UnclosedBracket { key: "c".into() }
        );
    }

    #[test]
    fn text_after_a_closing_quote_or_bracket() {
        for line in [
            r#"x a="b"c"#,
            "x a='b'c",
            "x a='it''s'",
            "x a=[1]2",
            r#"x a={}"x""#,
        ] {
            assert_eq!(
                err(line),
                ParseError::TrailingText { key: "a".into() },
                "{line}"
            );
        }
    }

    #[test]
    fn invalid_json_values() {
        for line in [
            r#"x a={foo}"#,
            r#"x a=[1,]"#,
            r#"x a="\q""#,
            r#"x a={"k":1]"#,
            r#"x a={"k":1,"k":2}"#,
        ] {
            assert!(
                matches!(err(line), ParseError::InvalidJson { ref key, .. } if key == "a"),
                "{line}: {:?}",
                err(line)
            );
        }
    }

    #[test]
    fn raw_request() {
        let call = parse_line(r#" {"execute": "query-status"} "#)
            .unwrap()
            .unwrap();
        assert_eq!(call.name, "query-status");
        assert_eq!(call.arguments, None);
        let call =
            parse_line(r#"{"arguments": {"id": "x", "a": [1]}, "execute": "device_del", "id": 7}"#)
                .unwrap()
                .unwrap();
        assert_eq!(call.name, "device_del");
        assert_eq!(
            call.arguments.unwrap().to_compact(),
            r#"{"id":"x","a":[1]}"#
        );
        let call = parse_line(r#"{"exec-oob": "migrate-pause"}"#)
            .unwrap()
            .unwrap();
        assert!(call.oob);
        assert_eq!(
            call.to_request().to_compact(),
            r#"{"exec-oob":"migrate-pause"}"#
        );
    }

    #[test]
    fn raw_request_errors() {
        assert!(matches!(err("{"), ParseError::RawInvalid { .. }));
        assert!(matches!(
            err(r#"{"execute": "a"} x"#),
            ParseError::RawInvalid { .. }
        ));
        assert_eq!(err(r#"{"arguments": {}}"#), ParseError::RawNoCommand);
        assert_eq!(err(r#"{"execute": 1}"#), ParseError::RawNoCommand);
        assert_eq!(
            err(r#"{"execute": "a", "exec-oob": "b"}"#),
            ParseError::RawNoCommand
        );
        assert_eq!(
            err(r#"{"execute": "a", "arguments": [1]}"#),
            ParseError::RawArgumentsNotObject
        );
        assert_eq!(
            err(r#"{"execute": "a", "argument": {}}"#),
            ParseError::RawUnknownMember {
                member: "argument".into()
            }
        );
    }

    #[test]
    fn to_request_shows_what_is_sent() {
        let call = parse_line("blockdev-del node-name=d0").unwrap().unwrap();
        assert_eq!(
            call.to_request().to_compact(),
            r#"{"execute":"blockdev-del","arguments":{"node-name":"d0"}}"#
        );
    }

    #[test]
    fn non_ascii_text() {
        assert_eq!(
            args("x a=héllo b='ünï cödé' c=日本"),
            r#"{"a":"héllo","b":"ünï cödé","c":"日本"}"#
        );
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(err("x a=1 a=2").to_string(), "`a` is given twice");
        assert_eq!(
            err("x a=1 a.b=2").to_string(),
            "`a.b` conflicts with `a`: a key cannot be both a value and an object of nested keys"
        );
        assert_eq!(
            err("x a='b").to_string(),
            "the value of `a` has no closing quote"
        );
    }
}

//! Converting a capture kept as two raw byte streams into a transcript.

use super::recorder::Splitter;
use super::{compact, id_key, members, Entry, Record, Side};
use crate::framing::DEFAULT_MAX_MESSAGE_SIZE;
use alloc::vec::Vec;

/// Interleaves what a client sent (`c2s`) and what the server sent back
/// (`s2c`) into one transcript, in the order it must have happened.
///
/// Raw captures keep no times, so the order is inferred from the replies:
/// the server's messages stay in order, and before each one come the
/// client messages it answers. A reply with an `id` answers the client
/// message with the same id (compared as JSON text without whitespace),
/// and takes every message not yet placed up to it; a reply without one
/// (QEMU's answer to input it could not parse) takes the next one. Events
/// and the greeting answer nothing. The client messages left come at the
/// end, then the server's `closed`, then the client's: in a capture the
/// server is the side known to have closed (after `quit`).
///
/// Entry `i` is stamped `i` microseconds. Both streams are split with the
/// [`Framer`](crate::framing::Framer), so every byte of them is in some
/// entry but the whitespace between messages: input that is not JSON is
/// the message the framer makes of it, and an unfinished message at the
/// end of a stream is a message of its bytes.
pub fn from_streams(c2s: &[u8], s2c: &[u8]) -> Vec<Entry> {
    let client = split(c2s);
    let client_ids: Vec<Option<Vec<u8>>> = client.iter().map(record_id).collect();
    let mut placed = Vec::with_capacity(client.len() + 2);
    let mut next_client = 0;
    for record in split(s2c) {
        let end = match answers(&record) {
            Answers::Nothing => next_client,
            Answers::Next => (next_client + 1).min(client.len()),
            Answers::Id(id) => client_ids[next_client..]
                .iter()
                .position(|client_id| client_id.as_ref() == Some(&id))
                .map_or(next_client, |at| next_client + at + 1),
        };
        let answered = client[next_client..end].iter().cloned();
        placed.extend(answered.map(|record| (Side::Client, record)));
        next_client = end;
        placed.push((Side::Server, record));
    }
    let unanswered = client[next_client..].iter().cloned();
    placed.extend(unanswered.map(|record| (Side::Client, record)));
    // The server first: QEMU closes after `quit`, and a replay that
    // closes there serves a client that waits for it as well as one that
    // closes first.
    placed.push((Side::Server, Record::Closed));
    placed.push((Side::Client, Record::Closed));
    placed
        .into_iter()
        .enumerate()
        .map(|(at, (from, record))| Entry {
            micros: at as u64,
            from,
            record,
        })
        .collect()
}

/// Every message of a whole stream, an unfinished one at its end included.
fn split(stream: &[u8]) -> Vec<Record> {
    let mut splitter = Splitter::new(DEFAULT_MAX_MESSAGE_SIZE);
    splitter.push(stream);
    let mut records = Vec::new();
    while let Some(record) = splitter.next_record() {
        records.push(record);
    }
    records.extend(splitter.finish().map(Record::Message));
    records
}

fn record_id(record: &Record) -> Option<Vec<u8>> {
    match record {
        Record::Message(text) => id_key(text),
        _ => None,
    }
}

/// Which client message a server message answers.
enum Answers {
    /// None: an event, the greeting, or not an object.
    Nothing,
    /// The next one not yet placed: a reply without an id.
    Next,
    /// The one with this id (compacted).
    Id(Vec<u8>),
}

fn answers(record: &Record) -> Answers {
    let Record::Message(text) = record else {
        return Answers::Nothing;
    };
    let Some(members) = members(text) else {
        return Answers::Nothing;
    };
    if members.contains_key("event") || members.contains_key("QMP") {
        return Answers::Nothing;
    }
    match members.get("id") {
        Some(id) => Answers::Id(compact(id.get())),
        None => Answers::Next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use bytes::Bytes;

    fn texts(entries: &[Entry]) -> Vec<(Side, &str)> {
        entries
            .iter()
            .map(|entry| match &entry.record {
                Record::Message(text) => (entry.from, core::str::from_utf8(text).unwrap()),
                Record::Closed => (entry.from, "closed"),
                Record::TooLarge { .. } => (entry.from, "too-large"),
            })
            .collect()
    }

    #[test]
    fn replies_follow_their_commands_and_events_need_none() {
        let c2s = b"{\"execute\": \"a\", \"id\": 1}\n{\"execute\": \"b\", \"id\": {\"n\": 2}}\n[1]\n{\"exec";
        let s2c = b"{\"QMP\": {}}\r\n{\"event\": \"X\"}\r\n{\"return\": {}, \"id\": {\r\n \"n\": 2}}\r\n{\"error\": {}}\r\n";
        let entries = from_streams(c2s, s2c);
        use Side::{Client, Server};
        assert_eq!(
            texts(&entries),
            vec![
                (Server, "{\"QMP\": {}}"),
                (Server, "{\"event\": \"X\"}"),
                (Client, "{\"execute\": \"a\", \"id\": 1}"),
                (Client, "{\"execute\": \"b\", \"id\": {\"n\": 2}}"),
                (Server, "{\"return\": {}, \"id\": {\r\n \"n\": 2}}"),
                (Client, "[1]"),
                (Server, "{\"error\": {}}"),
                (Client, "{\"exec"),
                (Server, "closed"),
                (Client, "closed"),
            ]
        );
        assert!(entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.micros == i as u64));
    }

    #[test]
    fn a_reply_to_an_unknown_id_takes_no_client_message() {
        let entries = from_streams(b"{\"id\": 1}", b"{\"return\": {}, \"id\": 2}");
        assert_eq!(entries[0].from, Side::Server);
        assert_eq!(
            entries[1].record,
            Record::Message(Bytes::from_static(b"{\"id\": 1}"))
        );
    }
}

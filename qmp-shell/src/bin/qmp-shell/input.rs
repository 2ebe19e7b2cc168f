//! Where lines come from: the line editor on a terminal, plain standard
//! input otherwise. Each runs on its own thread (both block) and hands lines
//! to the session over a channel.

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter, Helper};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// What an input thread hands over.
#[derive(Debug)]
pub enum Input {
    /// A line, without its line ending.
    Line(String),
    /// The end of input (Ctrl-D on an empty line, or end of file).
    Eof,
    /// Reading failed.
    Failed(String),
    /// Something worth saying that does not stop the shell.
    Warning(String),
}

/// Reads standard input line by line, without an editor.
pub fn spawn_plain(lines: mpsc::Sender<Input>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            let input = match stdin.read_until(b'\n', &mut buffer) {
                Ok(0) => Input::Eof,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buffer);
                    Input::Line(text.trim_end_matches(['\n', '\r']).to_owned())
                }
                Err(e) => Input::Failed(format!("cannot read standard input: {e}")),
            };
            let last = !matches!(input, Input::Line(_));
            if lines.blocking_send(input).is_err() || last {
                return;
            }
        }
    })
}

/// The line editor's thread, and the way to print while it edits.
pub struct EditorThread {
    /// Tells the editor to prompt for the next line; sent once the previous
    /// line's command is done.
    pub next: std_mpsc::Sender<()>,
    /// Prints above the line being edited.
    pub printer: Box<dyn ExternalPrinter + Send>,
    /// The thread; it returns once input ends.
    pub thread: JoinHandle<()>,
    /// The terminal's settings before the editor changed them, read before
    /// its thread started (read after, they could already be the editor's
    /// raw mode, and restoring them would restore nothing).
    pub terminal: Option<rustix::termios::Termios>,
}

/// Starts the line editor: history from `history` (when given), completion
/// of the first word from `names`.
pub fn spawn_editor(
    prompt: String,
    names: Vec<String>,
    history: Option<PathBuf>,
    lines: mpsc::Sender<Input>,
) -> Result<EditorThread, String> {
    let config = Config::builder()
        .auto_add_history(true)
        .history_ignore_space(true)
        .max_history_size(1000)
        .map_err(|e| e.to_string())?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<Names, FileHistory> =
        Editor::with_config(config).map_err(|e| format!("cannot start the line editor: {e}"))?;
    editor.set_helper(Some(Names::new(names)));
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if path.exists() {
            if let Err(e) = editor.load_history(path) {
                eprintln!("warning: cannot read the history {}: {e}", path.display());
            }
        }
    }
    let printer = editor
        .create_external_printer()
        .map_err(|e| format!("cannot print while editing: {e}"))?;
    let (next, next_rx) = std_mpsc::channel();
    let terminal = rustix::termios::tcgetattr(std::io::stdin()).ok();
    let thread = std::thread::spawn(move || edit(editor, &prompt, history, lines, next_rx));
    Ok(EditorThread {
        next,
        printer: Box::new(printer),
        thread,
        terminal,
    })
}

fn edit(
    mut editor: Editor<Names, FileHistory>,
    prompt: &str,
    history: Option<PathBuf>,
    lines: mpsc::Sender<Input>,
    next: std_mpsc::Receiver<()>,
) {
    let mut history_warned = false;
    loop {
        let input = match editor.readline(prompt) {
            Ok(line) => {
                if let Some(path) = &history {
                    if let Err(e) = editor.append_history(path) {
                        if !history_warned {
                            history_warned = true;
                            let _ = lines.blocking_send(Input::Warning(format!(
                                "warning: cannot write the history {}: {e}",
                                path.display()
                            )));
                        }
                    }
                }
                Input::Line(line)
            }
            // Ctrl-C drops the line being typed, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => Input::Eof,
            Err(e) => Input::Failed(format!("cannot read the terminal: {e}")),
        };
        let last = !matches!(input, Input::Line(_));
        if lines.blocking_send(input).is_err() || last || next.recv().is_err() {
            return;
        }
    }
}

/// Completes the first word of a line from a sorted list of names.
struct Names {
    names: Vec<String>,
}

impl Names {
    fn new(mut names: Vec<String>) -> Self {
        names.sort();
        names.dedup();
        Names { names }
    }
}

/// Where the word under the cursor starts and the names it may become;
/// nothing past the first word, or in a JSON request.
pub fn complete<'a>(names: &'a [String], line: &str, pos: usize) -> (usize, Vec<&'a str>) {
    let before = &line[..pos];
    let start = before.len() - before.trim_start().len();
    let word = &before[start..];
    if word.contains(char::is_whitespace) || word.starts_with('{') {
        return (pos, Vec::new());
    }
    let found = names
        .iter()
        .filter(|name| name.starts_with(word))
        .map(String::as_str)
        .collect();
    (start, found)
}

impl Completer for Names {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = complete(&self.names, line, pos);
        let pairs = found
            .into_iter()
            .map(|name| Pair {
                display: name.to_owned(),
                // A space after the name, ready for the arguments.
                replacement: format!("{name} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Names {
    type Hint = String;
}

impl Highlighter for Names {}

impl Validator for Names {}

impl Helper for Names {}

/// The names HMP's `help` lists: the first word of each line, with
/// alternatives (`help|?`) split; indented lines continue a description.
pub fn hmp_command_names(help: &str) -> Vec<String> {
    help.lines()
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| line.split_whitespace().next())
        .flat_map(|word| word.split('|'))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "query-status",
            "query-stats",
            "query-version",
            "stop",
            "cont",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn completes_the_first_word() {
        let names = names();
        assert_eq!(
            complete(&names, "query-st", 8),
            (0, vec!["query-status", "query-stats"])
        );
        assert_eq!(complete(&names, "  sto", 5), (2, vec!["stop"]));
        assert_eq!(complete(&names, "", 0).1.len(), names.len());
        assert_eq!(complete(&names, "zzz", 3), (0, vec![]));
    }

    #[test]
    fn completes_at_the_cursor() {
        let names = names();
        // The cursor after "co" in "co x=1".
        assert_eq!(complete(&names, "co x=1", 2), (0, vec!["cont"]));
    }

    #[test]
    fn nothing_after_the_first_word_or_in_json() {
        let names = names();
        assert_eq!(complete(&names, "stop st", 7).1, Vec::<&str>::new());
        assert_eq!(complete(&names, "{\"execute\"", 10).1, Vec::<&str>::new());
    }

    #[test]
    fn hmp_names_from_help() {
        let help = "announce_self [interfaces] [id] -- Trigger GARP/RARP announcements\r\n\
                    block_job_cancel [-f] device -- stop an active background block operation (use -f\r\n\
                    \t\t\t if you want to abort the operation immediately\r\n\
                    help|? [cmd] -- show the help\r\n\
                    info [subcommand] -- show various information about the system state\r\n\
                    \r\n";
        assert_eq!(
            hmp_command_names(help),
            ["announce_self", "block_job_cancel", "help", "?", "info"]
        );
    }
}

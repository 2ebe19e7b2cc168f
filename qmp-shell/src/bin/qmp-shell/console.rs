//! Where output goes.
//!
//! Without the editor: replies and events to standard output, errors to
//! standard error, in the order they happen.
//!
//! With the editor, everything goes to the terminal. While the editor waits
//! for a line, text must go through its printer, which clears the line being
//! typed, prints above it and draws it again. The printer can block until the
//! editor takes the text, so a thread of its own feeds it and the session
//! never waits for it. While a command runs the editor is not reading (its
//! thread waits for the command to finish, the terminal back in its normal
//! mode), and text is written directly.

use rustix::termios::{tcsetattr, OptionalActions, Termios};
use rustyline::ExternalPrinter;
use std::io::Write;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

/// The output side of the shell.
pub enum Console {
    /// Plain standard output and standard error.
    Plain,
    /// A terminal with a line editor on it.
    Editor {
        /// Text for the editor's printer thread.
        printer: Option<std_mpsc::Sender<String>>,
        /// Says when the printer thread has handed over all its text.
        printer_done: std_mpsc::Receiver<()>,
        /// Whether the editor may be reading a line now.
        reading: bool,
        /// The terminal's settings from before the editor changed them.
        saved: Option<Termios>,
    },
}

impl Console {
    /// The output side for the line editor: `printer` prints above the line
    /// being edited; `saved` is the terminal's settings from before the
    /// editor started, restored if the shell ends while it reads.
    pub fn editor(mut printer: Box<dyn ExternalPrinter + Send>, saved: Option<Termios>) -> Console {
        let (tx, rx) = std_mpsc::channel::<String>();
        let (done, printer_done) = std_mpsc::channel();
        std::thread::spawn(move || {
            for text in rx {
                if printer.print(text).is_err() {
                    break;
                }
            }
            let _ = done.send(());
        });
        Console::Editor {
            printer: Some(tx),
            printer_done,
            reading: true,
            saved,
        }
    }

    /// Says whether the editor may be reading a line: true from the moment
    /// it is told to read until the line it read arrives.
    pub fn set_reading(&mut self, now: bool) {
        if let Console::Editor { reading, .. } = self {
            *reading = now;
        }
    }

    /// Prints a result: a reply, an event, a request echoed.
    pub fn out(&mut self, text: &str) {
        match self {
            Console::Plain => write_line(&mut std::io::stdout().lock(), text),
            Console::Editor { .. } => self.terminal(text),
        }
    }

    /// Prints an error or a warning.
    pub fn err(&mut self, text: &str) {
        match self {
            Console::Plain => write_line(&mut std::io::stderr().lock(), text),
            Console::Editor { .. } => self.terminal(text),
        }
    }

    fn terminal(&mut self, text: &str) {
        let Console::Editor {
            printer, reading, ..
        } = self
        else {
            return;
        };
        match printer {
            Some(printer) if *reading => {
                let mut text = text.to_owned();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                // If the printer thread has gone, the terminal has too.
                let _ = printer.send(text);
            }
            _ => write_line(&mut std::io::stdout().lock(), text),
        }
    }

    /// Leaves the terminal usable when the shell ends while the editor is
    /// still reading (the connection ended, or a signal). The editor's
    /// thread cannot be stopped, so once the printer has handed it what was
    /// queued, its terminal settings are undone here; from then on text is
    /// written directly.
    pub fn abandon_editor(&mut self) {
        if let Console::Editor {
            printer,
            printer_done,
            reading: true,
            saved,
        } = self
        {
            // Closing the queue ends the printer thread once it is empty.
            *printer = None;
            let _ = printer_done.recv_timeout(Duration::from_secs(1));
            let mut stdout = std::io::stdout().lock();
            // Bracketed paste off (the editor turned it on), then a fresh line.
            let _ = stdout.write_all(b"\x1b[?2004l\n");
            let _ = stdout.flush();
            if let Some(saved) = saved {
                let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, saved);
            }
        }
        self.set_reading(false);
    }
}

/// Writes `text` and a line ending (unless it has one), then flushes. A
/// closed output (`qmp-shell ... | head`) is not an error worth reporting.
fn write_line(out: &mut impl Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

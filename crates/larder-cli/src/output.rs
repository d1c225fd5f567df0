//! The one place that renders output and errors: text for people, one JSON
//! object per line with `--json`; errors on stderr in both modes; progress
//! only on a terminal. Also the documented exit codes.

use std::process::ExitCode;

use larder::LarderError;
use serde_json::Value;

/// Exit code: the command failed (an error line says why), or `verify` /
/// `compact` found bad objects.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of `lock acquire` when another holder has the lease.
pub const EXIT_HELD: u8 = 3;
/// Exit code of `sync`/`pull` when some remote heads were quarantined
/// (everything else was merged). Documented in docs/sync.md.
pub const EXIT_QUARANTINED: u8 = 4;

/// How this invocation prints.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Text output, or JSON lines when `json`.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }

    /// One result on stdout: `value` as a JSON line, or the text `text()`.
    pub fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    /// A problem that is not the command's failure (a bad entry in a
    /// listing, a quarantined head): a JSON line or `bad: …` on stdout for
    /// listings, so the listing stays whole.
    pub fn bad_entry(&self, error: &dyn std::fmt::Display) {
        if self.json {
            println!("{}", serde_json::json!({ "error": error.to_string() }));
        } else {
            println!("bad: {error}");
        }
    }

    /// A warning on stderr (never mixed into stdout's results).
    pub fn warn(&self, message: &str) {
        if self.json {
            eprintln!("{}", serde_json::json!({ "warning": message }));
        } else {
            eprintln!("larder: {message}");
        }
    }

    /// The command's error, on stderr: one line, or one JSON object.
    pub fn error(&self, error: &LarderError) -> ExitCode {
        if self.json {
            eprintln!("{}", serde_json::json!({ "error": error.to_string() }));
        } else {
            eprintln!("larder: error: {error}");
        }
        ExitCode::from(EXIT_FAILURE)
    }

    /// Runs `work` with a spinner on a terminal; silently otherwise (pipes,
    /// `--json`), so scripts never see progress output.
    pub fn with_progress<T>(&self, message: &str, work: impl FnOnce() -> T) -> T {
        use std::io::IsTerminal;
        if self.json || !std::io::stderr().is_terminal() {
            return work();
        }
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message(message.to_owned());
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
        let result = work();
        spinner.finish_and_clear();
        result
    }
}

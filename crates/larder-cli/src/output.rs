//! The one place that renders output and errors: text for people, one JSON
//! object per line with `--json`; errors on stderr in both modes; progress
//! only on a terminal. Also the documented exit codes (docs/cli.md).

use std::process::ExitCode;

use larder::LarderError;
use serde_json::Value;

/// Exit code: the command failed (an error line says why), `verify` /
/// `compact` found bad objects, or a listing had bad entries.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad input: an unknown log, bad JSON, a bad revision or
/// date, a reserved or invalid log name — and clap's own argument errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `lock acquire` when another holder has the lease.
pub const EXIT_HELD: u8 = 3;
/// Exit code of `sync`/`pull` when some remote heads were quarantined
/// (everything else was merged). Documented in docs/sync.md.
pub const EXIT_QUARANTINED: u8 = 4;

/// A command's failure: a library error, or bad input the CLI itself found.
#[derive(Debug)]
pub enum CliError {
    /// A failure of the library (exit 1, or 2 when it is bad input such as
    /// an invalid log name or a commit that is not in the log).
    Larder(LarderError),
    /// Bad input, as one line saying what was wrong and what to do (exit 2).
    Usage(String),
    /// A failure outside the library, such as a file the CLI cannot
    /// write (exit 1).
    Failed(String),
}

impl<E: Into<LarderError>> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Larder(e.into())
    }
}

impl CliError {
    /// A bad-input error with `message`.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// The exit code this error gives.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Larder(e) if is_bad_input(e) => EXIT_USAGE,
            CliError::Larder(_) | CliError::Failed(_) => EXIT_FAILURE,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Larder(e) => write!(f, "{e}"),
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

/// Library errors that mean the command line asked for something wrong.
fn is_bad_input(e: &LarderError) -> bool {
    use larder::wal::WalError;
    match e {
        LarderError::NoSuchLog { .. }
        | LarderError::KeyMalformed { .. }
        | LarderError::KeyExists { .. } => true,
        LarderError::Wal(w) => matches!(
            **w,
            WalError::InvalidName { .. } | WalError::NotInLog { .. }
        ),
        LarderError::Codec(larder::codec::CodecError::InvalidHexId { .. }) => true,
        LarderError::Sign(
            larder::sign::SignError::BadPublicKey { .. } | larder::sign::SignError::BadActor { .. },
        ) => true,
        _ => false,
    }
}

/// Writes `text` and a newline to stdout. A reader that went away (`larder
/// log | head`) ends the process quietly with success — the output was
/// not wanted any more — instead of a panic.
pub fn out_line(text: &dyn std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Writes `text` and a newline to stderr, ignoring a closed stderr.
pub fn err_line(text: &dyn std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A command line clap refused, as one line (`larder: error: …`, with
/// clap's tip if it has one, or a JSON object when `--json` is among the
/// arguments) and [`EXIT_USAGE`]. Help and version requests print as
/// clap renders them.
pub fn argument_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
    }
    let line = one_line(&e.render().to_string());
    if std::env::args().any(|a| a == "--json") {
        err_line(&serde_json::json!({ "error": line, "exit_code": EXIT_USAGE }));
    } else {
        err_line(&format!("larder: error: {line}"));
    }
    ExitCode::from(EXIT_USAGE)
}

/// clap's rendered error as one line: the message, its tips, and where
/// to look (`larder … --help`).
fn one_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut help = "larder --help".to_owned();
    // An error line ending in ':' lists its items on the indented lines
    // that follow it.
    let mut listing = false;
    for raw in rendered.lines() {
        let line = raw.trim();
        if listing && raw.starts_with(' ') && !line.is_empty() && !line.starts_with("tip:") {
            if let Some(last) = parts.last_mut() {
                if !last.ends_with(':') {
                    last.push(',');
                }
                last.push(' ');
                last.push_str(line);
            }
            continue;
        }
        listing = false;
        if let Some(msg) = line.strip_prefix("error: ") {
            parts.push(msg.to_owned());
            listing = msg.ends_with(':');
        } else if line.starts_with("tip:") {
            parts.push(line.to_owned());
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            // `larder log [OPTIONS] [LOG]` → `larder log --help`.
            let words: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            help = format!("{} --help", words.join(" "));
        }
    }
    if parts.is_empty() {
        parts.push(
            rendered
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .to_owned(),
        );
    }
    parts.push(format!("see `{help}`"));
    parts.join("; ")
}

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
            out_line(&value);
        } else {
            out_line(&text());
        }
    }

    /// A problem that is not the command's failure (a bad entry in a
    /// listing, a quarantined head): a JSON line or `bad: …` on stdout for
    /// listings, so the listing stays whole. The command then exits with
    /// [`EXIT_FAILURE`] after printing everything.
    pub fn bad_entry(&self, error: &dyn std::fmt::Display) {
        if self.json {
            out_line(&serde_json::json!({ "error": error.to_string() }));
        } else {
            out_line(&format!("bad: {error}"));
        }
    }

    /// A warning on stderr (never mixed into stdout's results).
    pub fn warn(&self, message: &str) {
        if self.json {
            err_line(&serde_json::json!({ "warning": message }));
        } else {
            err_line(&format!("larder: {message}"));
        }
    }

    /// The command's error, on stderr: one line, or one JSON object.
    pub fn error(&self, error: &CliError) -> ExitCode {
        let code = error.exit_code();
        let line = error.to_string().replace('\n', " ");
        if self.json {
            err_line(&serde_json::json!({ "error": line, "exit_code": code }));
        } else {
            err_line(&format!("larder: error: {line}"));
        }
        ExitCode::from(code)
    }

    /// Whether progress is drawn: on a terminal, and never with `--json`.
    fn shows_progress(&self) -> bool {
        use std::io::IsTerminal;
        !self.json && std::io::stderr().is_terminal()
    }

    /// A progress display for work of `total` steps counted in `unit`
    /// (a bar with count, rate and ETA), or a spinner with a running count
    /// and rate when the total is unknown. Hidden unless stderr is a
    /// terminal and the output is text.
    pub fn progress(&self, message: &str, total: Option<u64>, unit: &str) -> Progress {
        if !self.shows_progress() {
            return Progress { bar: None };
        }
        let target = indicatif::ProgressDrawTarget::stderr();
        Progress {
            bar: Some(progress_bar(message, total, unit, target)),
        }
    }
}

/// The bar (or spinner) that [`Output::progress`] draws into `target`.
fn progress_bar(
    message: &str,
    total: Option<u64>,
    unit: &str,
    target: indicatif::ProgressDrawTarget,
) -> indicatif::ProgressBar {
    let template = match (total, unit.is_empty()) {
        (Some(_), _) => {
            format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)")
        }
        (None, false) => format!("{{spinner}} {{msg}}: {{pos}} {unit} ({{per_sec}}, {{elapsed}})"),
        (None, true) => "{spinner} {msg} ({elapsed})".to_owned(),
    };
    let style = indicatif::ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = indicatif::ProgressBar::with_draw_target(total, target)
        .with_style(style)
        .with_message(message.to_owned());
    if total.is_none() {
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
    }
    bar
}

/// A progress display from [`Output::progress`]; a no-op when hidden.
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Counts `n` more steps done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Removes the display (results follow on stdout).
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A terminal that records what is drawn on it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.0.lock().unwrap().push(s.to_owned());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_terminal_sees_count_rate_and_eta() {
        let screen = Screen::default();
        let target = indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let bar = progress_bar("verifying issues", Some(10), "commits", target);
        bar.inc(3);
        bar.force_draw();
        let drawn = screen.0.lock().unwrap().join("\n");
        let last = drawn
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or_default();
        assert!(last.starts_with("verifying issues [=========> "), "{drawn}");
        assert!(last.contains("3/10 commits ("), "{drawn}");
        assert!(last.contains("/s, ") && last.ends_with(" left)"), "{drawn}");
    }

    #[test]
    fn an_unknown_total_shows_a_running_count() {
        let screen = Screen::default();
        let target = indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let bar = progress_bar("reading", None, "commits", target);
        bar.inc(42);
        bar.force_draw();
        bar.finish_and_clear();
        let drawn = screen.0.lock().unwrap().join("\n");
        assert!(drawn.contains("reading: 42 commits ("), "{drawn}");
    }

    #[test]
    fn no_progress_with_json() {
        let p = Output::new(true).progress("x", Some(5), "commits");
        assert!(p.bar.is_none());
    }

    #[test]
    fn argument_errors_are_one_line_with_tips() {
        let rendered = "error: unexpected argument '--limt' found\n\n  tip: a similar argument exists: '--limit'\n\nUsage: larder log --limit <N> [LOG]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "unexpected argument '--limt' found; tip: a similar argument exists: '--limit'; see `larder log --help`"
        );
    }

    #[test]
    fn missing_arguments_are_listed_on_the_line() {
        let rendered = "error: the following required arguments were not provided:\n  --data <DATA>\n  --kind <KIND>\n\nUsage: larder append --log <LOG> --data <DATA>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "the following required arguments were not provided: --data <DATA>, --kind <KIND>; see `larder append --help`"
        );
    }

    #[test]
    fn bad_input_exits_2_and_failures_1() {
        assert_eq!(CliError::usage("x").exit_code(), EXIT_USAGE);
        let e: CliError = LarderError::NoSuchLog {
            log: "a".into(),
            known: "none".into(),
        }
        .into();
        assert_eq!(e.exit_code(), EXIT_USAGE);
        let e: CliError = LarderError::Identity {
            path: "p".into(),
            reason: "r".into(),
        }
        .into();
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }
}

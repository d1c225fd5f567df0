//! Recorded operations: what clients asked, what they were told, and when.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A malformed history, or a line of the text format that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    /// An operation returned before it was called.
    #[error("operation #{index} returns at {ret}, before its call at {call}")]
    ReturnBeforeCall {
        /// The operation's index in the history.
        index: usize,
        /// Its call time.
        call: u64,
        /// Its return time.
        ret: u64,
    },
    /// An operation has an output but no return time, or the reverse: both
    /// are known for a completed operation and neither for a pending one.
    #[error("operation #{index} has {} but {}", if *has_output { "an output" } else { "no output" }, if *has_ret { "a return time" } else { "no return time" })]
    OutputMismatch {
        /// The operation's index in the history.
        index: usize,
        /// Whether it has an output.
        has_output: bool,
        /// Whether it has a return time.
        has_ret: bool,
    },
    /// An input or output's text holds a tab or a line break, which the line
    /// format uses as separators.
    #[error("operation #{index}: its {field} text holds a tab or line break")]
    Unencodable {
        /// The operation's index in the history.
        index: usize,
        /// `"input"` or `"output"`.
        field: &'static str,
    },
    /// A line of the text format does not parse.
    #[error("line {line}: {reason}")]
    Parse {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// One operation as a client saw it.
///
/// Times come from one clock shared by every client: operation `a` precedes
/// `b` in real time exactly when `a.ret < b.call`; equal times count as
/// overlapping. An operation without a return (`ret` and `output` both
/// `None`: the client crashed or timed out) may have taken effect at any
/// point after its call, or never.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Who issued it; for explanations only (the checker needs no client
    /// order beyond the times).
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// What was answered; `None` if no answer came.
    pub output: Option<O>,
    /// When it was issued.
    pub call: u64,
    /// When the answer came; `None` if it never did.
    pub ret: Option<u64>,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret`.
    pub fn completed(client: u64, input: I, output: O, call: u64, ret: u64) -> Self {
        Self {
            client,
            input,
            output: Some(output),
            call,
            ret: Some(ret),
        }
    }

    /// An operation that never returned: it may or may not have taken effect.
    pub fn pending(client: u64, input: I, call: u64) -> Self {
        Self {
            client,
            input,
            output: None,
            call,
            ret: None,
        }
    }
}

/// A recorded history: operations in any order (the checker orders them by
/// time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<I, O> From<Vec<Operation<I, O>>> for History<I, O> {
    fn from(ops: Vec<Operation<I, O>>) -> Self {
        Self { ops }
    }
}

impl<I, O> FromIterator<Operation<I, O>> for History<I, O> {
    fn from_iter<T: IntoIterator<Item = Operation<I, O>>>(iter: T) -> Self {
        Self {
            ops: iter.into_iter().collect(),
        }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation.
    pub fn push(&mut self, op: Operation<I, O>) {
        self.ops.push(op);
    }

    /// Adds every operation of `other`: how histories recorded by several
    /// processes are combined. Their times must come from one clock (see
    /// [`Recorder::with_clock`]) and their client ids should differ.
    pub fn merge(&mut self, other: History<I, O>) {
        self.ops.extend(other.ops);
    }

    /// The operations, in recording order; a [`Counterexample`] names them
    /// by index into this slice.
    ///
    /// [`Counterexample`]: crate::Counterexample
    pub fn operations(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// The operations, to edit (a test corrupting one output, say).
    pub fn operations_mut(&mut self) -> &mut [Operation<I, O>] {
        &mut self.ops
    }

    /// The operations, by value.
    pub fn into_operations(self) -> Vec<Operation<I, O>> {
        self.ops
    }

    /// How many operations there are.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks that every operation returns no earlier than its call, and has
    /// an output exactly when it has a return time.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (index, op) in self.ops.iter().enumerate() {
            if op.output.is_some() != op.ret.is_some() {
                return Err(HistoryError::OutputMismatch {
                    index,
                    has_output: op.output.is_some(),
                    has_ret: op.ret.is_some(),
                });
            }
            if let Some(ret) = op.ret
                && ret < op.call
            {
                return Err(HistoryError::ReturnBeforeCall {
                    index,
                    call: op.call,
                    ret,
                });
            }
        }
        Ok(())
    }

    /// The history as text, one operation a line:
    /// `client<TAB>call<TAB>ret<TAB>input<TAB>output`, with `-` for the return
    /// time and output of a pending operation. `input` and `output` render
    /// the payloads, which must hold no tab or line break.
    pub fn to_lines(
        &self,
        input: impl Fn(&I) -> String,
        output: impl Fn(&O) -> String,
    ) -> Result<String, HistoryError> {
        self.validate()?;
        let mut text = String::new();
        for (index, op) in self.ops.iter().enumerate() {
            let input_text = input(&op.input);
            if has_separator(&input_text) {
                return Err(HistoryError::Unencodable {
                    index,
                    field: "input",
                });
            }
            let (ret_text, output_text) = match (&op.output, op.ret) {
                (Some(out), Some(ret)) => {
                    let out = output(out);
                    if has_separator(&out) {
                        return Err(HistoryError::Unencodable {
                            index,
                            field: "output",
                        });
                    }
                    (ret.to_string(), out)
                }
                _ => ("-".to_owned(), "-".to_owned()),
            };
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                op.client, op.call, ret_text, input_text, output_text
            ));
        }
        Ok(text)
    }

    /// Parses [`History::to_lines`]'s format; blank lines are skipped.
    /// `input` and `output` parse the payloads, `None` meaning malformed.
    pub fn from_lines(
        text: &str,
        input: impl Fn(&str) -> Option<I>,
        output: impl Fn(&str) -> Option<O>,
    ) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fail = |reason: &str| HistoryError::Parse {
                line: line_no,
                reason: reason.to_owned(),
            };
            let fields: Vec<&str> = line.split('\t').collect();
            let [client, call, ret, input_text, output_text] = fields[..] else {
                return Err(fail("expected 5 tab-separated fields"));
            };
            let client = client.parse().map_err(|_| fail("client is not a number"))?;
            let call = call
                .parse()
                .map_err(|_| fail("call time is not a number"))?;
            let input = input(input_text).ok_or_else(|| fail("input does not parse"))?;
            let op = if ret == "-" {
                Operation::pending(client, input, call)
            } else {
                let ret = ret
                    .parse()
                    .map_err(|_| fail("return time is neither a number nor -"))?;
                let output = output(output_text).ok_or_else(|| fail("output does not parse"))?;
                Operation::completed(client, input, output, call, ret)
            };
            ops.push(op);
        }
        let history = Self { ops };
        history.validate()?;
        Ok(history)
    }
}

fn has_separator(text: &str) -> bool {
    text.contains(['\t', '\n', '\r'])
}

/// Nanoseconds since the Unix epoch: a clock that processes on one machine
/// share, for [`Recorder::with_clock`] when several processes record one
/// history. A wall clock stepped backwards while recording can make a
/// correct history look non-linearizable; tests on one machine, where the
/// clock only slews, are fine.
pub fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

enum Clock {
    Counter(AtomicU64),
    Custom(Box<dyn Fn() -> u64 + Send + Sync>),
}

/// Records a history from any number of threads: [`Recorder::call`] before
/// issuing an operation, [`Recorder::ret`] with its answer. Both stamp the
/// time from one clock — by default a counter, so no two events share a
/// time — taken before the operation is issued and after its answer
/// arrived, which is what makes the recorded interval contain the real one.
pub struct Recorder<I, O> {
    clock: Clock,
    ops: Mutex<Vec<Operation<I, O>>>,
}

/// An operation in flight, returned by [`Recorder::call`]. Pass it to
/// [`Recorder::ret`] with the answer; dropping it leaves the operation
/// pending, as a crash or timeout does.
#[derive(Debug)]
#[must_use = "pass the token to Recorder::ret, or drop it explicitly to record a crash"]
pub struct Token {
    index: usize,
}

impl Token {
    /// The operation's index in the recorded history.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<I, O> Default for Recorder<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I, O> Recorder<I, O> {
    /// A recorder stamping times from an in-process counter.
    pub fn new() -> Self {
        Self {
            clock: Clock::Counter(AtomicU64::new(0)),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// A recorder stamping times from `clock`, which must never go backwards
    /// and must be shared by every process whose history is merged with this
    /// one (for example [`wall_clock_nanos`]).
    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            clock: Clock::Custom(Box::new(clock)),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// The clock's current time.
    pub fn now(&self) -> u64 {
        match &self.clock {
            Clock::Counter(counter) => counter.fetch_add(1, Ordering::SeqCst),
            Clock::Custom(clock) => clock(),
        }
    }

    /// Records that `client` is about to issue `input`.
    pub fn call(&self, client: u64, input: I) -> Token {
        let call = self.now();
        let mut ops = self.lock();
        ops.push(Operation::pending(client, input, call));
        Token {
            index: ops.len() - 1,
        }
    }

    /// Records the answer to the operation `token` stands for. A token from
    /// another recorder is ignored.
    pub fn ret(&self, token: Token, output: O) {
        let ret = self.now();
        if let Some(op) = self.lock().get_mut(token.index) {
            op.output = Some(output);
            op.ret = Some(ret);
        }
    }

    /// The history so far; operations still in flight are pending in it.
    pub fn history(&self) -> History<I, O>
    where
        I: Clone,
        O: Clone,
    {
        History {
            ops: self.lock().clone(),
        }
    }

    /// The history, consuming the recorder.
    pub fn into_history(self) -> History<I, O> {
        History {
            ops: self
                .ops
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// The operations; a thread that panicked while holding the lock left
    /// them whole (each change is one push or one field write), so poisoning
    /// is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Operation<I, O>>> {
        self.ops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

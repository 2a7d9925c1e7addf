//! The exit statuses of `smolsweep train` and `smolsweep eval`, the
//! process contract the orchestrator (and Slurm, and a user's shell)
//! reads a trial's end from.

/// How a trial process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Finished: the model is exported (train) or results.json written (eval).
    Done = 0,
    /// Bad input or an error; the message is on stderr.
    Error = 1,
    /// Bad command line (clap's status).
    Usage = 2,
    /// The loss diverged: a result, not a failure.
    Diverged = 3,
    /// Stopped by SIGTERM/SIGINT after writing a checkpoint; resume with `--resume`.
    Stopped = 4,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The meaning of a status, when it has one.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        match code {
            0 => Some(ExitCode::Done),
            1 => Some(ExitCode::Error),
            2 => Some(ExitCode::Usage),
            3 => Some(ExitCode::Diverged),
            4 => Some(ExitCode::Stopped),
            _ => None,
        }
    }
}

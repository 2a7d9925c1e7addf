//! Trial states: pending -> running -> completed | failed | diverged |
//! stopped_early. Completed, diverged and stopped_early are results and
//! never rerun (a stopped_early trial is resumed to the end only when the
//! sweep's `stop_rule` is turned off); failed is retried up to
//! `resources.max_retries`. The database stores the word (its CHECK
//! constraint lists the same six; a test holds them equal).

use crate::enums::word_enum;

word_enum! {
    /// Where a trial is in its life.
    TrialState {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Diverged = "diverged",
        /// Stopped by the sweep's stop rule; its last checkpoint is scored.
        StoppedEarly = "stopped_early",
    }
}

impl TrialState {
    /// Completed, diverged, stopped early or failed: nothing more will
    /// happen to it (a failed trial is reopened only by a later `run` with
    /// retries left, a stopped one only when the stop rule is turned off).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TrialState::Completed
                | TrialState::Diverged
                | TrialState::Failed
                | TrialState::StoppedEarly
        )
    }

    /// Completed or stopped early: the trial has an export and scores.
    pub fn is_scored(self) -> bool {
        matches!(self, TrialState::Completed | TrialState::StoppedEarly)
    }
}

#[cfg(feature = "sqlx")]
mod sql {
    use super::TrialState;
    use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
    use sqlx::{Decode, Encode, Type};

    impl Type<Sqlite> for TrialState {
        fn type_info() -> SqliteTypeInfo {
            <&str as Type<Sqlite>>::type_info()
        }
        fn compatible(ty: &SqliteTypeInfo) -> bool {
            <&str as Type<Sqlite>>::compatible(ty)
        }
    }

    impl<'q> Encode<'q, Sqlite> for TrialState {
        fn encode_by_ref(
            &self,
            buf: &mut Vec<SqliteArgumentValue<'q>>,
        ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
            <&str as Encode<Sqlite>>::encode_by_ref(&self.as_str(), buf)
        }
    }

    impl<'r> Decode<'r, Sqlite> for TrialState {
        fn decode(value: SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
            let s = <&str as Decode<Sqlite>>::decode(value)?;
            Ok(s.parse::<TrialState>()?)
        }
    }
}

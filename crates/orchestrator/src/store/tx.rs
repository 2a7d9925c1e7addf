//! The one way the store changes the record: a `BEGIN IMMEDIATE`
//! transaction, which takes SQLite's write lock up front so a
//! compare-and-swap inside it cannot be raced, with the event log written
//! in the same commit as the change it describes. Every error names the
//! database.

use serde_json::Value as Json;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::{now, Store, StoreError};

/// An open write transaction; dropped without [`commit`](Self::commit), it
/// rolls back.
pub(super) struct WriteTx<'s> {
    tx: Transaction<'static, Sqlite>,
    store: &'s Store,
}

impl Store {
    /// Starts a write transaction.
    pub(super) async fn write(&self) -> Result<WriteTx<'_>, StoreError> {
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        Ok(WriteTx { tx, store: self })
    }
}

impl WriteTx<'_> {
    /// Runs a statement; returns how many rows it changed.
    pub(super) async fn execute<'q>(
        &mut self,
        query: Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<u64, StoreError> {
        query
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| self.store.err(e))
    }

    /// The connection, for queries that fetch rows (map their errors with
    /// [`err`](Self::err)).
    pub(super) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }

    pub(super) fn err(&self, source: sqlx::Error) -> StoreError {
        self.store.err(source)
    }

    /// Appends to the event log (`data` null: no data).
    pub(super) async fn log_event(
        &mut self,
        trial: Option<i64>,
        kind: &str,
        data: &Json,
    ) -> Result<(), StoreError> {
        let data = if data.is_null() {
            None
        } else {
            Some(data.to_string())
        };
        self.execute(
            sqlx::query("INSERT INTO events (trial_id, at, kind, data_json) VALUES (?, ?, ?, ?)")
                .bind(trial)
                .bind(now())
                .bind(kind)
                .bind(data),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(|e| self.store.err(e))
    }
}

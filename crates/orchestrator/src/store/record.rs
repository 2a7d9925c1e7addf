//! Opening the record (WAL, one connection, migrations applied on open),
//! the sweep row with its frozen spec and grid points, and the
//! orchestrator's proof of life in it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{now, Store, StoreError};
use smolsweep_config::sweep::{check_frozen, point_key, point_label};
use smolsweep_config::SweepSpec;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The sweep row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SweepRow {
    pub id: i64,
    pub name: String,
    pub spec_json: String,
    pub orchestrator_pid: Option<i64>,
    pub orchestrator_heartbeat: Option<f64>,
}

impl Store {
    /// Opens (creating if needed) the database and applies migrations.
    pub async fn open(db: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = db.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                db: db.to_path_buf(),
                dir: parent.to_path_buf(),
                source,
            })?;
        }
        let store = Self::connect(db, false).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the pending migrations with foreign keys off, as SQLite
    /// requires for rebuilding a table others refer to (a pragma that
    /// cannot change inside the migration's transaction), then checks
    /// every foreign key and turns them back on.
    async fn migrate(&self) -> Result<(), StoreError> {
        let sql = |source| StoreError::Sql {
            db: self.db.clone(),
            source,
        };
        let mut conn = self.pool.acquire().await.map_err(sql)?;
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await
            .map_err(sql)?;
        let applied = MIGRATOR.run(&mut *conn).await;
        let broken: Result<Vec<(String, i64)>, _> =
            sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
                .fetch_all(&mut *conn)
                .await;
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await
            .map_err(sql)?;
        applied.map_err(|source| StoreError::Migrate {
            db: self.db.clone(),
            source,
        })?;
        match broken.map_err(sql)?.first() {
            None => Ok(()),
            Some((table, row)) => Err(StoreError::Sql {
                db: self.db.clone(),
                source: sqlx::Error::Protocol(format!(
                    "after migrating, row {row} of table {table} refers to a row that does not exist"
                )),
            }),
        }
    }

    /// Opens an existing database for reading (status, export).
    pub async fn open_read_only(db: &Path) -> Result<Self, StoreError> {
        if !db.is_file() {
            return Err(StoreError::NoSweep {
                db: db.to_path_buf(),
            });
        }
        Self::connect(db, true).await
    }

    async fn connect(db: &Path, read_only: bool) -> Result<Self, StoreError> {
        let sql = |source| StoreError::Sql {
            db: db.to_path_buf(),
            source,
        };
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(sql)?
            .filename(db)
            .create_if_missing(!read_only)
            .read_only(read_only)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across process crashes in WAL mode (a power
            // cut may lose the last commits, never corrupt the file).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(sql)?;
        Ok(Self {
            pool,
            db: db.to_path_buf(),
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn sweep(&self) -> Result<SweepRow, StoreError> {
        sqlx::query_as::<_, SweepRow>(
            "SELECT id, name, spec_json, orchestrator_pid, orchestrator_heartbeat FROM sweeps ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .ok_or_else(|| StoreError::NoSweep {
            db: self.db.clone(),
        })
    }

    /// Records the sweep on first run; on later runs checks the spec is
    /// unchanged except for added grid values, and inserts the new points.
    /// Returns the sweep id and how many trials were added.
    pub async fn ensure_sweep(
        &self,
        spec: &SweepSpec,
        pid: u32,
    ) -> Result<(i64, usize), StoreError> {
        let frozen = spec.frozen();
        let mut w = self.write().await?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, spec_json FROM sweeps ORDER BY id LIMIT 1")
                .fetch_optional(w.conn())
                .await
                .map_err(|e| w.err(e))?;
        let t = now();
        let sweep_id = match existing {
            Some((id, old)) => {
                let old: Json =
                    serde_json::from_str(&old).map_err(|source| StoreError::RecordedSpec {
                        db: self.db.clone(),
                        source,
                    })?;
                check_frozen(&old, &frozen).map_err(|key| StoreError::SpecChanged {
                    file: spec.file.clone(),
                    db: self.db.clone(),
                    key,
                })?;
                w.execute(
                    sqlx::query(
                        "UPDATE sweeps SET spec_json = ?, updated_at = ?, orchestrator_pid = ?, orchestrator_heartbeat = ? WHERE id = ?",
                    )
                    .bind(frozen.to_string())
                    .bind(t)
                    .bind(pid as i64)
                    .bind(t)
                    .bind(id),
                )
                .await?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO sweeps (name, spec_json, spec_toml, created_at, updated_at, orchestrator_pid, orchestrator_heartbeat) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&spec.name)
            .bind(frozen.to_string())
            .bind(&spec.source)
            .bind(t)
            .bind(t)
            .bind(pid as i64)
            .bind(t)
            .fetch_one(w.conn())
            .await
            .map_err(|e| w.err(e))?,
        };
        let mut added = 0;
        for point in spec.points() {
            let key = point_key(&point);
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO trials (sweep_id, point_key, dir, state, attempt) VALUES (?, ?, '', 'pending', 1) \
                 ON CONFLICT (sweep_id, point_key) DO NOTHING RETURNING id",
            )
            .bind(sweep_id)
            .bind(&key)
            .fetch_optional(w.conn())
            .await
            .map_err(|e| w.err(e))?;
            if let Some(id) = id {
                let dir = format!("trials/{id:04}_{}", dir_label(&point_label(&point)));
                w.execute(
                    sqlx::query("UPDATE trials SET dir = ? WHERE id = ?")
                        .bind(&dir)
                        .bind(id),
                )
                .await?;
                w.log_event(Some(id), "added", &serde_json::json!({ "point": key }))
                    .await?;
                added += 1;
            }
        }
        w.commit().await?;
        Ok((sweep_id, added))
    }

    /// Proof of life for the running trials, and for the orchestrator.
    pub async fn heartbeat(&self, ids: &[i64], pid: u32) -> Result<(), StoreError> {
        let t = now();
        let mut w = self.write().await?;
        for id in ids {
            w.execute(
                sqlx::query("UPDATE trials SET heartbeat_at = ? WHERE id = ?")
                    .bind(t)
                    .bind(id),
            )
            .await?;
        }
        w.execute(
            sqlx::query("UPDATE sweeps SET orchestrator_pid = ?, orchestrator_heartbeat = ?")
                .bind(pid as i64)
                .bind(t),
        )
        .await?;
        w.commit().await
    }

    /// The orchestrator is leaving: no pid holds the sweep any more.
    pub async fn release(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE sweeps SET orchestrator_pid = NULL, orchestrator_heartbeat = ?")
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// A directory-safe version of a point label.
fn dir_label(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| match c {
            ' ' => '_',
            c if c.is_ascii_alphanumeric() || "-_.=+".contains(c) => c,
            _ => '-',
        })
        .collect();
    s.chars().take(100).collect()
}

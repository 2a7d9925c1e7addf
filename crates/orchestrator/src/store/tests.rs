//! The record's state machine end to end on a real database: every write
//! goes through one transaction helper, so these pin what each one leaves.

use super::*;
use smolsweep_config::SweepSpec;
use smolsweep_config::TrialState;

fn spec(d: &tempfile::TempDir) -> SweepSpec {
    std::fs::create_dir_all(d.path().join("model")).expect("mkdir");
    std::fs::write(d.path().join("model/config.json"), "{}").expect("write");
    std::fs::write(d.path().join("train.jsonl"), "").expect("write");
    let text = "[train]\nmodel = \"model\"\ndata = [\"train.jsonl\"]\n\
                [grid]\nlr = [1e-4, 2e-4]\n";
    SweepSpec::parse(&d.path().join("s.toml"), text).expect("valid spec")
}

fn line(text: &str) -> EventLine {
    EventLine::new(serde_json::from_str(text).expect("json"))
}

async fn kinds(store: &Store) -> Vec<String> {
    store
        .events(&[])
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn claim_record_finish_round_trip() {
    let d = tempfile::tempdir().expect("tempdir");
    let spec = spec(&d);
    block_on(async {
        let store = Store::open(&d.path().join("sweep.db")).await.expect("open");
        assert_eq!(store.ensure_sweep(&spec, 1).await.expect("sweep").1, 2);
        // A second run adds nothing.
        assert_eq!(store.ensure_sweep(&spec, 1).await.expect("sweep").1, 0);

        let a = store.claim(0, "0").await.expect("claim").expect("a trial");
        assert_eq!(a.state, TrialState::Running);
        assert_eq!(a.cuda_visible_devices.as_deref(), Some("0"));
        let b = store.claim(1, "1").await.expect("claim").expect("a trial");
        assert_ne!(a.id, b.id);
        assert!(store.claim(2, "").await.expect("claim").is_none());

        store
            .spawned(a.id, "train", 42, &[])
            .await
            .expect("spawned");
        let events = [
            line(
                r#"{"event":"step","step":3,"loss":2.5,"epoch":0.5,"lr":1e-4,"grad_norm":1.0,
                    "tokens":100,"tokens_per_s":10.0,"elapsed_s":10.0}"#,
            ),
            line(r#"{"event":"done","step":4,"loss":2.0,"export":"export","elapsed_s":11.0}"#),
        ];
        store
            .record_events(a.id, &events, 77)
            .await
            .expect("record");
        let t = store.trial(a.id).await.expect("trial");
        assert_eq!((t.step, t.last_loss), (Some(4), Some(2.0)));
        assert_eq!(t.events_offset, 77);
        assert_eq!(t.export_dir.as_deref(), Some("export"));
        assert_eq!(t.stage.as_deref(), Some("train"));

        let score = Score {
            task: "arc_easy".into(),
            metric: "acc".into(),
            value: 0.5,
            stderr: Some(0.1),
        };
        let done = TrialOutcome::Completed {
            results_json: Some("{}".into()),
            scores: vec![score.clone()],
        };
        assert_eq!(
            store.finish(a.id, &done, 1).await.expect("finish"),
            TrialState::Completed
        );
        assert_eq!(
            store.scores().await.expect("scores"),
            vec![RecordedScore {
                trial_id: a.id,
                score
            }]
        );

        // max_retries = 1: the first failure retries, the second is final.
        let failed = TrialOutcome::Failed {
            stage: "train".into(),
            exit_status: Some(1),
            reason: "boom".into(),
        };
        assert_eq!(
            store.finish(b.id, &failed, 1).await.expect("finish"),
            TrialState::Pending
        );
        let b = store.claim(1, "1").await.expect("claim").expect("retry");
        assert_eq!(b.attempt, 2);
        assert_eq!(
            store.finish(b.id, &failed, 1).await.expect("finish"),
            TrialState::Failed
        );
        assert_eq!(
            store.trial(b.id).await.expect("trial").error.as_deref(),
            Some("boom")
        );

        assert_eq!(
            kinds(&store).await,
            [
                "added",
                "added",
                "claimed",
                "claimed",
                "spawned",
                "train.done",
                "finished",
                "finished",
                "claimed",
                "finished",
            ]
        );
        store.close().await;
    });
}

#[test]
fn interrupted_and_recovered_trials_go_back_to_pending() {
    let d = tempfile::tempdir().expect("tempdir");
    let spec = spec(&d);
    block_on(async {
        let store = Store::open(&d.path().join("sweep.db")).await.expect("open");
        store.ensure_sweep(&spec, 1).await.expect("sweep");
        let a = store.claim(0, "").await.expect("claim").expect("a trial");
        let stop = TrialOutcome::Interrupted {
            reason: "sweep stopping".into(),
        };
        assert_eq!(
            store.finish(a.id, &stop, 0).await.expect("finish"),
            TrialState::Pending
        );
        let a = store.claim(0, "").await.expect("claim").expect("again");
        assert_eq!(a.attempt, 1, "an interruption is not a new attempt");
        store.recover(a.id).await.expect("recover");
        assert_eq!(
            store.trial(a.id).await.expect("trial").state,
            TrialState::Pending
        );
        let tail = kinds(&store).await;
        assert_eq!(
            tail[tail.len() - 3..],
            ["interrupted", "claimed", "recovered"]
        );
        store.close().await;
    });
}

/// The enum's states are the database's: the CHECK constraint of the
/// migration that last rebuilt `trials` lists exactly the same words.
#[test]
fn trial_states_match_the_check_constraint() {
    let sql = include_str!("../../../../migrations/0004_stopped_early.sql");
    let at = sql.find("CHECK (state IN (").expect("the state CHECK");
    let list = &sql[at + "CHECK (state IN (".len()..];
    let list = &list[..list.find(')').expect("closing parenthesis")];
    let words: Vec<&str> = list
        .split(',')
        .map(|w| w.trim().trim_matches('\''))
        .collect();
    assert_eq!(words, TrialState::NAMES);
}

/// A collapse is recorded with the rule that fired and what it saw, from
/// the trainer's event and again from the outcome; an event line of an
/// older trainer (no rule) is a non-finite divergence.
#[test]
fn divergence_is_recorded_with_its_rule() {
    let d = tempfile::tempdir().expect("tempdir");
    let spec = spec(&d);
    block_on(async {
        let store = Store::open(&d.path().join("sweep.db")).await.expect("open");
        store.ensure_sweep(&spec, 1).await.expect("sweep");
        let a = store.claim(0, "").await.expect("claim").expect("a trial");
        let ev = line(
            r#"{"event":"diverged","step":22,"last_finite_loss":5.5568,"rule":"zero_grad","message":"the global gradient norm was 0"}"#,
        );
        store.record_events(a.id, &[ev], 10).await.expect("record");
        let t = store.trial(a.id).await.expect("trial");
        assert_eq!(t.diverged_step, Some(22));
        assert_eq!(t.diverged_rule.as_deref(), Some("zero_grad"));
        assert_eq!(
            t.diverged_message.as_deref(),
            Some("the global gradient norm was 0")
        );
        let out = TrialOutcome::Diverged {
            step: Some(22),
            last_finite_loss: Some(5.5568),
            rule: Some(smolsweep_config::DivergenceRule::ZeroGrad),
            message: Some("the global gradient norm was 0".into()),
        };
        assert_eq!(
            store.finish(a.id, &out, 1).await.expect("finish"),
            TrialState::Diverged
        );
        let reason: Option<String> =
            sqlx::query_scalar("SELECT reason FROM attempts WHERE trial_id = ?")
                .bind(a.id)
                .fetch_one(&store.pool)
                .await
                .expect("attempt");
        assert_eq!(
            reason.as_deref(),
            Some("zero_grad: the global gradient norm was 0")
        );

        let b = store.claim(0, "").await.expect("claim").expect("b");
        let old = line(r#"{"event":"diverged","step":3,"last_finite_loss":1.5}"#);
        store.record_events(b.id, &[old], 10).await.expect("record");
        let t = store.trial(b.id).await.expect("trial");
        assert_eq!(t.diverged_rule.as_deref(), Some("non_finite"));
        assert_eq!(t.diverged_message, None);
        store.close().await;
    });
}

/// A record written before divergence had rules: its diverged trials
/// read as non-finite once the new migration is applied.
#[test]
fn older_records_name_their_diverged_trials_non_finite() {
    let d = tempfile::tempdir().expect("tempdir");
    let first = d.path().join("first");
    std::fs::create_dir_all(&first).expect("mkdir");
    std::fs::write(
        first.join("0001_sweep_record.sql"),
        include_str!("../../../../migrations/0001_sweep_record.sql"),
    )
    .expect("write");
    let db = d.path().join("sweep.db");
    block_on(async {
        {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&db)
                        .create_if_missing(true),
                )
                .await
                .expect("pool");
            sqlx::migrate::Migrator::new(first.as_path())
                .await
                .expect("migrator")
                .run(&pool)
                .await
                .expect("0001 only");
            sqlx::query(
                "INSERT INTO sweeps (id, name, spec_json, spec_toml, created_at, updated_at) VALUES (1, 's', '{}', '', 0, 0)",
            )
            .execute(&pool)
            .await
            .expect("sweep");
            sqlx::query(
                "INSERT INTO trials (sweep_id, point_key, dir, state, diverged_step) VALUES \
                 (1, '{\"lr\":1}', 'a', 'diverged', 7), (1, '{\"lr\":2}', 'b', 'completed', NULL)",
            )
            .execute(&pool)
            .await
            .expect("trials");
            pool.close().await;
        }
        let store = Store::open(&db).await.expect("migrated");
        let rules: Vec<Option<String>> = store
            .trials()
            .await
            .expect("trials")
            .into_iter()
            .map(|t| t.diverged_rule)
            .collect();
        assert_eq!(rules, [Some("non_finite".to_string()), None]);
        store.close().await;
    });
}

/// A record made before `stopped_early` existed (migrations 0001-0003,
/// with trials that steps, attempts, scores and events refer to): read
/// read-only as it is, then rebuilt by the next open with every row and
/// reference intact, and the new state accepted.
#[test]
fn a_record_from_before_stopped_early_migrates_whole() {
    let d = tempfile::tempdir().expect("tempdir");
    let old = d.path().join("migrations");
    std::fs::create_dir_all(&old).expect("mkdir");
    for m in [
        "0001_sweep_record.sql",
        "0002_divergence.sql",
        "0003_eval_grow.sql",
    ] {
        let from = format!("{}/../../migrations/{m}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(from, old.join(m)).expect("copy migration");
    }
    let db = d.path().join("sweep.db");
    block_on(async {
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await
        .expect("connect");
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .expect("old migrations")
            .run(&pool)
            .await
            .expect("apply 0001-0003");
        sqlx::raw_sql(
            "INSERT INTO sweeps (id, name, spec_json, spec_toml, created_at, updated_at) \
             VALUES (1, 's', '{}', '', 0, 0); \
             INSERT INTO trials (id, sweep_id, point_key, dir, state, step, diverged_rule) VALUES \
               (1, 1, '{\"lr\":1}', 'a', 'completed', 40, NULL), \
               (2, 1, '{\"lr\":2}', 'b', 'diverged', 7, 'zero_grad'); \
             INSERT INTO steps (trial_id, step, loss, recorded_at) VALUES (1, 1, 2.5, 0), (1, 2, 2.0, 0); \
             INSERT INTO attempts (trial_id, attempt, ended_at, outcome) VALUES (2, 1, 0, 'diverged'); \
             INSERT INTO eval_results (trial_id, task, metric, value) VALUES (1, 'arc_easy', 'acc', 0.5); \
             INSERT INTO events (trial_id, at, kind) VALUES (1, 0, 'spawned');",
        )
        .execute(&pool)
        .await
        .expect("rows of an old record");
        pool.close().await;

        let read = Store::open_read_only(&db).await.expect("read-only");
        let before = read.trials().await.expect("trials of an unmigrated record");
        assert_eq!(before.len(), 2);
        assert_eq!(before[1].diverged_rule.as_deref(), Some("zero_grad"));
        assert_eq!(before[1].stopped_step, None);
        // `status` and `report` read jobs too: none, not an error.
        assert!(read
            .slurm_jobs()
            .await
            .expect("jobs of an unmigrated record")
            .is_empty());
        read.close().await;

        let store = Store::open(&db).await.expect("migrate");
        let after = store.trials().await.expect("trials");
        assert_eq!(
            after
                .iter()
                .map(|t| (t.id, t.state, t.step, t.diverged_rule.clone()))
                .collect::<Vec<_>>(),
            vec![
                (1, TrialState::Completed, Some(40), None),
                (
                    2,
                    TrialState::Diverged,
                    Some(7),
                    Some("zero_grad".to_string())
                ),
            ]
        );
        assert_eq!(
            store.curve(1).await.expect("curve").points,
            [(1, 2.5), (2, 2.0)]
        );
        assert_eq!(store.scores().await.expect("scores").len(), 1);
        assert_eq!(kinds(&store).await, ["spawned"]);
        // The children still point at the rebuilt table, and it takes the
        // new state.
        let fk: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_foreign_key_check")
            .fetch_one(&store.pool)
            .await
            .expect("foreign_key_check");
        assert_eq!(fk, 0);
        let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(on, 1, "foreign keys are on again after migrating");
        sqlx::query("UPDATE trials SET state = 'stopped_early', stopped_step = 3 WHERE id = 1")
            .execute(&store.pool)
            .await
            .expect("the new state");
        assert!(
            sqlx::query("INSERT INTO steps (trial_id, step, recorded_at) VALUES (99, 1, 0)")
                .execute(&store.pool)
                .await
                .is_err(),
            "a step of no trial is refused: the reference to trials holds"
        );
        let stopped = store.reopen_stopped_early().await.expect("reopen");
        assert_eq!(stopped.len(), 1);
        assert_eq!(
            store.trial(1).await.expect("trial").state,
            TrialState::Pending
        );
        assert!(store.scores().await.expect("scores").is_empty());
        store.close().await;
    });
}

/// A record made by the first Slurm backend (migrations up to 0006, one
/// job per attempt): read read-only as it is (every job its attempt's
/// first submission, never cancelled), then rebuilt by the next open with
/// its jobs intact, and an attempt the sweep cancelled takes a second job.
#[test]
fn a_record_from_before_resubmission_migrates_whole() {
    let d = tempfile::tempdir().expect("tempdir");
    let old = d.path().join("migrations");
    std::fs::create_dir_all(&old).expect("mkdir");
    let all = format!("{}/../../migrations", env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(&all).expect("migrations").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.as_str() <= "0006_slurm_jobs.sql" {
            std::fs::copy(e.path(), old.join(&name)).expect("copy migration");
        }
    }
    let db = d.path().join("sweep.db");
    block_on(async {
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await
        .expect("connect");
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .expect("old migrations")
            .run(&pool)
            .await
            .expect("apply up to 0006");
        sqlx::raw_sql(
            "INSERT INTO sweeps (id, name, spec_json, spec_toml, created_at, updated_at) \
             VALUES (1, 's', '{}', '', 0, 0); \
             INSERT INTO trials (id, sweep_id, point_key, dir, state) VALUES \
               (1, 1, '{\"lr\":1}', 'a', 'running'); \
             INSERT INTO slurm_jobs (trial_id, attempt, job_name, job_id, state, node, restarts, submitted_at) \
               VALUES (1, 1, 'ss.s.x.t1.a1', '42', 'RUNNING', 'n1', 1, 5);",
        )
        .execute(&pool)
        .await
        .expect("rows of an old record");
        pool.close().await;

        let read = Store::open_read_only(&db).await.expect("read-only");
        let before = read
            .slurm_jobs()
            .await
            .expect("jobs of an unmigrated record");
        assert_eq!(before.len(), 1);
        assert_eq!(
            (
                before[0].submission,
                before[0].cancelled_at,
                before[0].job_id.as_deref()
            ),
            (1, None, Some("42"))
        );
        read.close().await;

        let store = Store::open(&db).await.expect("migrate");
        let job = store.slurm_job(1, 1).await.expect("job").expect("a job");
        assert_eq!(job, before[0]);
        store
            .slurm_cancelling(job.key(), "test")
            .await
            .expect("cancel");
        store
            .slurm_seen(job.key(), "CANCELLED", None, None, true)
            .await
            .expect("seen");
        let next = JobKey {
            submission: 2,
            ..job.key()
        };
        assert!(store
            .slurm_intent(next, "ss.s.x.t1.a1.s2")
            .await
            .expect("intent"));
        assert!(
            !store
                .slurm_intent(next, "ss.s.x.t1.a1.s2")
                .await
                .expect("intent"),
            "one row per submission"
        );
        store
            .slurm_submitted(next, "43", "sbatch")
            .await
            .expect("submitted");
        let latest = store.slurm_job(1, 1).await.expect("job").expect("a job");
        assert_eq!(
            (
                latest.submission,
                latest.job_id.as_deref(),
                latest.cancelled_at
            ),
            (2, Some("43"), None)
        );
        let jobs = store.slurm_jobs().await.expect("jobs");
        assert_eq!(
            jobs.iter()
                .map(|j| (
                    j.submission,
                    j.state.clone(),
                    j.cancelled_at.is_some(),
                    j.node.clone()
                ))
                .collect::<Vec<_>>(),
            vec![
                (
                    1,
                    Some("CANCELLED".to_string()),
                    true,
                    Some("n1".to_string())
                ),
                (2, Some("PENDING".to_string()), false, None),
            ]
        );
        assert_eq!(
            kinds(&store).await,
            [
                "slurm.cancel",
                "slurm.state",
                "slurm.intent",
                "slurm.submitted"
            ]
        );
        store.close().await;
    });
}

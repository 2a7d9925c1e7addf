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
/// applied migration lists exactly the same words.
#[test]
fn trial_states_match_the_check_constraint() {
    let sql = include_str!("../../../../migrations/0001_sweep_record.sql");
    let at = sql.find("CHECK (state IN (").expect("the state CHECK");
    let list = &sql[at + "CHECK (state IN (".len()..];
    let list = &list[..list.find(')').expect("closing parenthesis")];
    let words: Vec<&str> = list
        .split(',')
        .map(|w| w.trim().trim_matches('\''))
        .collect();
    assert_eq!(words, TrialState::NAMES);
}

//! The tokenisation cache end to end, through `smolsweep train`: a SIGTERM
//! while the data is tokenised stops the trial at once (exit 4) with no
//! cache left behind, an old-format or truncated cache is rebuilt with the
//! reason logged, and two trials started together tokenise once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;

/// `n` two-turn conversations with `len`-character answers, as JSONL.
fn write_conversations(path: &Path, n: usize, len: usize) {
    let mut text = String::new();
    for i in 0..n {
        let answer = format!("answer {i} {}", "because ".repeat(len / 8 + 1));
        let row = serde_json::json!({"messages": [
            {"role": "user", "content": format!("q{i}")},
            {"role": "assistant", "content": answer}
        ]});
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write data");
}

/// A trial of the tiny fixture model on `data`, writing under `dir`, with
/// its cache in `cache`.
fn trial(dir: &Path, data: &Path, cache: &Path, max_steps: u32) -> PathBuf {
    let model = root().join("tests/fixtures/trainer/tiny-model");
    let text = format!(
        "model = \"{}\"\ninit = \"pretrained\"\ndata = [\"{}\"]\nchat_template = \"chatml\"\n\
         max_seq_len = 64\nlr = 1e-3\nbatch_size = 2\nmicro_batch_size = 2\nmax_steps = {max_steps}\n\
         warmup_ratio = 0.0\nseed = 1\noutput_dir = \"{}\"\ncache_dir = \"{}\"\ndevice = \"cpu\"\n\
         dtype = \"f32\"\ncheckpoint_every_steps = 1000\n",
        model.display(),
        data.display(),
        dir.join("out").display(),
        cache.display()
    );
    std::fs::create_dir_all(dir).expect("mkdir");
    let p = dir.join("trial.toml");
    std::fs::write(&p, text).expect("write trial");
    p
}

/// A running `smolsweep train` whose stderr lines arrive on a channel.
struct Train {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Train {
    fn spawn(cfg: &Path) -> Self {
        let mut child = bin()
            .args([
                "train",
                "--config",
                cfg.to_str().expect("path"),
                "--no-progress",
            ])
            .env("SMOLSWEEP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn train");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Train {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most a minute) for a stderr line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let hit = l.contains(text);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no `{text}` on stderr:\n{}", self.seen.join("\n"));
    }

    /// Waits for the exit; the status and all of stderr.
    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().expect("wait");
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), self.seen.join("\n"))
    }
}

/// The cache directory's entries other than lock files.
fn cache_files(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache)
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn sigterm_while_tokenising_exits_4_at_once_and_leaves_no_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("big.jsonl");
    // Enough that tokenising takes seconds on two cores.
    write_conversations(&data, 8_000, 600);
    let cache = dir.path().join("cache");
    let cfg = trial(&dir.path().join("t"), &data, &cache, 1);
    let mut t = Train::spawn(&cfg);
    t.wait_for("tokenising cache=");
    std::thread::sleep(Duration::from_millis(300));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &t.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let signalled = Instant::now();
    let deadline = signalled + Duration::from_secs(2);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(s) = t.child.try_wait().expect("try_wait") {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(status) = exited else {
        let _ = t.child.kill();
        let (_, err) = t.finish();
        panic!("still running 2 s after SIGTERM:\n{err}");
    };
    let (_, err) = t.finish();
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(!err.contains("tokenised rows="), "{err}");
    assert_eq!(cache_files(&cache), Vec::<String>::new(), "{err}");

    // The next run tokenises afresh and completes.
    let (code, err) = Train::spawn(&cfg).finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tokenised rows=8000"), "{err}");
    assert_eq!(cache_files(&cache).len(), 1, "{err}");
}

#[test]
fn old_format_and_truncated_caches_are_rebuilt_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d.jsonl");
    write_conversations(&data, 40, 30);
    let cache = dir.path().join("cache");
    let cfg = trial(&dir.path().join("t"), &data, &cache, 1);
    let (code, err) = Train::spawn(&cfg).finish();
    assert_eq!(code, 0, "{err}");
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let path = cache.join(&files[0]);
    let good = std::fs::read(&path).expect("cache");

    // What the first format wrote under the same name.
    let mut old = b"SSTOK001".to_vec();
    old.extend(1u64.to_le_bytes());
    old.extend(2u64.to_le_bytes());
    old.extend(b"{}");
    old.extend([0u8; 64]);
    std::fs::write(&path, old).expect("write old");
    let (code, err) = Train::spawn(&cfg).finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("rebuilding the tokenisation cache") && err.contains("older format"),
        "{err}"
    );
    assert!(
        std::fs::read(&path).expect("cache") == good,
        "rebuilt cache differs"
    );

    std::fs::write(&path, &good[..good.len() - 5]).expect("truncate");
    let (code, err) = Train::spawn(&cfg).finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("rebuilding the tokenisation cache") && err.contains("truncated"),
        "{err}"
    );
    assert!(
        std::fs::read(&path).expect("cache") == good,
        "rebuilt cache differs"
    );

    // A valid cache is mapped, not rebuilt.
    let (code, err) = Train::spawn(&cfg).finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tokenised data from cache") && !err.contains("rebuilding"),
        "{err}"
    );
}

#[test]
fn two_trials_started_together_tokenise_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d.jsonl");
    write_conversations(&data, 3000, 300);
    let cache = dir.path().join("cache");
    let a = Train::spawn(&trial(&dir.path().join("a"), &data, &cache, 1));
    let b = Train::spawn(&trial(&dir.path().join("b"), &data, &cache, 1));
    let (ca, ea) = a.finish();
    let (cb, eb) = b.finish();
    assert_eq!((ca, cb), (0, 0), "{ea}\n---\n{eb}");
    let built = [&ea, &eb]
        .iter()
        .filter(|e| e.contains("tokenising cache="))
        .count();
    assert_eq!(built, 1, "{ea}\n---\n{eb}");
    assert!(
        ea.contains("tokenised data from cache") || eb.contains("tokenised data from cache"),
        "{ea}\n---\n{eb}"
    );
    assert_eq!(cache_files(&cache).len(), 1);
}

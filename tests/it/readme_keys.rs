//! The README's key tables are the schema: every trial key and every
//! `[eval]` key appears in its table with the schema's default, and the
//! tables name no key the schema lacks. `smolsweep schema` prints files
//! that read back as valid trials and sweeps.

use smolsweep_config::eval::EVAL_KEYS;
use smolsweep_config::keys::{Default, Key};
use smolsweep_config::trial::TRIAL_KEYS;

use crate::common::{bin, root, stdout};

/// `(keys, default)` of each row of the first `| key | default | meaning |`
/// table after `heading`.
fn table_after(readme: &str, heading: &str) -> Vec<(Vec<String>, String)> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &readme[start..];
    let table = rest
        .find("| key | default | meaning |")
        .unwrap_or_else(|| panic!("no key table after {heading:?}"));
    rest[table..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let keys = cells[0]
                .split(", ")
                .map(|k| k.trim_matches('`').to_string())
                .collect();
            (keys, cells.get(1).copied().unwrap_or("").to_string())
        })
        .collect()
}

/// Whether the README's default text says what the schema's default is.
fn same_default(key: &Key, text: &str) -> bool {
    let text = text.trim_matches('`');
    match key.default {
        Default::Required => text == "required",
        Default::Unset => text != "required",
        Default::Toml(_) => {
            let Some(want) = key.default_value() else {
                return false;
            };
            let Ok(t) = format!("v = {text}").parse::<toml::Table>() else {
                return false;
            };
            match (&t["v"], &want) {
                (a, b) if a == b => true,
                (a, b) => {
                    a.as_float().or(a.as_integer().map(|i| i as f64))
                        == b.as_float().or(b.as_integer().map(|i| i as f64))
                }
            }
        }
    }
}

fn check_table(heading: &str, keys: &[Key]) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (names, default) in table_after(&readme, heading) {
        let defaults: Vec<&str> = if names.len() > 1 {
            default.split(", ").collect()
        } else {
            vec![default.as_str()]
        };
        for (i, name) in names.iter().enumerate() {
            let Some(key) = keys.iter().find(|k| k.name == name) else {
                problems.push(format!(
                    "{heading}: README names `{name}`, which the schema lacks"
                ));
                continue;
            };
            let d = defaults.get(i).or(defaults.last()).copied().unwrap_or("");
            if !same_default(key, d) {
                problems.push(format!(
                    "{heading}: `{name}` default is {d:?} in the README, {:?} in the schema",
                    key.default
                ));
            }
            seen.push(name.clone());
        }
    }
    for key in keys {
        if !seen.iter().any(|s| s == key.name) {
            problems.push(format!(
                "{heading}: `{}` is missing from the README",
                key.name
            ));
        }
    }
    problems
}

#[test]
fn readme_key_tables_match_the_schema() {
    let mut problems = check_table("## Training one grid point", TRIAL_KEYS);
    problems.extend(check_table("Every key of `[eval]`", EVAL_KEYS));
    problems.extend(check_table(
        "Every key of `[resources]`",
        smolsweep_config::sweep::RESOURCES_KEYS,
    ));
    problems.extend(check_table(
        "Every key of `[resources.slurm]`",
        smolsweep_config::sweep::SLURM_KEYS,
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn printed_schemas_read_back_as_valid_files() {
    let d = tempfile::tempdir().expect("tempdir");
    let model = root().join("tests/fixtures/trainer/tiny-model");
    let data = root().join("tests/fixtures/trainer/sft.jsonl");
    let arc = root().join("tests/fixtures/sweeps/tiny/data/arc_easy.jsonl");
    // The printed files' example paths, pointed at real fixtures (`run
    // --check` reads the eval data too).
    let point = |text: String| -> String {
        text.lines()
            .map(|l| {
                if l.starts_with("model = ") {
                    format!("model = {:?}", model.display().to_string())
                } else if l.starts_with("data = ") {
                    format!("data = [{:?}]", data.display().to_string())
                } else if l.starts_with("tasks = ") {
                    format!("tasks = [\"arc_easy={}\"]", arc.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (kind, file, cmd) in [
        ("trial", "trial.toml", ["train", "--check", "--config"]),
        ("sweep", "sweep.toml", ["run", "--check", "--no-progress"]),
    ] {
        let o = bin().args(["schema", kind]).output().expect("spawn");
        assert!(o.status.success(), "schema {kind}");
        let path = d.path().join(file);
        std::fs::write(&path, point(stdout(&o))).expect("write");
        let o = bin()
            .args(cmd)
            .arg(&path)
            .env("SMOLSWEEP_SIMULATE_GPUS", "0")
            .output()
            .expect("spawn");
        assert!(
            o.status.success(),
            "smolsweep schema {kind} does not read back: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The README's "task | dataset | config | split read" table says what
/// the benchmark registry reads.
#[test]
fn the_task_data_table_is_the_registry() {
    use smolsweep_config::benchmarks::Task;
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let start = readme
        .find("| task | dataset | config | split read |")
        .expect("README has the task data table");
    let rows: Vec<Vec<String>> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), Task::ALL.len(), "one row per task");
    for t in Task::ALL {
        let row = rows
            .iter()
            .find(|r| r[0] == format!("`{}`", t.name()))
            .unwrap_or_else(|| panic!("no row for {t}"));
        let repos: Vec<String> = t.hub_repos().iter().map(|r| format!("`{r}`")).collect();
        assert_eq!(row[1], repos.join(", "), "{t}: dataset");
        if let Some(c) = t.config_dir() {
            assert_eq!(row[2], format!("`{c}`"), "{t}: config");
        }
        if let Some(f) = t.data_file() {
            assert!(row[2].contains(&format!("`{f}`")), "{t}: root file");
        }
        assert!(
            row[3].starts_with(&format!("`{}`", t.eval_split())),
            "{t}: split"
        );
    }
}

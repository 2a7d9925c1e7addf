//! Agreement of the IFEval checkers with the reference Python
//! implementation (lm-evaluation-harness 0.4.13's `ifeval` task, which runs
//! Google's checkers) on `tests/fixtures/ifeval/corpus.jsonl`, made by
//! `scripts/reference/ifeval_corpus.py`. Every case's strict and loose
//! verdicts must match, except the cases listed in `KNOWN_DIVERGENCES`
//! with their reason; those must still disagree, so that a fixed divergence
//! is noticed and taken off the list.
//!
//! `cargo test --release -p smolsweep-evals ifeval -- --nocapture` prints
//! the per-type agreement table.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use smolsweep_evals::ifeval::{
    aggregate, check_instruction, check_instruction_loose, evaluate_sample, IfEvalSample,
    INSTRUCTION_IDS,
};

#[derive(Deserialize)]
struct Case {
    id: usize,
    instruction_id: String,
    kwargs: Value,
    prompt: String,
    response: String,
    note: String,
    strict: bool,
    loose: bool,
}

/// Cases whose verdict cannot match the reference, with the reason.
const KNOWN_DIVERGENCES: &[(&str, &str)] = &[(
    "Swahili (whatlang has no Swahili)",
    "language detection: whatlang has no Swahili model, so a Swahili \
     response is never identified as `sw` (langdetect's is); see ifeval/langid.rs",
)];

fn corpus() -> Vec<Case> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ifeval/corpus.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

#[test]
fn ifeval_agrees_with_reference_corpus() {
    let cases = corpus();
    assert!(cases.len() >= 300, "corpus has {} cases", cases.len());

    // type -> (cases, agree, positives, negatives)
    let mut table: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut divergent_seen = Vec::new();
    for c in &cases {
        let strict = check_instruction(&c.instruction_id, &c.kwargs, &c.prompt, &c.response)
            .unwrap_or_else(|e| panic!("case {}: {e}", c.id));
        let loose = check_instruction_loose(&c.instruction_id, &c.kwargs, &c.prompt, &c.response)
            .unwrap_or_else(|e| panic!("case {}: {e}", c.id));
        let agree = strict == c.strict && loose == c.loose;
        let row = table.entry(c.instruction_id.as_str()).or_default();
        row.0 += 1;
        row.1 += usize::from(agree);
        if c.strict || c.loose {
            row.2 += 1;
        }
        if !c.strict || !c.loose {
            row.3 += 1;
        }
        let known = KNOWN_DIVERGENCES.iter().find(|(note, _)| *note == c.note);
        match (agree, known) {
            (true, None) => {}
            (false, Some(_)) => divergent_seen.push(c.note.as_str()),
            (true, Some((note, _))) => failures.push(format!(
                "case {}: listed as a known divergence ({note}) but now agrees: take it off the list",
                c.id
            )),
            (false, None) => failures.push(format!(
                "case {} [{}] kwargs {} note {:?}: reference strict {} loose {}, ours strict {} loose {}\n  response: {:?}",
                c.id, c.instruction_id, c.kwargs, c.note, c.strict, c.loose, strict, loose, c.response
            )),
        }
    }

    println!(
        "{:<46} {:>6} {:>6} {:>5} {:>5}",
        "instruction type", "cases", "agree", "pos", "neg"
    );
    let (mut n, mut m) = (0, 0);
    for (id, (cases, agree, pos, neg)) in &table {
        println!("{id:<46} {cases:>6} {agree:>6} {pos:>5} {neg:>5}");
        n += cases;
        m += agree;
    }
    println!("{:<46} {n:>6} {m:>6}", "total");
    for (note, reason) in KNOWN_DIVERGENCES {
        println!("known divergence {note:?}: {reason}");
    }

    for id in INSTRUCTION_IDS {
        let (_, _, pos, neg) = table.get(id).copied().unwrap_or_default();
        assert!(
            pos > 0 && neg > 0,
            "{id}: the corpus needs positives and negatives ({pos} / {neg})"
        );
    }
    for (note, _) in KNOWN_DIVERGENCES {
        assert!(
            divergent_seen.contains(note),
            "known divergence {note:?} is not in the corpus or no longer diverges"
        );
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Samples made of several corpus cases sharing one response give the same
/// per-instruction verdicts through `evaluate_sample`, and `aggregate`
/// counts them as lm-eval does.
#[test]
fn ifeval_evaluate_sample_matches_per_instruction_checks() {
    let cases = corpus();
    // Group cases by response: each group is one sample.
    let mut groups: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
    for c in &cases {
        groups.entry(c.response.as_str()).or_default().push(c);
    }
    let mut verdicts = Vec::new();
    let mut flat_strict = Vec::new();
    for (i, (response, group)) in groups.iter().enumerate() {
        let sample = IfEvalSample {
            key: i64::try_from(i).expect("small"),
            prompt: group[0].prompt.clone(),
            instruction_id_list: group.iter().map(|c| c.instruction_id.clone()).collect(),
            kwargs: group.iter().map(|c| c.kwargs.clone()).collect(),
        };
        let v = evaluate_sample(&sample, response).expect("valid sample");
        let known = |c: &Case| KNOWN_DIVERGENCES.iter().any(|(n, _)| *n == c.note);
        for (j, c) in group.iter().enumerate() {
            if !known(c) {
                assert_eq!(v.strict[j], c.strict, "case {}", c.id);
                assert_eq!(v.loose[j], c.loose, "case {}", c.id);
            }
            flat_strict.push(v.strict[j]);
        }
        verdicts.push(v);
    }
    let scores = aggregate(&verdicts);
    let passed = flat_strict.iter().filter(|&&b| b).count();
    assert!(
        (scores.inst_level_strict_acc - passed as f64 / flat_strict.len() as f64).abs() < 1e-12
    );
    assert_eq!(scores.n, groups.len());
    assert_eq!(scores.n_instructions, cases.len());
}

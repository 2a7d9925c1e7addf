//! `smolsweep demo-data`: the demo sweep's data, generated rather than
//! shipped.
//!
//! The demo (`sweeps/demo.toml`, `make demo`) trains a ~100k-parameter
//! byte-level model from scratch on a 2-core CPU in about a minute per
//! trial, so real benchmarks (and real SFT data) are out of reach: such a
//! model scores chance on them whatever the learning rate. Instead this command
//! builds a tiny synthetic world and writes, in the benchmarks' real HF
//! schemas:
//!
//! - `sft/train.jsonl`: `messages` conversations teaching every skill below;
//! - `arc_easy/test.jsonl`: colour facts ("What color is a banana?") and
//!   "Which number is bigger, 7 or 12?", four choices `A`-`D`;
//! - `arc_challenge/test.jsonl`: "Which number is smaller, ...?" and "What
//!   number comes after 7?", four choices;
//! - `hellaswag/validation.jsonl`: a person doing one step of a fixed
//!   everyday routine (making tea, planting a tree, ...); the right ending
//!   is the routine's next step, the wrong ones steps of other routines;
//! - `piqa/validation.jsonl`: "How do you cut paper?" with the right and a
//!   wrong tool;
//! - `gsm8k/train.jsonl` + `gsm8k/test.jsonl`: one- and two-step word
//!   problems on numbers below 10, answers ending `#### N` (the train split
//!   is the 5-shot pool and also part of the SFT data, as real GSM8K's is);
//! - `ifeval/train.jsonl`: "Write a sentence about the sun." plus real IFEval
//!   instructions that are easy to follow (all lowercase, all capitals, no
//!   commas, wrap in quotes, end with a fixed phrase, a P.S., a <<title>>),
//!   with the real instruction ids and kwargs.
//!
//! Test items are held out: a combination (numbers, person and routine
//! step, name and objects, topic and instruction) that is in a test set is
//! never in the SFT data; only the world's facts (colours, routines, tools,
//! sentences about topics) are shared, as a pretraining corpus would share
//! them with a real benchmark.
//!
//! The SFT conversations are in the form the demo evaluates them with
//! (`chat_template = true`, lm-eval's `--apply_chat_template`): the user
//! turn is the benchmark's prompt ("Question: ...\nAnswer:", the HellaSwag
//! context, the IFEval prompt) and the assistant turn its answer, few-shot
//! GSM8K problems as earlier turns. A tiny model trained from scratch sees
//! nothing else, so scoring plain-text continuations instead (text at
//! position 0, never seen in training) leaves it worse than uniform; and
//! the end-of-turn token it learns ends GSM8K and IFEval generation early.
//!
//! Everything comes from one seeded SplitMix64 stream (no `rand`, whose
//! streams may change between versions): the same `--seed` gives the same
//! bytes on every machine, so the demo is reproducible without shipping
//! files.

use std::fmt::Write as _;
use std::io::Write as _;
#[cfg(test)]
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::args::DemoDataArgs;

/// Conversations per skill in `sft/train.jsonl`.
const SFT_COLOR: usize = 300;
const SFT_BIGGER: usize = 600;
const SFT_SMALLER: usize = 600;
const SFT_AFTER: usize = 500;
const SFT_HELLASWAG: usize = 500;
const SFT_PIQA: usize = 300;
const SFT_GSM8K: usize = 600;
const SFT_IFEVAL: usize = 400;

/// Items per evaluation set (small: the eval of a whole grid must take
/// minutes on a CPU, and generation tasks are the slow ones).
const N_ARC: usize = 150;
const N_HELLASWAG: usize = 150;
const N_PIQA: usize = 150;
const N_GSM8K_TEST: usize = 50;
const N_GSM8K_TRAIN: usize = 200;
const N_IFEVAL: usize = 40;

pub fn run(a: &DemoDataArgs) -> Result<()> {
    let files = generate(a.seed);
    for (rel, text) in &files {
        let path = a.out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    for (rel, text) in &files {
        writeln!(
            out,
            "{}: {} rows",
            a.out.join(rel).display(),
            text.lines().count()
        )
        .context("writing to stdout")?;
    }
    Ok(())
}

/// SplitMix64: tiny, fast, and fixed forever (unlike `rand`'s streams).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Which split a combination belongs to: a fixed fifth of all
/// combinations (by FNV-1a hash of its key, independent of the seed) is
/// reserved for the test sets, so no test item is ever trained on.
fn is_test_key(key: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 5 == 0
}

/// Draws items until `n` of them fall in the wanted split.
fn draw<T>(
    rng: &mut Rng,
    n: usize,
    test: bool,
    mut make: impl FnMut(&mut Rng) -> (String, T),
) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (key, item) = make(rng);
        if is_test_key(&key) == test {
            out.push(item);
        }
    }
    out
}

// ---------------------------------------------------------------- the world

const COLOR_FACTS: [(&str, &str); 20] = [
    ("a banana", "yellow"),
    ("grass", "green"),
    ("the sky", "blue"),
    ("snow", "white"),
    ("coal", "black"),
    ("a tomato", "red"),
    ("a carrot", "orange"),
    ("a plum", "purple"),
    ("a lemon", "yellow"),
    ("a frog", "green"),
    ("the sea", "blue"),
    ("milk", "white"),
    ("a crow", "black"),
    ("a strawberry", "red"),
    ("a pumpkin", "orange"),
    ("a grape", "purple"),
    ("chocolate", "brown"),
    ("a flamingo", "pink"),
    ("a mouse", "grey"),
    ("a tree trunk", "brown"),
];

const COLORS: [&str; 11] = [
    "red", "orange", "yellow", "green", "blue", "purple", "white", "black", "brown", "pink", "grey",
];

/// Everyday routines: each step follows the one before it.
const ROUTINES: [(&str, [&str; 5]); 8] = [
    (
        "Making tea",
        [
            "fills a kettle with water.",
            "boils the water on the stove.",
            "puts a tea bag in a cup.",
            "pours the hot water into the cup.",
            "drinks the tea slowly.",
        ],
    ),
    (
        "Planting a tree",
        [
            "digs a deep hole in the garden.",
            "puts the young tree in the hole.",
            "fills the hole with soil.",
            "presses the soil down with both hands.",
            "waters the tree with a hose.",
        ],
    ),
    (
        "Washing a car",
        [
            "fills a bucket with soapy water.",
            "scrubs the car with a sponge.",
            "rinses the soap off with a hose.",
            "dries the car with a towel.",
            "polishes the car until it shines.",
        ],
    ),
    (
        "Baking bread",
        [
            "mixes flour and water in a bowl.",
            "kneads the dough on the table.",
            "lets the dough rise for an hour.",
            "puts the dough in the hot oven.",
            "takes the brown loaf out of the oven.",
        ],
    ),
    (
        "Painting a wall",
        [
            "covers the floor with old paper.",
            "opens a can of paint.",
            "dips a roller in the paint.",
            "rolls the paint onto the wall.",
            "cleans the roller in the sink.",
        ],
    ),
    (
        "Riding a bike",
        [
            "puts on a helmet.",
            "climbs onto the bike.",
            "pushes the pedals to start moving.",
            "rides down the street.",
            "squeezes the brakes to stop.",
        ],
    ),
    (
        "Brushing teeth",
        [
            "puts toothpaste on a toothbrush.",
            "brushes the front teeth.",
            "brushes the back teeth.",
            "spits into the sink.",
            "rinses the mouth with water.",
        ],
    ),
    (
        "Wrapping a gift",
        [
            "cuts a sheet of wrapping paper.",
            "puts the box on the paper.",
            "folds the paper around the box.",
            "tapes the edges of the paper.",
            "ties a ribbon around the gift.",
        ],
    ),
];

/// (ctx_a subject, ctx_b pronoun).
const PEOPLE: [(&str, &str); 8] = [
    ("A man", "he"),
    ("A woman", "she"),
    ("The boy", "he"),
    ("The girl", "she"),
    ("An old man", "he"),
    ("A young woman", "she"),
    ("The teacher", "she"),
    ("The farmer", "he"),
];

const TOOLS: [(&str, &str); 16] = [
    ("cut paper", "scissors"),
    ("dig a hole", "a shovel"),
    ("see in the dark", "a flashlight"),
    ("dry your hands", "a towel"),
    ("boil water", "a kettle"),
    ("write a note", "a pen"),
    ("sweep the floor", "a broom"),
    ("open a locked door", "a key"),
    ("tell the time", "a clock"),
    ("carry water", "a bucket"),
    ("hit a nail", "a hammer"),
    ("eat soup", "a spoon"),
    ("stay dry in the rain", "an umbrella"),
    ("take a photo", "a camera"),
    ("measure a table", "a ruler"),
    ("brush your teeth", "a toothbrush"),
];

const NAMES: [(&str, &str); 10] = [
    ("Tom", "He"),
    ("Anna", "She"),
    ("Ben", "He"),
    ("Lucy", "She"),
    ("Sam", "He"),
    ("Mia", "She"),
    ("Jack", "He"),
    ("Emma", "She"),
    ("Leo", "He"),
    ("Zoe", "She"),
];

const THINGS: [&str; 8] = [
    "apples", "pencils", "marbles", "stickers", "books", "cookies", "shells", "coins",
];

/// Topics to write about, each with its one sentence (with a comma, so
/// that `punctuation:no_comma` has something to leave out).
const TOPICS: [(&str, &str); 12] = [
    ("the sun", "The sun is a hot star, and it gives us light."),
    (
        "the moon",
        "The moon is bright at night, and it circles the Earth.",
    ),
    ("cats", "Cats are soft, and they like to sleep all day."),
    ("dogs", "Dogs are loyal, and they love to play outside."),
    (
        "rain",
        "Rain falls from the clouds, and it helps plants grow.",
    ),
    ("the sea", "The sea is deep and blue, and fish live in it."),
    (
        "trees",
        "Trees are tall, and their leaves turn green in spring.",
    ),
    ("winter", "Winter is cold, and snow covers the ground."),
    ("music", "Music is fun, and it makes people want to dance."),
    (
        "bread",
        "Bread is made from flour, and it tastes good warm.",
    ),
    ("birds", "Birds have feathers, and most of them can fly."),
    (
        "the city",
        "The city is busy, and its streets are full of cars.",
    ),
];

const END_PHRASE: &str = "Is there anything else I can help with?";

/// The IFEval instructions the demo uses: (id, prompt text, kwargs).
/// Prompt texts are the reference's own wording (instructions.py).
fn instruction(id: &str) -> (&'static str, Value) {
    match id {
        "change_case:english_lowercase" => (
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
            json!({}),
        ),
        "change_case:english_capital" => (
            "Your entire response should be in English, and in all capital letters.",
            json!({}),
        ),
        "punctuation:no_comma" => (
            "In your entire response, refrain from the use of any commas.",
            json!({}),
        ),
        "startend:quotation" => (
            "Wrap your entire response with double quotation marks.",
            json!({}),
        ),
        "startend:end_checker" => (
            "Finish your response with this exact phrase Is there anything else I can help with?. No other words should follow this phrase.",
            json!({"end_phrase": END_PHRASE}),
        ),
        "detectable_content:postscript" => (
            "At the end of your response, please explicitly add a postscript starting with P.S.",
            json!({"postscript_marker": "P.S."}),
        ),
        _ => (
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
            json!({}),
        ),
    }
}

const IFEVAL_IDS: [&str; 7] = [
    "change_case:english_lowercase",
    "change_case:english_capital",
    "punctuation:no_comma",
    "startend:quotation",
    "startend:end_checker",
    "detectable_content:postscript",
    "detectable_format:title",
];

// ---------------------------------------------------------------- items

/// A multiple-choice question in ARC's shape.
struct Mc {
    question: String,
    choices: Vec<String>,
    gold: usize,
}

/// Four choices: the answer and three distinct distractors, shuffled.
fn four(rng: &mut Rng, answer: String, mut distractors: Vec<String>) -> (Vec<String>, usize) {
    rng.shuffle(&mut distractors);
    let mut choices = vec![answer.clone()];
    for d in distractors {
        if choices.len() == 4 {
            break;
        }
        if !choices.contains(&d) {
            choices.push(d);
        }
    }
    rng.shuffle(&mut choices);
    let gold = choices.iter().position(|c| *c == answer).unwrap_or(0);
    (choices, gold)
}

fn numbers_except(lo: u32, hi: u32, except: &[u32]) -> Vec<String> {
    (lo..=hi)
        .filter(|n| !except.contains(n))
        .map(|n| n.to_string())
        .collect()
}

fn color_question(rng: &mut Rng) -> (String, Mc) {
    let (thing, color) = *rng.pick(&COLOR_FACTS);
    let others = COLORS
        .iter()
        .filter(|c| **c != color)
        .map(|c| (*c).to_owned())
        .collect();
    let (choices, gold) = four(rng, color.to_owned(), others);
    let key = format!("color|{thing}|{}", choices.join(","));
    let question = format!("What color is {thing}?");
    (
        key,
        Mc {
            question,
            choices,
            gold,
        },
    )
}

/// "Which number is bigger/smaller, a or b?": both are among the choices.
fn compare_question(rng: &mut Rng, bigger: bool) -> (String, Mc) {
    let a = rng.range(1, 20);
    let mut b = rng.range(1, 20);
    while b == a {
        b = rng.range(1, 20);
    }
    let answer = if bigger { a.max(b) } else { a.min(b) };
    let other = a + b - answer;
    let mut rest = numbers_except(1, 20, &[a, b]);
    rng.shuffle(&mut rest);
    let mut distractors = vec![other.to_string()];
    distractors.extend(rest.into_iter().take(2));
    // `four` shuffles distractors before taking three: all three are kept.
    let (choices, gold) = four(rng, answer.to_string(), distractors);
    let word = if bigger { "bigger" } else { "smaller" };
    let key = format!("{word}|{a}|{b}");
    (
        key,
        Mc {
            question: format!("Which number is {word}, {a} or {b}?"),
            choices,
            gold,
        },
    )
}

fn after_question(rng: &mut Rng) -> (String, Mc) {
    let n = rng.range(1, 29);
    let distractors = [n.saturating_sub(1).max(1), n + 2, n, n + 3]
        .iter()
        .filter(|d| **d != n + 1)
        .map(|d| d.to_string())
        .collect::<Vec<_>>();
    let (choices, gold) = four(rng, (n + 1).to_string(), distractors);
    let key = format!("after|{n}|{}", choices.join(","));
    (
        key,
        Mc {
            question: format!("What number comes after {n}?"),
            choices,
            gold,
        },
    )
}

fn arc_easy_item(rng: &mut Rng) -> (String, Mc) {
    if rng.below(2) == 0 {
        color_question(rng)
    } else {
        compare_question(rng, true)
    }
}

fn arc_challenge_item(rng: &mut Rng) -> (String, Mc) {
    if rng.below(2) == 0 {
        compare_question(rng, false)
    } else {
        after_question(rng)
    }
}

struct Hs {
    activity: String,
    ctx_a: String,
    ctx_b: String,
    endings: Vec<String>,
    gold: usize,
}

fn hellaswag_item(rng: &mut Rng) -> (String, Hs) {
    let r = rng.below(ROUTINES.len());
    let (activity, steps) = ROUTINES[r];
    let step = rng.below(steps.len() - 1);
    let (person, pronoun) = *rng.pick(&PEOPLE);
    let wrong = ROUTINES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != r)
        .map(|(_, (_, s))| (*rng.pick(s)).to_owned())
        .collect();
    let (endings, gold) = four(rng, steps[step + 1].to_owned(), wrong);
    let key = format!("hs|{r}|{step}|{person}");
    (
        key,
        Hs {
            activity: activity.to_owned(),
            ctx_a: format!("{person} {}", steps[step]),
            ctx_b: format!("then {pronoun}"),
            endings,
            gold,
        },
    )
}

struct Piqa {
    goal: String,
    sols: [String; 2],
    label: usize,
}

fn piqa_item(rng: &mut Rng) -> (String, Piqa) {
    let t = rng.below(TOOLS.len());
    let (task, tool) = TOOLS[t];
    let mut w = rng.below(TOOLS.len());
    while w == t {
        w = rng.below(TOOLS.len());
    }
    let wrong = TOOLS[w].1;
    let label = rng.below(2);
    let right_sol = format!("Use {tool} to {task}.");
    let wrong_sol = format!("Use {wrong} to {task}.");
    let sols = if label == 0 {
        [right_sol, wrong_sol]
    } else {
        [wrong_sol, right_sol]
    };
    (
        format!("piqa|{t}|{w}"),
        Piqa {
            goal: format!("How do you {task}?"),
            sols,
            label,
        },
    )
}

struct Gsm {
    question: String,
    answer: String,
}

fn gsm8k_item(rng: &mut Rng) -> (String, Gsm) {
    let (name, pron) = *rng.pick(&NAMES);
    let thing = *rng.pick(&THINGS);
    let kind = rng.below(3);
    let (question, answer, key) = match kind {
        0 => {
            let a = rng.range(1, 9);
            let b = rng.range(1, 9);
            let s = a + b;
            (
                format!("{name} has {a} {thing}. {pron} gets {b} more. How many {thing} does {name} have now?"),
                format!("{name} has {a} + {b} = {s} {thing}.\n#### {s}"),
                format!("add|{name}|{thing}|{a}|{b}"),
            )
        }
        1 => {
            let a = rng.range(2, 9);
            let b = rng.range(1, a - 1);
            let d = a - b;
            (
                format!("{name} has {a} {thing}. {pron} gives away {b}. How many {thing} does {name} have left?"),
                format!("{name} has {a} - {b} = {d} {thing} left.\n#### {d}"),
                format!("sub|{name}|{thing}|{a}|{b}"),
            )
        }
        _ => {
            let a = rng.range(1, 9);
            let b = rng.range(1, 9);
            let s = a + b;
            let c = rng.range(1, s - 1);
            let r = s - c;
            (
                format!("{name} has {a} {thing}. {pron} gets {b} more, then gives away {c}. How many {thing} does {name} have now?"),
                format!("{name} has {a} + {b} = {s} {thing}. Then {s} - {c} = {r}.\n#### {r}"),
                format!("two|{name}|{thing}|{a}|{b}|{c}"),
            )
        }
    };
    (key, Gsm { question, answer })
}

struct IfEval {
    prompt: String,
    ids: Vec<&'static str>,
    response: String,
}

/// Applies instructions to the topic's sentence, in an order that keeps
/// them all satisfied (the phrase and P.S. last, quotes around it all).
fn follow(sentence: &str, ids: &[&str]) -> String {
    let has = |id: &str| ids.contains(&id);
    let mut body = sentence.to_owned();
    if has("punctuation:no_comma") {
        body = body.replace(',', "");
    }
    if has("detectable_format:title") {
        let title = sentence
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .replace(',', "")
            .to_lowercase();
        body = format!("<<{title}>>\n{body}");
    }
    if has("startend:end_checker") {
        body = format!("{body} {END_PHRASE}");
    }
    if has("detectable_content:postscript") {
        body = format!("{body}\nP.S. I hope this helps.");
    }
    if has("change_case:english_lowercase") {
        body = body.to_lowercase();
    }
    if has("change_case:english_capital") {
        body = body.to_uppercase();
    }
    if has("startend:quotation") {
        body = format!("\"{body}\"");
    }
    body
}

/// Whether two instructions can hold together (a fixed capitalised end
/// phrase or "P.S." contradicts a case rule; quotes must be the last and
/// first characters, which a phrase or P.S. at the end would break).
fn compatible(a: &str, b: &str) -> bool {
    let case = |x: &str| x.starts_with("change_case:");
    let tail = |x: &str| x == "startend:end_checker" || x == "detectable_content:postscript";
    let quote = |x: &str| x == "startend:quotation";
    a != b
        && !(case(a) && case(b))
        && !((case(a) || quote(a)) && tail(b))
        && !((case(b) || quote(b)) && tail(a))
        && !(tail(a) && tail(b))
}

fn ifeval_item(rng: &mut Rng) -> (String, IfEval) {
    let t = rng.below(TOPICS.len());
    let (topic, sentence) = TOPICS[t];
    let first = *rng.pick(&IFEVAL_IDS);
    let mut ids = vec![first];
    if rng.below(3) == 0 {
        let second = *rng.pick(&IFEVAL_IDS);
        if compatible(first, second) {
            ids.push(second);
        }
    }
    let mut prompt = format!("Write a short sentence about {topic}.");
    for id in &ids {
        prompt.push(' ');
        prompt.push_str(instruction(id).0);
    }
    let response = follow(sentence, &ids);
    let key = format!("ifeval|{t}|{}", ids.join("+"));
    (
        key,
        IfEval {
            prompt,
            ids,
            response,
        },
    )
}

// ---------------------------------------------------------------- writing

fn jsonl(rows: impl IntoIterator<Item = Value>) -> String {
    let mut s = String::new();
    for r in rows {
        // A Value always serialises; write! to a String cannot fail.
        let _ = writeln!(s, "{r}");
    }
    s
}

/// A conversation of (user, assistant) turns.
fn conversation<S: AsRef<str>>(turns: &[(S, S)]) -> Value {
    let messages: Vec<Value> = turns
        .iter()
        .flat_map(|(u, a)| {
            [
                json!({"role": "user", "content": u.as_ref()}),
                json!({"role": "assistant", "content": a.as_ref()}),
            ]
        })
        .collect();
    json!({ "messages": messages })
}

/// lm-eval's ARC, PIQA and GSM8K prompt: `Question: ...\nAnswer:`.
fn question(q: &str) -> String {
    format!("Question: {q}\nAnswer:")
}

const LABELS: [&str; 4] = ["A", "B", "C", "D"];

fn arc_row(prefix: &str, i: usize, q: &Mc) -> Value {
    json!({
        "id": format!("{prefix}_{i:04}"),
        "question": q.question,
        "choices": {"text": q.choices, "label": &LABELS[..q.choices.len()]},
        "answerKey": LABELS[q.gold],
    })
}

fn hs_row(i: usize, h: &Hs) -> Value {
    json!({
        "ind": i,
        "activity_label": h.activity,
        "ctx_a": h.ctx_a,
        "ctx_b": h.ctx_b,
        "ctx": format!("{} {}", h.ctx_a, capitalize(&h.ctx_b)),
        "endings": h.endings,
        "source_id": format!("demo~{i}"),
        "split": "val",
        "split_type": "indomain",
        "label": h.gold.to_string(),
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Every file, as (path relative to the output directory, contents).
pub fn generate(seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed ^ 0x5EED_DE70_DA7A_0001);
    let mut sft: Vec<Value> = Vec::new();

    // ARC.
    let arc_e = draw(&mut rng, N_ARC, true, arc_easy_item);
    let arc_c = draw(&mut rng, N_ARC, true, arc_challenge_item);
    let mut mc_sft = Vec::new();
    mc_sft.extend(draw(&mut rng, SFT_COLOR, false, color_question));
    mc_sft.extend(draw(&mut rng, SFT_BIGGER, false, |r| {
        compare_question(r, true)
    }));
    mc_sft.extend(draw(&mut rng, SFT_SMALLER, false, |r| {
        compare_question(r, false)
    }));
    mc_sft.extend(draw(&mut rng, SFT_AFTER, false, after_question));
    for q in &mc_sft {
        sft.push(conversation(&[(
            question(&q.question),
            q.choices[q.gold].clone(),
        )]));
    }

    // HellaSwag: lm-eval's query in the user turn, the ending answers it.
    let hs_test = draw(&mut rng, N_HELLASWAG, true, hellaswag_item);
    for h in draw(&mut rng, SFT_HELLASWAG, false, hellaswag_item) {
        sft.push(conversation(&[(
            format!("{}: {} {}", h.activity, h.ctx_a, capitalize(&h.ctx_b)),
            h.endings[h.gold].clone(),
        )]));
    }

    // PIQA.
    let piqa_test = draw(&mut rng, N_PIQA, true, piqa_item);
    for p in draw(&mut rng, SFT_PIQA, false, piqa_item) {
        sft.push(conversation(&[(
            question(&p.goal),
            p.sols[p.label].clone(),
        )]));
    }

    // GSM8K: the train split is both the few-shot pool and SFT data; some
    // conversations carry earlier solved problems as turns before the last
    // one, so the model has seen the 5-shot layout the eval builds.
    let gsm_test = draw(&mut rng, N_GSM8K_TEST, true, gsm8k_item);
    let gsm_train = draw(&mut rng, SFT_GSM8K.max(N_GSM8K_TRAIN), false, gsm8k_item);
    for (i, g) in gsm_train.iter().enumerate().take(SFT_GSM8K) {
        let shots = if i % 3 == 0 { rng.below(3) + 1 } else { 0 };
        let mut turns = Vec::new();
        for _ in 0..shots {
            let s = rng.pick(&gsm_train);
            turns.push((question(&s.question), s.answer.clone()));
        }
        turns.push((question(&g.question), g.answer.clone()));
        sft.push(conversation(&turns));
    }

    // IFEval: the prompt, then a response that follows it.
    let if_test = draw(&mut rng, N_IFEVAL, true, ifeval_item);
    for f in draw(&mut rng, SFT_IFEVAL, false, ifeval_item) {
        sft.push(conversation(&[(f.prompt.clone(), f.response.clone())]));
    }

    rng.shuffle(&mut sft);

    vec![
        ("sft/train.jsonl".to_owned(), jsonl(sft)),
        (
            "arc_easy/test.jsonl".to_owned(),
            jsonl(
                arc_e
                    .iter()
                    .enumerate()
                    .map(|(i, q)| arc_row("demo_easy", i, q)),
            ),
        ),
        (
            "arc_challenge/test.jsonl".to_owned(),
            jsonl(
                arc_c
                    .iter()
                    .enumerate()
                    .map(|(i, q)| arc_row("demo_challenge", i, q)),
            ),
        ),
        (
            "hellaswag/validation.jsonl".to_owned(),
            jsonl(hs_test.iter().enumerate().map(|(i, h)| hs_row(i, h))),
        ),
        (
            "piqa/validation.jsonl".to_owned(),
            jsonl(piqa_test.iter().map(
                |p| json!({"goal": p.goal, "sol1": p.sols[0], "sol2": p.sols[1], "label": p.label}),
            )),
        ),
        (
            "gsm8k/train.jsonl".to_owned(),
            jsonl(
                gsm_train
                    .iter()
                    .take(N_GSM8K_TRAIN)
                    .map(|g| json!({"question": g.question, "answer": g.answer})),
            ),
        ),
        (
            "gsm8k/test.jsonl".to_owned(),
            jsonl(
                gsm_test
                    .iter()
                    .map(|g| json!({"question": g.question, "answer": g.answer})),
            ),
        ),
        (
            "ifeval/train.jsonl".to_owned(),
            jsonl(if_test.iter().enumerate().map(|(i, f)| {
                json!({
                    "key": 1000 + i,
                    "prompt": f.prompt,
                    "instruction_id_list": f.ids,
                    "kwargs": f.ids.iter().map(|id| instruction(id).1).collect::<Vec<_>>(),
                })
            })),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(files: &[(String, String)], name: &str) -> Vec<Value> {
        let text = &files
            .iter()
            .find(|(p, _)| p == name)
            .unwrap_or_else(|| panic!("{name} not written"))
            .1;
        text.lines()
            .map(|l| serde_json::from_str(l).expect("valid JSON line"))
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(7);
        assert_eq!(a, generate(7));
        assert_ne!(a, generate(8));
    }

    #[test]
    fn rows_have_the_hf_schemas() {
        let f = generate(0);
        let has = |name: &str, fields: &[&str], n: usize| {
            let rs = rows(&f, name);
            assert_eq!(rs.len(), n, "{name}");
            for r in &rs {
                for k in fields {
                    assert!(r.get(*k).is_some(), "{name}: {k} missing in {r}");
                }
            }
            rs
        };
        for r in has(
            "arc_easy/test.jsonl",
            &["id", "question", "choices", "answerKey"],
            N_ARC,
        )
        .iter()
        .chain(&has(
            "arc_challenge/test.jsonl",
            &["id", "question", "choices", "answerKey"],
            N_ARC,
        )) {
            let labels = r["choices"]["label"].as_array().expect("labels");
            assert_eq!(r["choices"]["text"].as_array().expect("text").len(), 4);
            assert!(labels.contains(&r["answerKey"]));
        }
        for r in has(
            "hellaswag/validation.jsonl",
            &[
                "activity_label",
                "ctx_a",
                "ctx_b",
                "ctx",
                "endings",
                "label",
            ],
            N_HELLASWAG,
        ) {
            assert!(
                r["label"].is_string(),
                "Rowan/hellaswag's label is a string"
            );
        }
        has(
            "piqa/validation.jsonl",
            &["goal", "sol1", "sol2", "label"],
            N_PIQA,
        );
        for name in ["gsm8k/train.jsonl", "gsm8k/test.jsonl"] {
            let n = if name.contains("train") {
                N_GSM8K_TRAIN
            } else {
                N_GSM8K_TEST
            };
            for r in has(name, &["question", "answer"], n) {
                let a = r["answer"].as_str().expect("answer");
                let (_, n) = a.rsplit_once("#### ").expect("#### N");
                assert!(n.parse::<u32>().is_ok(), "{a}");
            }
        }
        for r in has(
            "sft/train.jsonl",
            &["messages"],
            rows(&f, "sft/train.jsonl").len(),
        ) {
            let m = r["messages"].as_array().expect("messages");
            assert_eq!(m[0]["role"], "user");
            assert_eq!(m[1]["role"], "assistant");
        }
    }

    #[test]
    fn ifeval_uses_real_ids_and_its_responses_follow_them() {
        let f = generate(0);
        let rs = rows(&f, "ifeval/train.jsonl");
        assert_eq!(rs.len(), N_IFEVAL);
        for r in &rs {
            let sample: smolsweep_evals::ifeval::IfEvalSample =
                serde_json::from_value(r.clone()).expect("IFEval schema");
            assert_eq!(sample.kwargs.len(), sample.instruction_id_list.len());
            for id in &sample.instruction_id_list {
                assert!(
                    smolsweep_evals::ifeval::INSTRUCTION_IDS.contains(&id.as_str()),
                    "{id} is not a registry id"
                );
            }
        }
        // The SFT responses (what the model is taught) pass the checkers.
        let mut rng = Rng(1);
        for _ in 0..300 {
            let (_, item) = ifeval_item(&mut rng);
            let sample = smolsweep_evals::ifeval::IfEvalSample {
                key: 0,
                prompt: item.prompt.clone(),
                instruction_id_list: item.ids.iter().map(|s| (*s).to_owned()).collect(),
                kwargs: item.ids.iter().map(|id| instruction(id).1).collect(),
            };
            let v = smolsweep_evals::ifeval::evaluate_sample(&sample, &item.response)
                .expect("checkable");
            assert!(
                v.follow_all_strict(),
                "{:?} not followed by {:?}",
                item.ids,
                item.response
            );
        }
    }

    #[test]
    fn test_items_are_never_in_the_sft_data() {
        let f = generate(3);
        let sft = &f[0].1;
        for r in rows(&f, "gsm8k/test.jsonl") {
            let q = r["question"].as_str().expect("question");
            assert!(!sft.contains(q), "{q} is in the SFT data");
        }
        for r in rows(&f, "arc_easy/test.jsonl") {
            let q = r["question"].as_str().expect("question");
            if q.starts_with("Which number") {
                assert!(!sft.contains(q), "{q} is in the SFT data");
            }
        }
    }

    #[test]
    fn the_demo_sweep_parses_and_reads_this_data() {
        // The layout `make demo` makes: sweeps/demo.toml beside demo/.
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/demo.toml");
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("sweeps/demo.toml");
        std::fs::create_dir_all(root.path().join("sweeps")).expect("mkdir");
        std::fs::copy(&src, &file).expect("copy demo.toml");
        std::fs::create_dir_all(root.path().join("demo/model")).expect("mkdir");
        std::fs::write(root.path().join("demo/model/config.json"), "{}").expect("write");
        for (rel, text) in generate(0) {
            let p = root.path().join("demo/data").join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let spec = smolsweep_orchestrator::SweepSpec::load(&file).expect("demo.toml is valid");
        assert!(spec.trial_count() >= 12, "at least 4 lr x 3 batch sizes");
        let eval = spec.eval.expect("an [eval] section");
        let written: Vec<String> = generate(0).into_iter().map(|(p, _)| p).collect();
        for task in &eval.tasks {
            assert!(
                written.iter().any(|p| p.starts_with(&format!("{task}/"))),
                "demo-data writes no {task}/"
            );
        }
    }
}

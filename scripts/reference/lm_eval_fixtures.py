"""Reference values for the benchmark tests, from lm-evaluation-harness
(PyPI `lm-eval`, pinned in requirements.txt) running its HF backend on the
real SmolLM2-135M-Instruct weights in fp32 on the CPU.

It writes, under tests/fixtures/evals/:

- data/NAME/...: small fixture datasets in the exact HF schemas
  (allenai/ai2_arc, Rowan/hellaswag, baber/piqa, openai/gsm8k), made here
  from hand-written items, in the file layouts users have (JSONL split
  files, and Parquet for PIQA);
- lm_eval_loglik.json: for arc_easy, arc_challenge, hellaswag and piqa,
  each sample's (context, continuation) requests, lm-eval's log-likelihood
  and is_greedy per request, and acc / acc_norm, plus the task metrics;
- lm_eval_gsm8k.json: lm-eval's 5-shot gsm8k prompts (few-shot drawn from
  the fixture train split with its fixed seed), its greedy responses, the
  strict-match / flexible-extract answers and exact_match, and plain
  `transformers` greedy token ids for the first prompts;
- lm_eval_gsm8k_extract.json: lm-eval's own filters (RegexFilter +
  take_first) and exact_match metric on a corpus of tricky answers.

The Rust tests (tests/it/eval_reference.rs) compare against these files, so
they need no Python. Regenerate (a few minutes on 2 CPU cores) with

    .venv/bin/pip install -r scripts/reference/requirements.txt
    make weights   # models/SmolLM2-135M-Instruct
    .venv/bin/python scripts/reference/lm_eval_fixtures.py models/SmolLM2-135M-Instruct
"""

import json
import os
import sys
import tempfile
import time

import lm_eval
import torch
import transformers
from lm_eval import simple_evaluate
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter
from lm_eval.filters.selection import TakeFirstFilter
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "evals")
DATA = os.path.join(OUT, "data")
TASKS_DIR = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")

# --------------------------------------------------------------------------
# Fixture datasets (hand-written items in the HF schemas).
# --------------------------------------------------------------------------

ARC_EASY = [
    ("Which of these is a source of light?", ["a mirror", "the Sun", "the Moon at noon", "a rock"], 1),
    ("What do plants need to make their own food?", ["sunlight", "darkness", "sand", "plastic"], 0),
    ("Which state of matter has a definite shape?", ["gas", "liquid", "solid", "plasma"], 2),
    ("What is the boiling point of water at sea level?", ["0 °C", "50 °C", "100 °C", "212 °C"], 2),
    ("Which animal is a mammal?", ["shark", "frog", "whale", "lizard"], 2),
    ("Which tool is used to measure temperature?", ["ruler", "thermometer", "scale", "barometer"], 1),
    ("What causes day and night on Earth?", ["Earth's rotation", "Earth's revolution", "the Moon's phases", "ocean tides"], 0),
    ("Which of these is a renewable resource?", ["coal", "oil", "wind", "natural gas"], 2),
    ("What is the main gas in the air we breathe?", ["oxygen", "nitrogen", "carbon dioxide", "helium"], 1),
    ("Which organ pumps blood through the body?", ["lungs", "brain", "heart", "stomach"], 2),
    ("How many legs does an insect have?", ["four", "six", "eight", "ten"], 1),
    ("Which planet is closest to the Sun?", ["Venus", "Earth", "Mercury", "Mars"], 2),
    ("What happens to ice when it is heated?", ["It melts.", "It freezes.", "It condenses.", "It stays the same."], 0),
    ("Which material is the best conductor of electricity?", ["wood", "rubber", "copper", "glass"], 2),
    ("A student drops a ball. Which force pulls the ball down?", ["friction", "magnetism", "gravity", "tension"], 2),
    ("Which part of a plant takes in water from the soil?", ["flower", "leaf", "stem", "roots"], 3),
    ("What kind of energy does a moving car have?", ["kinetic energy", "chemical energy only", "nuclear energy", "no energy"], 0),
    ("Which of these is a chemical change?", ["cutting paper", "melting butter", "burning wood", "folding a shirt"], 2),
    ("Where does most of Earth's fresh water exist?", ["in oceans", "in glaciers and ice caps", "in clouds", "in lakes"], 1),
    ("Which layer of Earth do we live on?", ["the crust", "the mantle", "the outer core", "the inner core"], 0),
]

ARC_CHALLENGE = [
    ("A scientist wants to reduce the error in an experiment. What should the scientist do?", ["repeat the trials", "change the variable each time", "use fewer samples", "ignore outliers"], 0),
    ("Which property of a mineral can be determined just by looking at it?", ["hardness", "luster", "density", "streak"], 1),
    ("Which best explains why the Moon has more craters than Earth?", ["The Moon is older.", "The Moon has no atmosphere to burn up meteors.", "The Moon is closer to the asteroid belt.", "The Moon is made of softer rock."], 1),
    ("An object has a mass of 10 kg and an acceleration of 2 m/s². What is the net force?", ["5 N", "8 N", "12 N", "20 N"], 3),
    ("Which process in the water cycle is most directly driven by the Sun?", ["evaporation", "runoff", "infiltration", "condensation"], 0),
    ("Which cell structure controls what enters and leaves the cell?", ["nucleus", "cell membrane", "ribosome", "vacuole"], 1),
    ("Why do seasons occur on Earth?", ["Earth's distance from the Sun changes greatly.", "Earth's axis is tilted.", "The Sun's output changes.", "The Moon blocks sunlight."], 1),
    ("What is the most likely result of removing a top predator from an ecosystem?", ["Prey populations increase.", "Plants grow faster everywhere.", "Decomposers disappear.", "The climate gets colder."], 0),
    ("Which is an example of a physical property?", ["flammability", "reactivity with acid", "boiling point", "ability to rust"], 2),
    ("A ball rolls across a carpet and stops. Which force caused it to stop?", ["gravity", "friction", "magnetism", "buoyancy"], 1),
    ("Which is the best evidence that continents were once joined?", ["similar fossils on different continents", "different climates today", "the height of mountains", "the depth of oceans"], 0),
    ("Which energy transformation happens in a battery-powered flashlight?", ["light to chemical", "chemical to electrical to light", "heat to chemical", "sound to light"], 1),
    ("What is the function of chlorophyll?", ["to absorb light energy", "to store water", "to attract pollinators", "to make seeds"], 0),
    ("Which unit is used to measure the wavelength of visible light?", ["kilograms", "nanometers", "liters", "newtons"], 1),
    ("Which change would most likely increase the rate of a chemical reaction?", ["lowering the temperature", "increasing the temperature", "using larger pieces", "removing the catalyst"], 1),
    ("Which is a trait that is inherited rather than learned?", ["riding a bicycle", "eye color", "speaking French", "playing piano"], 1),
    ("Why does a metal spoon feel colder than a wooden spoon at the same temperature?", ["Metal conducts heat away from the hand faster.", "Metal is colder.", "Wood produces heat.", "Metal absorbs light."], 0),
    ("Which of these best describes a hypothesis?", ["a proven fact", "a testable prediction", "a list of materials", "a final conclusion"], 1),
    ("Which gas do animals release as a waste product of respiration?", ["oxygen", "nitrogen", "carbon dioxide", "hydrogen"], 2),
    ("Sound travels fastest through which medium?", ["air", "water", "steel", "a vacuum"], 2),
]

HELLASWAG = [
    ("Removing ice from car", "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.", "then", ["the man adds wax to the windshield and cuts it.", "a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.", "the man puts on a christmas coat, knitted with netting.", "the man continues removing the snow on his car."], 3),
    ("Baking cookies", "A woman is in a kitchen mixing flour and sugar in a large bowl.", "she", ["cracks two eggs into the bowl and stirs.", "throws the bowl out of the window.", "starts to paint the walls blue.", "goes swimming in the lake."], 0),
    ("Home and Garden", "[header] How to plant tomatoes [title] Choose a sunny spot. [step] Tomatoes need at least six hours of sun a day.", "", ["[title] Dig a hole deep enough for the roots. [step] Place the seedling in the hole.", "[title] Paint the tomatoes red. [step] Use a brush.", "[title] Freeze the soil overnight.", "[title] Sell your car to buy seeds."], 0),
    ("Playing guitar", "A man sits on a stool holding an acoustic guitar.", "he", ["strums the strings and begins to sing.", "eats the guitar slowly.", "throws the stool across the street.", "turns into a bird and flies away."], 0),
    ("Washing face", "A girl stands at a sink and splashes water on her face.", "she", ["puts soap on her hands and rubs her face.", "climbs into the sink and sleeps.", "drives to the airport.", "plants a tree in the sink."], 0),
    ("Personal Care and Style", "[header] How to braid hair [title] Brush your hair. [step] Remove all tangles  before you start.", "", ["[title] Split the hair into three sections. [step] Cross the right section over the middle.", "[title] Cut all your hair off.", "[title] Wash the car.  [step] Use soap.", "[title] Dye the brush purple."], 0),
    ("Running a marathon", "Hundreds of runners line up at the start of a race in a city street.", "the gun", ["fires and the runners take off down the street.", "melts into the road.", "sings a song about the weather.", "is eaten by a dog."], 0),
    ("Shoveling snow", "A man in a heavy coat pushes a shovel along a snowy driveway.", "he", ["lifts the snow and throws it to the side.", "starts to sunbathe.", "opens an umbrella and dances.", "reads a book to the snow."], 0),
    ("Cleaning windows", "A worker sprays liquid on a large glass window.", "the worker", ["wipes the window with a squeegee.", "breaks the window with a hammer.", "drinks the liquid.", "paints the window black."], 0),
    ("Food and Entertaining", "[header] How to make lemonade [title] Squeeze the lemons. [step] You will need about six lemons.", "", ["[title] Mix the juice with water and sugar. [step] Stir until the sugar dissolves.", "[title] Throw the lemons at a wall.", "[title] Bake the lemons for an hour.", "[title] Bury the juice in the garden."], 0),
    ("Playing soccer", "Two teams run across a green field chasing a ball.", "a player", ["kicks the ball into the goal.", "picks up the field and leaves.", "falls asleep on the ball.", "orders a pizza."], 0),
    ("Brushing teeth", "A boy puts toothpaste on a toothbrush in the bathroom.", "he", ["brushes his teeth in small circles.", "brushes the dog with it.", "puts the toothbrush in the oven.", "uses it to comb his hair."], 0),
    ("Ironing clothes", "A woman lays a wrinkled shirt on an ironing board.", "she", ["presses the hot iron across the shirt.", "sets the shirt on fire.", "eats the iron.", "folds the ironing board into a boat."], 0),
    ("Rock climbing", "A climber wearing a harness grips a hold on a steep rock wall.", "the climber", ["pulls up and reaches for the next hold.", "lets go and flies upward.", "starts knitting a scarf.", "paints the rock green."], 0),
    ("Sports and Fitness", "[header] How to do a push-up [title] Get into a plank position. [step] Keep your body in a straight line.", "", ["[title] Lower your chest toward the floor. [step] Push back up.", "[title] Lie down and sleep.", "[title] Jump onto the roof.", "[title] Eat a sandwich [step] slowly."], 0),
    ("Walking the dog", "A man holds a leash while a dog sniffs the grass in a park.", "the dog", ["pulls the man along the path.", "reads the newspaper.", "drives the car home.", "cooks dinner for the man."], 0),
    ("Painting a room", "A couple covers the floor with sheets and opens a can of paint.", "they", ["dip rollers in the paint and cover the walls.", "drink the paint.", "throw the sheets into the river.", "leave for a vacation."], 0),
    ("Skateboarding", "A teen rides a skateboard down a ramp at a skate park.", "he", ["flips the board and lands the trick.", "turns the board into a sandwich.", "plants flowers on the ramp.", "swims across the ramp."], 0),
    ("Making tea", "A woman pours hot water from a kettle into a mug.", "she", ["drops a tea bag into the mug and lets it steep.", "pours the tea into her shoe.", "throws the kettle at the wall.", "plants the mug in the yard."], 0),
    ("Tying shoes", "A child sits on the floor and pulls on a pair of sneakers.", "the child", ["ties the laces into a bow.", "eats the laces.", "flies out of the window.", "paints the sneakers on the floor."], 0),
]

PIQA = [
    ("How do I keep bread fresh longer?", "Store it in a sealed bag at room temperature.", "Leave it uncovered in the sun.", 0),
    ("To cool a hot drink quickly,", "add a few ice cubes to it.", "put it in the oven.", 0),
    ("How can I remove a stripped screw?", "Place a rubber band over the head and turn slowly with a screwdriver.", "Pour water on it and wait a day.", 0),
    ("To clean a greasy pan,", "soak it in hot soapy water before scrubbing.", "rub it with dry sand and butter.", 0),
    ("How do I dry wet shoes fast?", "Stuff them with newspaper and leave them in a warm place.", "Put them in the freezer overnight.", 0),
    ("To make a paper airplane fly farther,", "fold the wings evenly and throw it gently forward.", "crumple it into a ball before throwing.", 0),
    ("How to open a tight jar lid?", "Tap the lid on the counter, then twist with a towel for grip.", "Put the jar in the freezer and shake it.", 0),
    ("To keep a candle from dripping,", "put it in the freezer for a few hours before lighting it.", "light both ends of the candle.", 0),
    ("How do I stop a door from squeaking?", "Rub some oil or soap on the hinges.", "Paint the door a darker color.", 0),
    ("To peel a hard-boiled egg easily,", "cool it in ice water and crack the shell all over.", "microwave it for five minutes.", 0),
    ("How can I find a small lost item on the carpet?", "Cover the vacuum nozzle with a stocking and vacuum the area.", "Pour water on the carpet and wait.", 0),
    ("To soften hard brown sugar,", "put a slice of bread in the container overnight.", "leave it in the sun uncovered.", 0),
    ("How do I keep my glasses from fogging up?", "Wipe the lenses with a little dish soap and dry them.", "Breathe on the lenses before going outside.", 0),
    ("To sharpen scissors at home,", "cut through a folded sheet of aluminum foil several times.", "soak them in milk.", 0),
    ("How can I make ice cubes clearer?", "Boil the water first and let it cool before freezing.", "Add salt to the water before freezing.", 0),
    ("To get rid of a bad smell in the fridge,", "place an open box of baking soda inside.", "turn the fridge off for a week.", 0),
    ("How do I unclog a drain without chemicals?", "Pour baking soda and vinegar down it, then flush with hot water.", "Pour cooking oil down it.", 0),
    ("To hang a picture straight,", "use a level when marking the nail position.", "guess by looking at it from far away.", 0),
    ("How can I keep cut apples from browning?", "Sprinkle lemon juice on the slices.", "Leave the slices in the sun.", 0),
    ("To carry many grocery bags at once,", "slide the handles onto a broom handle and lift it.", "tie the bags to your ankles.", 0),
]
# Swap half the PIQA items so the gold label is not always 0.
PIQA = [(g, b, a, 1) if i % 2 else (g, a, b, 0) for i, (g, a, b, _) in enumerate(PIQA)]

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Randy",
         "Mark", "Carla", "Lisa", "Tom", "Maria", "Ali", "Sam", "Nina", "Omar", "Rosa", "Peter",
         "Grace", "Ivan", "Mei", "Hugo", "Zoe", "Leo", "Ada"]


def gsm8k_item(i):
    """A GSM8K-style problem with the dataset's `<<calc>>` annotations."""
    name = NAMES[i % len(NAMES)]
    a, b, c = 3 + (i * 7) % 40, 2 + (i * 5) % 17, 2 + i % 6
    kind = i % 4
    if kind == 0:
        q = f"{name} has {a} apples. She buys {b} more apples and then gives away {c}. How many apples does she have now?"
        s = a + b
        ans = f"{name} has {a} + {b} = <<{a}+{b}={s}>>{s} apples after buying.\nThen she has {s} - {c} = <<{s}-{c}={s - c}>>{s - c} apples.\n#### {s - c}"
    elif kind == 1:
        price = 1000 + 137 * i
        q = f"{name} earns ${price} a month and saves {c} months of pay. How much money does {name} save?"
        t = price * c
        ans = f"{name} saves {price} * {c} = <<{price}*{c}={t}>>{t} dollars.\n#### {t:,}"
    elif kind == 2:
        q = f"A shop sells pens at ${b} each. {name} buys {c} pens and pays with a ${b * c + a} bill. How much change does {name} get?"
        cost = b * c
        ans = f"The pens cost {b} * {c} = <<{b}*{c}={cost}>>{cost} dollars.\nThe change is {cost + a} - {cost} = <<{cost + a}-{cost}={a}>>{a} dollars.\n#### {a}"
    else:
        q = f"The temperature was {c} degrees in the morning and fell by {c + b} degrees at night. What was the temperature at night?"
        ans = f"The temperature at night was {c} - {c + b} = <<{c}-{c + b}={-b}>>{-b} degrees.\n#### {-b}"
    return {"question": q, "answer": ans}


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def arc_rows(items, prefix):
    rows = []
    for i, (q, choices, gold) in enumerate(items):
        # Real ARC uses A-D mostly and 1-4 for some questions; have both.
        labels = ["1", "2", "3", "4"] if i % 5 == 4 else ["A", "B", "C", "D"]
        n = 3 if i % 7 == 3 and gold < 3 else len(choices)
        rows.append({
            "id": f"{prefix}_{i}",
            "question": q,
            "choices": {"text": choices[:n], "label": labels[:n]},
            "answerKey": labels[gold],
        })
    return rows


def hellaswag_rows():
    rows = []
    for i, (label, ctx_a, ctx_b, endings, gold) in enumerate(HELLASWAG):
        # Rotate so the gold ending is not always first.
        k = i % 4
        endings = endings[k:] + endings[:k]
        gold = (gold - k) % 4
        rows.append({
            "ind": 1000 + i,
            "activity_label": label,
            "ctx_a": ctx_a,
            "ctx_b": ctx_b,
            "ctx": (ctx_a + " " + ctx_b).strip(),
            "endings": endings,
            "source_id": f"fixture~{i}",
            "split": "val",
            "split_type": "indomain",
            "label": str(gold),
        })
    return rows


def make_data():
    write_jsonl(os.path.join(DATA, "arc_easy", "ARC-Easy", "test.jsonl"), arc_rows(ARC_EASY, "easy"))
    write_jsonl(os.path.join(DATA, "arc_challenge", "ARC-Challenge", "test.jsonl"), arc_rows(ARC_CHALLENGE, "challenge"))
    write_jsonl(os.path.join(DATA, "hellaswag", "validation.jsonl"), hellaswag_rows())
    import pyarrow as pa
    import pyarrow.parquet as pq

    piqa = [{"goal": g, "sol1": a, "sol2": b, "label": l} for g, a, b, l in PIQA]
    p = os.path.join(DATA, "piqa", "data", "validation-00000-of-00001.parquet")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(piqa), p)
    write_jsonl(os.path.join(DATA, "gsm8k", "main", "test.jsonl"), [gsm8k_item(i) for i in range(100, 108)])
    write_jsonl(os.path.join(DATA, "gsm8k", "main", "train.jsonl"), [gsm8k_item(i) for i in range(0, 40)])


# --------------------------------------------------------------------------
# lm-eval runs on local files: each task is its upstream YAML (included)
# with the dataset pointed at the fixture files.
# --------------------------------------------------------------------------

TASKS = {
    # name: (upstream yaml, builder, {split: file})
    "arc_easy": ("arc/arc_easy.yaml", "json", {"test": "arc_easy/ARC-Easy/test.jsonl"}),
    "arc_challenge": ("arc/arc_challenge.yaml", "json", {"test": "arc_challenge/ARC-Challenge/test.jsonl"}),
    "hellaswag": ("hellaswag/hellaswag.yaml", "json", {"validation": "hellaswag/validation.jsonl"}),
    "piqa": ("piqa/piqa.yaml", "parquet", {"validation": "piqa/data/validation-00000-of-00001.parquet"}),
    "gsm8k": ("gsm8k/gsm8k.yaml", "json", {"test": "gsm8k/main/test.jsonl", "train": "gsm8k/main/train.jsonl"}),
}


def task_yaml_dir():
    d = tempfile.mkdtemp(prefix="lm_eval_fx_")
    for name, (upstream, builder, files) in TASKS.items():
        src = os.path.join(TASKS_DIR, upstream)
        text = open(src).read()
        # Inline the include chain (arc_challenge includes arc_easy) and keep
        # `!function utils.x` working by copying the task's utils.py beside it.
        if text.startswith("include:"):
            base = text.split("\n", 1)[0].split(":", 1)[1].strip()
            text = open(os.path.join(os.path.dirname(src), base)).read() + "\n" + text.split("\n", 1)[1]
        lines = [l for l in text.splitlines() if not l.startswith(("task:", "dataset_path:", "dataset_name:", "tag:", "  - ai2_arc", "  - multiple_choice", "  - math_word_problems"))]
        # Only the splits the fixture has (lm-eval loads the training
        # split for few-shot docs even at 0-shot).
        for key in ("training_split", "validation_split", "test_split"):
            split = {"training_split": "train", "validation_split": "validation", "test_split": "test"}[key]
            if split not in files:
                lines = [l for l in lines if not l.startswith(key + ":")]
        lines.insert(0, f"task: fx_{name}")
        lines.insert(1, f"dataset_path: {builder}")
        lines.insert(2, "dataset_kwargs:")
        lines.insert(3, "  data_files:")
        for split, f in files.items():
            lines.insert(4, f"    {split}: {os.path.join(DATA, f)}")
        sub = os.path.join(d, name)
        os.makedirs(sub)
        with open(os.path.join(sub, f"fx_{name}.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        utils = os.path.join(os.path.dirname(src), "utils.py")
        if os.path.exists(utils):
            with open(utils) as a, open(os.path.join(sub, "utils.py"), "w") as b:
                b.write(a.read())
    return d


def run_lm_eval(lm, tm, names, **kw):
    t = time.time()
    out = simple_evaluate(model=lm, tasks=[f"fx_{n}" for n in names], task_manager=tm, log_samples=True, **kw)
    return out, time.time() - t


def loglik_fixture(lm, tm):
    out, secs = run_lm_eval(lm, tm, ["arc_easy", "arc_challenge", "hellaswag", "piqa"], batch_size=8)
    res = {}
    for name in ["arc_easy", "arc_challenge", "hellaswag", "piqa"]:
        key = f"fx_{name}"
        samples = []
        for s in sorted(out["samples"][key], key=lambda s: s["doc_id"]):
            samples.append({
                "doc_id": s["doc_id"],
                "requests": [[a["arg_0"], a["arg_1"]] for a in s["arguments"]] if isinstance(s["arguments"][0], dict) else [list(a) for a in s["arguments"]],
                "loglik": [float(r[0][0]) for r in s["resps"]],
                "is_greedy": [bool(r[0][1]) for r in s["resps"]],
                "acc": float(s["acc"]),
                "acc_norm": float(s["acc_norm"]),
                "target": s["target"],
            })
        m = out["results"][key]
        res[name] = {
            "metrics": {k.split(",")[0]: v for k, v in m.items() if k.startswith(("acc,", "acc_norm,", "acc_stderr", "acc_norm_stderr"))},
            "samples": samples,
        }
    return res, secs


def gsm8k_fixture(lm, tm, model_dir):
    out, secs = run_lm_eval(lm, tm, ["gsm8k"], batch_size=4)
    samples = []
    for s in sorted(out["samples"]["fx_gsm8k"], key=lambda s: s["doc_id"]):
        args = s["arguments"][0]
        prompt = args["arg_0"] if isinstance(args, dict) else args[0]
        samples.append({
            "doc_id": s["doc_id"],
            "prompt": prompt,
            "response": s["resps"][0][0],
            "filtered": s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"],
            "filter": s["filter"],
            "exact_match": float(s["exact_match"]),
            "target": s["target"],
        })
    m = out["results"]["fx_gsm8k"]
    # Plain transformers greedy decoding of the first prompts, token ids.
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    greedy = []
    prompts = sorted({s["prompt"] for s in samples})[:2]
    for p in prompts:
        ids = tok(p, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            g = model.generate(ids, max_new_tokens=96, do_sample=False, pad_token_id=tok.eos_token_id)
        greedy.append({"prompt": p, "prompt_ids": ids[0].tolist(), "new_ids": g[0, ids.shape[1]:].tolist()})
    return {"metrics": {k: v for k, v in m.items() if k.startswith("exact_match")}, "samples": samples, "transformers_greedy": greedy}, secs


EXTRACT_CORPUS = [
    "The answer is 42.\n#### 42",
    "#### 1,234",
    "So she has $1,234.50 left.\n#### $1,234.50",
    "#### -7",
    "It fell by 7 degrees, so it is -7 degrees. #### -7.",
    "She had 12 apples, then 15, then 3.",
    "No numbers here at all.",
    "The total is 3,000 dollars.",
    "He pays $45.",
    "First 10, then 20. The answer is 30.",
    "#### 12 and later #### 13",
    "####5",
    "#### 5\nQuestion: next",
    "It costs 2.5 dollars per unit, so 10 units cost 25.00.",
    "a 7 b",
    "Answer: -3",
    "values 1.2.3, and ,,, then 99",
    "The answer is 1,000,000.",
    "#### .5",
    "x = -0.25.",
    "#### 18\n",
    "   #### 72   ",
    "7",
    "",
    "Total: $-12",
    "#### 3.",
    "I think 40.\n\nQuestion: What",
    "The result is 12.\n",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
]
EXTRACT_REFS = ["#### 42", "Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72", "#### 1234", "#### -7", "#### 30", "#### 25", "#### 1000000", "#### 3", "#### 5", "#### 12"]


def extract_fixture():
    strict = RegexFilter(regex_pattern="#### (\\-?[0-9\\.\\,]+)")
    flexible = RegexFilter(regex_pattern="(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1)
    first = TakeFirstFilter()
    rows = []
    regexes = [",", "\\$", "(?s).*#### ", "\\.$"]
    for text in EXTRACT_CORPUS:
        s = list(first.apply(strict.apply([[text]], [{}]), [{}]))[0]
        f = list(first.apply(flexible.apply([[text]], [{}]), [{}]))[0]
        matches = {}
        for ref in EXTRACT_REFS:
            ms = exact_match_hf_evaluate([s], [ref], regexes_to_ignore=regexes, ignore_case=True, ignore_punctuation=False)["exact_match"]
            mf = exact_match_hf_evaluate([f], [ref], regexes_to_ignore=regexes, ignore_case=True, ignore_punctuation=False)["exact_match"]
            matches[ref] = [float(ms), float(mf)]
        rows.append({"response": text, "strict": s, "flexible": f, "exact_match": matches})
    return {"references": EXTRACT_REFS, "cases": rows}


def main():
    model_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct"))
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    make_data()
    with open(os.path.join(OUT, "lm_eval_gsm8k_extract.json"), "w") as f:
        json.dump(extract_fixture(), f, indent=1, ensure_ascii=False)
    tm = TaskManager(include_path=task_yaml_dir())
    lm = HFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=8)
    meta = {"lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13",
            "transformers": transformers.__version__, "torch": torch.__version__, "model": os.path.relpath(model_dir, ROOT)}
    ll, secs = loglik_fixture(lm, tm)
    with open(os.path.join(OUT, "lm_eval_loglik.json"), "w") as f:
        json.dump({"meta": meta, "tasks": ll}, f, indent=1, ensure_ascii=False)
    print(f"log-likelihood tasks: {secs:.1f} s", file=sys.stderr)
    g, secs = gsm8k_fixture(lm, tm, model_dir)
    with open(os.path.join(OUT, "lm_eval_gsm8k.json"), "w") as f:
        json.dump({"meta": meta, **g}, f, indent=1, ensure_ascii=False)
    print(f"gsm8k: {secs:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

//! The demo's tiny world: the facts, routines, tools, people and topics
//! every generated item is built from. Train and test items share these
//! (as a pretraining corpus shares facts with a real benchmark); only
//! their combinations are held out.

pub(crate) const COLOR_FACTS: [(&str, &str); 20] = [
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

pub(crate) const COLORS: [&str; 11] = [
    "red", "orange", "yellow", "green", "blue", "purple", "white", "black", "brown", "pink", "grey",
];

/// Everyday routines: each step follows the one before it.
pub(crate) const ROUTINES: [(&str, [&str; 5]); 8] = [
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
pub(crate) const PEOPLE: [(&str, &str); 8] = [
    ("A man", "he"),
    ("A woman", "she"),
    ("The boy", "he"),
    ("The girl", "she"),
    ("An old man", "he"),
    ("A young woman", "she"),
    ("The teacher", "she"),
    ("The farmer", "he"),
];

pub(crate) const TOOLS: [(&str, &str); 16] = [
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

pub(crate) const NAMES: [(&str, &str); 10] = [
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

pub(crate) const THINGS: [&str; 8] = [
    "apples", "pencils", "marbles", "stickers", "books", "cookies", "shells", "coins",
];

/// Topics to write about, each with its one sentence (with a comma, so
/// that `punctuation:no_comma` has something to leave out).
pub(crate) const TOPICS: [(&str, &str); 12] = [
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

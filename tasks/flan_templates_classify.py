"""Templates for text classification: SST-2 (sentiment), TREC (question type), AG News.

Answer words are literal choices indexed by `label_index` in the catalog's
label order (normalizers.SENTIMENT, TREC_LABELS, AGNEWS_LABELS). AG News sits
in FLAN's summarization cluster, so it also has headline-writing templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flanjax.tasks.flan_templates_common import DatasetTemplates, Record, choice, gen, inv

# --------------------------------------------------------------------- SST-2

NEG_POS = ("negative", "positive")


def prepare_sst2(record: Mapping[str, Any]) -> Record:
    return {**record, "opinion": ("unfavorable", "favorable")[record["label_index"]]}


SST2 = DatasetTemplates(
    templates=(
        choice("t0", "{sentence}\n\nWhat is the sentiment of this review?\n{options}", NEG_POS),
        choice("t1", 'Movie review: "{sentence}"\nDid the reviewer like the movie?',
               ("no", "yes")),
        choice("t2", "Is the following sentence positive or negative?\n{sentence}", NEG_POS),
        choice("t3", "{sentence}\nHow does the writer feel about the film?\n{options}",
               ("they dislike it", "they like it")),
        choice("t4", "Classify the sentiment of the text as good or bad.\nText: {sentence}",
               ("bad", "good")),
        choice("t5", "Review excerpt: {sentence}\nWould this excerpt make someone want to see "
               "the movie?\n{options}", ("no", "yes")),
        choice("t6", '"{sentence}"\nThe tone of this phrase is', NEG_POS),
        choice("t7", "A critic wrote: {sentence}\nWas the critic's opinion favorable or "
               "unfavorable?\n{options}", ("unfavorable", "favorable")),
        inv("t8", "Write a {label} sentence from a movie review.", "{sentence}"),
        inv("t9", "Compose one line of a film critique that comes across as {opinion}.",
            "{sentence}"),
    ),
    prepare=prepare_sst2,
    metric="accuracy",
)  # fmt: skip


# ---------------------------------------------------------------------- TREC

# In the order of normalizers.TREC_LABELS: description, entity, abbreviation,
# human, location, numeric.
TREC_WORDS = ("description", "entity", "abbreviation", "human", "location", "number")
TREC_SHORT = ("description", "thing", "abbreviation", "person", "place", "number")
TREC_PHRASES = (
    "a description or explanation",
    "an entity or thing",
    "the expansion of an abbreviation",
    "a person or group of people",
    "a place",
    "a number or quantity",
)


def prepare_trec(record: Mapping[str, Any]) -> Record:
    return {**record, "label_phrase": TREC_PHRASES[record["label_index"]]}


TREC = DatasetTemplates(
    templates=(
        choice("t0", "What kind of answer does this question ask for?\n{question}\n{options}",
               TREC_PHRASES),
        choice("t1", "Question: {question}\nIs it asking about a description, an entity, an "
               "abbreviation, a human, a location or a number?", TREC_WORDS),
        choice("t2", "{question}\n\nWhich category best fits the answer to the question above?"
               "\n{options}", TREC_WORDS),
        choice("t3", 'What type of thing is the answer to "{question}"?\n{options}', TREC_SHORT),
        choice("t4", "Read the question and name the type of its answer.\nQuestion: {question}"
               "\nAnswer type:", TREC_WORDS),
        choice("t5", "{question}\nTo answer this, you would have to give which of these?\n"
               "{options}", TREC_PHRASES),
        gen("t6", "Give the TREC coarse class (ABBR, DESC, ENTY, HUM, LOC or NUM) of this "
            "question: {question}", "{coarse_label}", "exact_match"),
        gen("t7", "Label the question with its TREC class, written COARSE:fine (for example "
            "NUM:date).\n{question}", "{coarse_label}:{fine_label}", "exact_match"),
        inv("t8", "Write a question whose answer would be {label_phrase}.", "{question}"),
        inv("t9", "Write a question of type {coarse_label}:{fine_label} in the TREC taxonomy.",
            "{question}"),
    ),
    prepare=prepare_trec,
    metric="accuracy",
)  # fmt: skip


# ------------------------------------------------------------------- AG News

AGNEWS_NAMES = ("World", "Sports", "Business", "Sci/Tech")
AGNEWS_TOPICS = ("world news", "sports", "business", "science and technology")


def prepare_agnews(record: Mapping[str, Any]) -> Record:
    return {**record, "topic": AGNEWS_TOPICS[record["label_index"]]}


AGNEWS = DatasetTemplates(
    templates=(
        choice("t0", "{title}\n\n{text}\n\nWhich topic is this article about?\n{options}",
               AGNEWS_NAMES),
        choice("t1", "Headline: {title}\nUnder which heading would a news site file this "
               "story?", AGNEWS_TOPICS),
        choice("t2", "Article: {text}\nIs this news about world events, sports, business, or "
               "science and technology?", AGNEWS_TOPICS),
        choice("t3", "Classify the news story.\nTitle: {title}\nStory: {text}\n{options}",
               AGNEWS_TOPICS),
        choice("t4", "{text}\nTopic:", AGNEWS_NAMES),
        choice("t5", 'Which of these best describes the article "{title}"?\n{options}',
               ("World", "Sports", "Business", "Science/Tech")),
        gen("t6", "{text}\n\nWrite a headline for this news story.", "{title}", "rouge"),
        gen("t7", "Give this article a short title.\n\n{text}", "{title}", "rouge"),
        inv("t8", 'Write a {topic} news story with the headline "{title}".', "{text}"),
        inv("t9", "Here is the headline of a {topic} article: {title}\nWrite the opening of "
            "the article.", "{text}"),
    ),
    prepare=prepare_agnews,
    metric="accuracy",
)  # fmt: skip


DATASETS: dict[str, DatasetTemplates] = {"sst2": SST2, "trec": TREC, "agnews": AGNEWS}

"""Synthetic research questions for the dedup benchmark: distinct templated questions plus near-copies.

A question is an opening, a subject, a relation, an object, a place and a period drawn from word lists
and read like the teacher's output; rows come in subdomains of 200 with their own subject, object and
place, so the vocabulary grows with the number of rows as real teacher data's does.
A share of rows are edited copies of earlier rows (a word swapped for a synonym, a word dropped, the
context changed), which is what a teacher repeating itself produces; their source index is returned.
"""

from __future__ import annotations

import numpy as np

OPENINGS = ["How does", "To what extent does", "In what ways does", "Why does", "Under what conditions does",
            "How strongly does", "Through which mechanisms does", "How reliably does", "When does",
            "How much does", "Does", "How quickly does", "How consistently does", "For whom does", "Where does"]
ADJECTIVES = ["urban", "rural", "digital", "chronic", "early", "remote", "coastal", "seasonal", "informal",
              "adaptive", "community", "public", "private", "sustained", "low-income", "multilingual", "regional",
              "automated", "participatory", "intergenerational"]
NOUNS = ["noise exposure", "sleep deprivation", "microfinance access", "soil salinity", "teacher feedback",
         "social media use", "heat stress", "peer tutoring", "air pollution", "mobile banking", "green space",
         "migration", "language immersion", "policy transparency", "wind variability", "gut microbiota",
         "screen time", "carbon pricing", "vaccine hesitancy", "groundwater depletion", "remote work",
         "ocean acidification", "music training", "food insecurity", "algorithmic curation"]
RELATIONS = ["affect", "predict", "shape", "moderate", "reduce", "amplify", "explain", "constrain", "improve",
             "undermine", "mediate", "accelerate", "influence", "alter", "sustain"]
OBJECTS = ["memory consolidation", "crop yields", "voter turnout", "reading comprehension", "household savings",
           "species diversity", "heart rate variability", "trust in institutions", "grid stability",
           "small business survival", "adolescent wellbeing", "coral recruitment", "wage growth",
           "protein folding rates", "civic participation", "student attainment", "biofilm formation",
           "housing prices", "immune response", "citation impact", "pollinator abundance", "loan repayment",
           "attention span", "energy demand", "labour mobility"]
PLACES = ["in older adults", "in smallholder farms", "in coastal cities", "among first-generation students",
          "in sub-Saharan Africa", "in post-industrial towns", "among night-shift workers", "in temperate forests",
          "in secondary schools", "across European regions", "in island nations", "among refugees",
          "in mid-sized firms", "in Arctic communities", "among adolescents", "in megacities",
          "in river deltas", "among nurses", "in mountain ecosystems", "in online communities"]
PERIODS = ["over a decade", "during economic downturns", "after policy reforms", "within the first year",
           "across generations", "during heatwaves", "in the long run", "since 2010", "during the pandemic",
           "over a school year"]
SYNONYMS = {"affect": "influence", "predict": "forecast", "reduce": "lower", "improve": "enhance",
            "older adults": "elderly people", "students": "learners", "cities": "towns", "firms": "companies",
            "workers": "employees", "shape": "mould", "explain": "account for", "How does": "In what way does"}


SYLLABLES = ["ka", "ro", "ven", "ti", "mar", "lo", "su", "dan", "el", "qua", "bri", "no", "tes", "ha", "gor",
             "wi", "pel", "zu", "an", "cor"]
PLACE_KINDS = ["district", "province", "valley", "region", "county", "municipality", "basin", "delta"]
QUESTIONS_PER_SUBDOMAIN = 200


def subdomain_name(k: int) -> str:
    """A made-up place name unique to subdomain k (20^4 = 160,000 of them): the subdomain's own vocabulary."""
    parts = [SYLLABLES[(k // 20 ** d) % 20] for d in range(4)]
    return ("".join(parts)).capitalize()


def synthetic_questions(n: int, duplicate_share: float = 0.1, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(questions, source): source[i] is the index of the row that row i is an edited copy of, else -1.

    Like the teacher's output, rows come in subdomains of QUESTIONS_PER_SUBDOMAIN questions: each
    subdomain has its own subject, object and a place of its own (a made-up name), and its questions
    vary the opening, qualifiers, relation and period. So the vocabulary grows with n (more subdomains)
    and the share of near-duplicates, injected or accidental, stays the same at every size instead of
    growing with n as it would if a million questions were drawn from one fixed template space. A
    `duplicate_share` of rows are edited copies of an earlier row of the same subdomain.
    """
    rng = np.random.default_rng(seed)
    subdomain = np.arange(n) // QUESTIONS_PER_SUBDOMAIN
    count = int(subdomain[-1]) + 1 if n else 0
    topic_noun = rng.integers(0, len(NOUNS), count)
    topic_object = rng.integers(0, len(OBJECTS), count)
    topic_kind = rng.integers(0, len(PLACE_KINDS), count)
    names = [subdomain_name(int(k)) for k in rng.permutation(20 ** 4)[:count]]
    picks = [rng.integers(0, len(v), n) for v in (OPENINGS, ADJECTIVES, RELATIONS, ADJECTIVES, PERIODS)]
    questions = [
        f"{OPENINGS[o]} {ADJECTIVES[a1]} {NOUNS[topic_noun[s]]} {RELATIONS[r]} {ADJECTIVES[a2]} "
        f"{OBJECTS[topic_object[s]]} in the {names[s]} {PLACE_KINDS[topic_kind[s]]} {PERIODS[t]}?"
        for s, o, a1, r, a2, t in zip(subdomain, *picks)
    ]
    source = np.full(n, -1, dtype=np.int64)
    copies = np.flatnonzero(rng.random(n) < duplicate_share)
    first_of_subdomain = subdomain * QUESTIONS_PER_SUBDOMAIN
    copies = copies[copies > first_of_subdomain[copies]]
    start = first_of_subdomain[copies]
    origins = start + (rng.random(len(copies)) * (copies - start)).astype(np.int64)  # an earlier row, same subdomain
    edits = rng.integers(0, 3, len(copies))
    for i, j, edit in zip(copies, origins, edits):
        j = source[j] if source[j] >= 0 else j
        text = questions[j]
        if edit == 0:  # a synonym
            for word, synonym in SYNONYMS.items():
                if word in text:
                    text = text.replace(word, synonym, 1)
                    break
        elif edit == 1:  # drop the period phrase
            text = text.rsplit(" ", 3)[0] + "?" if text.count(" ") > 8 else text
        else:  # another period
            text = text.rsplit(" ", 2)[0] + " " + PERIODS[(i * 7) % len(PERIODS)] + "?"
        questions[i], source[i] = text, j
    return questions, source

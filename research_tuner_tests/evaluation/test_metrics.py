"""ROUGE-L and METEOR (values, evaluate parity, WordNet use and absence) and the paired bootstrap."""

from __future__ import annotations

import math

import nltk
import numpy as np
import pytest
from nltk.tokenize import word_tokenize
from nltk.translate.meteor_score import single_meteor_score
from rouge_score import rouge_scorer

from research_tuner.lib.evaluation import metrics, text_overlap
from research_tuner.lib.evaluation.stats import paired_bootstrap_ci, relative_improvement

PAIRS = [  # (prediction, reference): varied lengths, case, punctuation, sentences, synonyms
    ("the cat sat on the mat", "the cat lay on the mat"),
    ("We will train a LoRA adapter on 32 examples.", "We train a LoRA adapter using 32 examples."),
    ("Collect data. Clean it. Then fit the model!", "First collect the data. Then clean it and fit a model."),
    ("Dr. Smith measured the auto's speed at 5 p.m. on Jan. 3rd.", "Dr. Smith timed the car on Jan. 3rd."),
    ("It's a big result; isn't it?", "It is a large result, is it not?"),
    ('She said "yes" (twice).', "She answered yes twice."),
    ("Hypothesis: sleep improves recall.\nMethod: a randomized trial.", "Method: randomized trial. Hypothesis: sleep helps memory."),
    ("", "a reference with no prediction"),
    ("running dogs quickly", "the dog runs quick"),
    ("Café résumé naïve", "cafe resume naive"),
    ("One. Two. Three. Four.", "one two three four"),
]


def evaluate_rouge_l(predictions, references):
    """evaluate's rouge `_compute` with its defaults and use_aggregator=False, the "rougeL" list."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False)
    return [scorer.score(ref, pred)["rougeL"].fmeasure for ref, pred in zip(references, predictions)]


def evaluate_meteor_scores(predictions, references):
    """evaluate's meteor `_compute` for single references, before its np.mean."""
    return [
        single_meteor_score(word_tokenize(ref), word_tokenize(pred), alpha=0.9, beta=3, gamma=0.5)
        for ref, pred in zip(references, predictions)
    ]


@pytest.fixture
def parameterless_punkt_tab(tmp_path, monkeypatch):
    """An English punkt_tab model with no learned parameters, so `word_tokenize` runs as evaluate calls it."""
    model = tmp_path / "tokenizers" / "punkt_tab" / "english"
    model.mkdir(parents=True)
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        (model / name).write_text("")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path), *nltk.data.path])
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    text_overlap.punkt_tab_installed.cache_clear()
    yield
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    text_overlap.punkt_tab_installed.cache_clear()


def test_rouge_l_hand_computed():
    # "the cat sat on the mat" vs "the cat lay on the mat": LCS = the cat _ on the mat = 5 of 6 tokens
    # each side, so P = R = 5/6 and F = 5/6.
    assert text_overlap.rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)
    # prediction "the quick brown fox jumps" (5), reference "the brown fox quickly jumps over the dog" (8):
    # LCS = the brown fox jumps = 4, P = 4/5, R = 4/8, F = 2PR/(P+R) = 0.8/1.3 = 8/13.
    assert text_overlap.rouge_l(
        "the quick brown fox jumps", "the brown fox quickly jumps over the dog"
    ) == pytest.approx(8 / 13)
    # The default tokenizer lower-cases and drops punctuation; no stemming, so "dogs" != "dog".
    assert text_overlap.rouge_l("The CAT, sat!", "the cat sat") == 1.0
    assert text_overlap.rouge_l("dogs running", "dog runs") == 0.0


def test_identical_and_disjoint():
    text = "the cat sat on the mat"
    assert text_overlap.rouge_l(text, text) == 1.0
    # METEOR keeps a fragmentation penalty even for a perfect match: one chunk over m = 6 matches
    # gives 1 - 0.5 * (1/6)**3, not exactly 1.
    assert text_overlap.meteor(text, text) == pytest.approx(1 - 0.5 / 6**3)
    assert text_overlap.meteor("The Cat Sat", "the cat sat") == pytest.approx(1 - 0.5 / 3**3)  # NLTK lower-cases
    assert text_overlap.rouge_l("alpha beta gamma", "delta epsilon zeta") == 0.0
    assert text_overlap.meteor("alpha beta gamma", "delta epsilon zeta") == 0.0


def test_meteor_uses_wordnet_synonyms():
    # "auto" and "car" share the synset car.n.01 (and stem to themselves, which NLTK's synonym stage
    # needs: it runs after the stem stage, on stemmed leftovers). All 4 match in one chunk:
    # 1 - 0.5 * (1/4)**3. With "boat": 3 matches, P = R = 3/4, chunks "the" | "is red" = 2,
    # so 0.75 * (1 - 0.5 * (2/3)**3).
    synonym = text_overlap.meteor("the auto is red", "the car is red")
    other = text_overlap.meteor("the boat is red", "the car is red")
    assert synonym == pytest.approx(1 - 0.5 / 64)
    assert other == pytest.approx(0.75 * (1 - 0.5 * (2 / 3) ** 3))
    assert synonym > other


def test_tokenize_equals_word_tokenize_with_punkt_tab(parameterless_punkt_tab):
    assert text_overlap.punkt_tab_installed()
    for pred, ref in PAIRS:
        assert text_overlap.tokenize(pred) == word_tokenize(pred)
        assert text_overlap.tokenize(ref) == word_tokenize(ref)


def test_scores_equal_evaluate_formulas(parameterless_punkt_tab):
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    expected_meteor = evaluate_meteor_scores(preds, refs)  # word_tokenize through the punkt_tab model
    text_overlap.punkt_tab_installed.cache_clear()
    nltk.data.path.pop(0)  # now without punkt_tab: the untrained-Punkt fallback must agree exactly
    assert not text_overlap.punkt_tab_installed()
    rouge, meteor = metrics.ROUGE_L.compute(preds, refs), metrics.METEOR.compute(preds, refs)  # the registry's scorers
    assert len(rouge) == len(meteor) == len(PAIRS)
    assert rouge == pytest.approx(evaluate_rouge_l(preds, refs), abs=1e-12)
    assert meteor == pytest.approx(expected_meteor, abs=1e-12)
    assert np.mean(meteor) == pytest.approx(np.mean(expected_meteor))
    assert 0 < np.mean(meteor) < 1 and 0 < np.mean(rouge) < 1


def test_registry_scorers_edges():
    for metric in metrics.METRICS:
        assert metric.compute([], []) == []
        with pytest.raises(ValueError, match="1 answers but 0 references"):
            metric.compute(["a"], [])
    with pytest.raises(ValueError, match="not computed from the texts"):
        metrics.JUDGE_SCORE.compute(["a"], ["b"])
    assert metrics.metric_names() == ["rouge_l", "meteor", "section_coverage", "embedding_similarity"]
    assert metrics.metric("judge_score") is metrics.JUDGE_SCORE
    with pytest.raises(KeyError, match="known: rouge_l"):
        metrics.metric("bleu")


def test_metric_data_info():
    info = text_overlap.metric_data_info()
    assert info["wordnet"].startswith("3.0 at ") and info["wordnet"].endswith("wordnet")
    assert info["sentence_splitter"] in {"punkt_tab", "untrained Punkt (punkt_tab not installed)"}
    assert info["rouge_stemmer"] == "off (evaluate's default)"


def synthetic_pairs(seed: int, n: int, true_delta: float = 0.02):
    rng = np.random.default_rng(1000 + seed)
    a = rng.normal(0.3, 0.1, n)
    return a, a + rng.normal(true_delta, 0.05, n)


def test_bootstrap_covers_true_difference():
    covered = 0
    for seed in range(50):
        a, b = synthetic_pairs(seed, 200)
        mean, low, high = paired_bootstrap_ci(a, b, n_resamples=2000, seed=seed)
        assert low <= mean <= high
        covered += low <= 0.02 <= high
    assert covered >= 45


def test_bootstrap_narrows_and_is_reproducible():
    width = {}
    for n in (50, 800):
        _, low, high = paired_bootstrap_ci(*synthetic_pairs(0, n), n_resamples=2000)
        width[n] = high - low
    assert width[800] < width[50] / 2  # ~ 1/sqrt(16) = 1/4 in theory
    a, b = synthetic_pairs(1, 100)
    assert paired_bootstrap_ci(a, b, seed=3) == paired_bootstrap_ci(a, b, seed=3)


def test_bootstrap_small_samples_and_relative_improvement():
    assert all(math.isnan(x) for x in paired_bootstrap_ci([], []))
    mean, low, high = paired_bootstrap_ci([0.2], [0.5])
    assert mean == pytest.approx(0.3) and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1, 2], [1])
    assert relative_improvement(0.2, 0.25) == pytest.approx(25.0)
    assert relative_improvement(0.4, 0.3) == pytest.approx(-25.0)
    assert math.isnan(relative_improvement(0.0, 0.1))


def test_missing_wordnet_gives_install_advice(tmp_path, monkeypatch):
    from nltk.corpus import wordnet
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    if isinstance(wordnet, WordNetCorpusReader):
        wordnet._unload()  # back to NLTK's lazy loader; it reloads on next use
    with pytest.raises(RuntimeError, match=r"scripts/install_wordnet\.py.*wordnet-base"):
        text_overlap.wordnet_root()
    with pytest.raises(RuntimeError, match=r"scripts/install_wordnet\.py"):
        text_overlap.meteor("the cat", "the cat")
    assert text_overlap.metric_data_info()["wordnet"].startswith("not installed")


def test_every_registry_metric_is_an_evaluate_module_that_loads_offline(monkeypatch, tmp_path):
    """`evaluate.load` of the module file, with the hub unreachable, gives the registry's scores."""
    import evaluate

    from research_tuner.lib.evaluation.metric_modules import module_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    preds, refs = [p for p, _ in PAIRS[:4]], [r for _, r in PAIRS[:4]]
    for metric in metrics.METRICS:
        module = evaluate.load(module_path(metric.score), keep_in_memory=True)
        assert module.compute(predictions=preds, references=refs)["scores"] == pytest.approx(
            metric.compute(preds, refs), abs=1e-6), metric.name
    assert evaluate.load(module_path("rouge_l")).compute(predictions=preds, references=refs)["scores"] == \
        pytest.approx(evaluate_rouge_l(preds, refs), abs=1e-12)


def test_embedding_similarity_is_the_cosine_of_minilm_embeddings():
    from sentence_transformers import SentenceTransformer

    from research_tuner.lib.shared.similarity.embeddings import _model_location

    answers = ["Sleep improves memory consolidation in adults.", "The stock market fell sharply on Monday.",
               "the cat sat on the mat"]
    references = ["Adults remember more after a night of sleep.", "Adults remember more after a night of sleep.",
                  "the cat sat on the mat"]
    scores = metrics.EMBEDDING_SIMILARITY.compute(answers, references, embedding_model="embedded:all-MiniLM-L6-v2")
    model = SentenceTransformer(_model_location("embedded:all-MiniLM-L6-v2"), device="cpu")
    a, b = (model.encode(t, normalize_embeddings=True) for t in (answers, references))
    assert scores == pytest.approx((a * b).sum(axis=1).tolist(), abs=1e-5)
    assert scores[0] > scores[1] + 0.3 and scores[2] == pytest.approx(1.0, abs=1e-5)  # meaning, not shared words

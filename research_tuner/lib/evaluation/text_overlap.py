"""ROUGE-L and METEOR of one answer against one reference, computed offline exactly as Hugging Face `evaluate`'s
metrics do (metrics.py registers them).

`evaluate.load("rouge")` and `evaluate.load("meteor")` download their scripts at run time, which fails
here, so this module calls the same libraries with the same settings:

- ROUGE-L: `rouge_score.RougeScorer(["rougeL"], use_stemmer=False)`, default tokenizer,
  `score(reference, prediction).fmeasure` (= `compute(..., use_aggregator=False)["rougeL"]`).
- METEOR: `nltk.translate.meteor_score.single_meteor_score(word_tokenize(ref), word_tokenize(pred),
  alpha=0.9, beta=3, gamma=0.5)`. NLTK lower-cases the tokens itself (`preprocess=str.lower`).
  Synonym matching needs NLTK's WordNet: `python scripts/install_wordnet.py` installs it offline.
  `word_tokenize` needs the `punkt_tab` model to split sentences; without it `tokenize` splits them
  with an untrained Punkt tokenizer (same algorithm, no learned abbreviations) and then tokenizes
  each sentence as `word_tokenize` does.
"""

from __future__ import annotations

from functools import cache

import nltk
from nltk.tokenize import word_tokenize
from nltk.tokenize.punkt import PunktSentenceTokenizer
from nltk.translate.meteor_score import single_meteor_score
from rouge_score import rouge_scorer

USE_STEMMER = False  # evaluate's rouge default
METEOR_PARAMS = {"alpha": 0.9, "beta": 3, "gamma": 0.5}  # evaluate's meteor defaults
WORDNET_HINT = (
    "NLTK's WordNet corpus is not installed, and METEOR needs it for synonym matching. "
    "Run `python scripts/install_wordnet.py` (it builds it offline from the Debian packages "
    "wordnet-base and wordnet-sense-index: `sudo apt-get install wordnet-base wordnet-sense-index`)."
)


@cache
def _rouge_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=USE_STEMMER)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure of one prediction against one reference."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@cache
def punkt_tab_installed() -> bool:
    """Whether NLTK finds the English `punkt_tab` model that `word_tokenize` splits sentences with."""
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return False
    return True


@cache
def _untrained_punkt() -> PunktSentenceTokenizer:
    return PunktSentenceTokenizer()


def tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`, or its closest equivalent when `punkt_tab` is not installed."""
    if punkt_tab_installed():
        return word_tokenize(text)
    sentences = _untrained_punkt().tokenize(text)
    return [token for s in sentences for token in word_tokenize(s, preserve_line=True)]


def _wordnet_reader():
    from nltk.corpus import wordnet

    return wordnet


def wordnet_root() -> str:
    """Folder NLTK would read WordNet from; RuntimeError with install advice when there is none."""
    for resource in ("corpora/wordnet/lexnames", "corpora/wordnet.zip/wordnet/lexnames"):
        try:
            return str(nltk.data.find(resource)).removesuffix("lexnames").rstrip("/")
        except LookupError:
            continue
    raise RuntimeError(WORDNET_HINT)


def require_wordnet():
    """The loaded WordNet reader, or RuntimeError with install advice (never NLTK's LookupError)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    wordnet = _wordnet_reader()
    if not isinstance(wordnet, WordNetCorpusReader):  # still NLTK's lazy loader
        wordnet_root()
        try:
            wordnet.ensure_loaded()
        except (LookupError, OSError) as e:
            raise RuntimeError(f"{WORDNET_HINT} (NLTK: {e})") from e
    return wordnet


def meteor(prediction: str, reference: str) -> float:
    """METEOR of one prediction against one reference, with evaluate's alpha, beta and gamma."""
    wordnet = require_wordnet()
    return float(
        single_meteor_score(tokenize(reference), tokenize(prediction), wordnet=wordnet, **METEOR_PARAMS)
    )


def metric_data_info() -> dict[str, str]:
    """Which data and settings the scores used, for run metadata."""
    try:
        wordnet = require_wordnet()
        wordnet_text = f"{wordnet.get_version()} at {wordnet.root}"
    except RuntimeError:
        wordnet_text = "not installed (run python scripts/install_wordnet.py)"
    return {
        "wordnet": wordnet_text,
        "sentence_splitter": "punkt_tab"
        if punkt_tab_installed()
        else "untrained Punkt (punkt_tab not installed)",
        "rouge_stemmer": "on (Porter)" if USE_STEMMER else "off (evaluate's default)",
        "meteor_params": ", ".join(f"{k}={v}" for k, v in METEOR_PARAMS.items()),
    }

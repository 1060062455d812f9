"""Theme suggestions for free text no theme has yet: TF-IDF and NMF (scikit-learn), run on
this computer (nothing leaves it), with English (scikit-learn's) and Welsh stop words
(welsh_stop_words.txt beside this file, a first draft).

`suggest` is plain, slow-ish CPU work: the workbench runs it in a thread
(asyncio.to_thread), so the bot's event loop never waits for it, and with one BLAS thread,
so a core stays free for the bot. It is deterministic (NMF's nndsvda start and a fixed
random_state): the same texts give the same suggestions.

A suggestion is only ever shown: its top words, how many items it covers (those with at
least SHARE of their weight in it) and a few examples. Nothing is tagged until a facilitator
names it and says "Use this theme" (bot/web/pages/themes.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from threadpoolctl import threadpool_limits

WELSH_FILE = Path(__file__).resolve().with_name("welsh_stop_words").with_suffix(".txt")
MIN_ITEMS = 10  # fewer untagged texts than this: "Not enough untagged text yet"
MAX_TOPICS = 8
ITEMS_PER_TOPIC = 5  # topics asked for: min(MAX_TOPICS, texts // ITEMS_PER_TOPIC)
TOP_WORDS = 8
EXAMPLES = 3
SHARE = 0.5  # an item is covered by a suggestion holding at least this share of its weight
MAX_FEATURES = 5000  # words kept (the most frequent), so memory stays small
SEED = 0


@dataclass(frozen=True)
class Suggestion:
    """A theme the texts seem to share: its top words, and the items it covers (their keys,
    strongest first)."""

    words: tuple[str, ...]
    items: tuple[str, ...]

    @property
    def examples(self) -> tuple[str, ...]:
        return self.items[:EXAMPLES]


@dataclass(frozen=True)
class Suggestions:
    """What `suggest` found in `texts` texts; `enough` is False when there were too few."""

    texts: int
    enough: bool
    topics: tuple[Suggestion, ...] = ()


@cache
def welsh_stop_words() -> frozenset[str]:
    """The Welsh stop words (one a line in welsh_stop_words.txt; # starts a comment)."""
    lines = WELSH_FILE.read_text("utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def stop_words() -> list[str]:
    """English and Welsh stop words, sorted (so the vectorizer is the same every time)."""
    return sorted(ENGLISH_STOP_WORDS | welsh_stop_words())


def topics_for(count: int) -> int:
    """How many suggestions to look for among `count` texts (0: too few)."""
    if count < MIN_ITEMS:
        return 0
    return max(2, min(MAX_TOPICS, count // ITEMS_PER_TOPIC))


def suggest(texts: Sequence[tuple[str, str]], stop: Sequence[str] | None = None) -> Suggestions:
    """Suggestions for texts given as (item key, text), without the stop words `stop`
    (English and Welsh if None). Blocking: run it in a thread."""
    wanted = topics_for(len(texts))
    if not wanted:
        return Suggestions(len(texts), enough=False)
    vectorizer = TfidfVectorizer(
        stop_words=stop_words() if stop is None else list(stop),
        lowercase=True,
        sublinear_tf=True,
        max_df=0.7,
        min_df=2 if len(texts) >= 50 else 1,
        max_features=MAX_FEATURES,
    )
    with threadpool_limits(limits=1):
        try:
            matrix = vectorizer.fit_transform([text for _, text in texts])
        except ValueError:  # nothing left once stop words are taken out
            return Suggestions(len(texts), enough=False)
        words = vectorizer.get_feature_names_out()
        wanted = min(wanted, len(words), len(texts))
        if wanted < 2:
            return Suggestions(len(texts), enough=False)
        model = NMF(n_components=wanted, init="nndsvda", random_state=SEED, max_iter=500)
        with warnings.catch_warnings():
            # Stopping at max_iter still gives usable topics; the warning says only that.
            warnings.simplefilter("ignore", ConvergenceWarning)
            weights = model.fit_transform(matrix)
        components = model.components_
    totals = weights.sum(axis=1)
    found: list[tuple[int, int, Suggestion]] = []
    for topic in range(wanted):
        row = components[topic]
        order = np.argsort(-row, kind="stable")[:TOP_WORDS]
        top = tuple(str(words[j]) for j in order if row[j] > 0)
        column = weights[:, topic]
        share = np.divide(column, totals, out=np.zeros_like(column), where=totals > 0)
        covered = np.flatnonzero((share >= SHARE) & (column > 0))
        covered = covered[np.argsort(-column[covered], kind="stable")]
        if top and len(covered):
            suggestion = Suggestion(top, tuple(texts[int(i)][0] for i in covered))
            found.append((-len(covered), topic, suggestion))
    found.sort(key=lambda f: (f[0], f[1]))
    return Suggestions(len(texts), enough=True, topics=tuple(s for _, _, s in found))

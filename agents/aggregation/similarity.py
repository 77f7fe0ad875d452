"""Embedders for semantic dedup: text → unit vectors whose dot product is the cosine similarity.

Two kinds behind one protocol:

* ``TfidfEmbedder`` (always available, offline, deterministic): TF-IDF over character n-grams,
  fitted on the run's own findings, so "user_id" in two differently worded findings still
  counts as shared wording.
* ``OpenAIEmbedder``: an OpenAI-compatible ``/v1/embeddings`` endpoint, used when the run's
  provider is configured with an ``embedding_model``.

``embedder_for`` picks one for a run and says which, and ``embed_or_fallback`` falls back to
TF-IDF when the remote call fails, so dedup never blocks a report.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import openai
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from agents.providers.catalog import get_provider
from agents.providers.registry import MissingApiKey

# TF-IDF rows stay sparse: 10,000 findings by 50,000 n-grams would not fit in memory dense.
type Vectors = np.ndarray | sparse.csr_matrix
# Remote embeddings are requested in batches this big (OpenAI accepts up to 2,048 inputs).
_BATCH = 256


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> Vectors:
        """One L2-normalised row per text, in order (dense or sparse)."""
        ...


class TfidfEmbedder:
    """Character n-grams inside word boundaries (3 to 5): robust to plurals, snake_case names and
    word order; ``sublinear_tf`` keeps one repeated word from dominating a long detail."""

    name = "tfidf-char"

    def embed(self, texts: list[str]) -> Vectors:
        if not any(t.strip() for t in texts):
            return np.zeros((len(texts), 1))
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True
        )
        return sparse.csr_matrix(normalize(vectorizer.fit_transform(texts)))


class OpenAIEmbedder:
    """``client.embeddings.create`` against the provider's base URL, with its key read now."""

    def __init__(self, config: Any, model: str, timeout: float = 30.0) -> None:
        self.config = config
        self.model = model
        self.timeout = timeout
        self.name = f"{config.name}:{model}"

    def embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 1))
        client = openai.OpenAI(
            api_key=self.config.api_key(),
            base_url=self.config.resolved_base_url(),
            max_retries=0,
            timeout=self.timeout,
            default_headers=self.config.headers or None,
        )
        rows: list[list[float]] = []
        for start in range(0, len(texts), _BATCH):
            # An empty string is refused by the API; a single space embeds as "nothing said".
            batch = [t or " " for t in texts[start : start + _BATCH]]
            response = client.embeddings.create(model=self.model, input=batch)
            ordered = sorted(response.data, key=lambda item: item.index)
            rows.extend(list(item.embedding) for item in ordered)
        return np.asarray(normalize(np.asarray(rows, dtype=float)))


# The run options the embedder reads (besides the chain's TUNABLES, ``stages.py``).
EMBEDDER = "embedder"
EMBEDDING_MODEL = "embedding_model"
EMBEDDER_OPTIONS = (EMBEDDER, EMBEDDING_MODEL)


def embedder_for(provider: str, options: dict[str, Any]) -> Embedder:
    """The run's embedder: ``options["embedder"] == "tfidf"`` forces the offline one; otherwise
    an OpenAI-compatible provider with an ``embedding_model`` (config, or the option
    ``embedding_model``) gets remote embeddings."""
    if options.get(EMBEDDER) == "tfidf" or provider == "heuristic":
        return TfidfEmbedder()
    try:
        config = getattr(get_provider(provider), "config", None)
    except Exception:  # an unknown or broken provider must not stop the report
        config = None
    if config is None or config.kind != "openai":
        return TfidfEmbedder()
    model = str(options.get(EMBEDDING_MODEL) or config.embedding_model or "")
    if not model:
        return TfidfEmbedder()
    return OpenAIEmbedder(config, model, timeout=config.timeout())


def embed_or_fallback(embedder: Embedder, texts: list[str]) -> tuple[Vectors, str, str]:
    """(vectors, embedder name used, note). A failed remote call falls back to TF-IDF and the
    note says why, so the report tells the reviewer which similarity it used."""
    try:
        return embedder.embed(texts), embedder.name, ""
    except (openai.OpenAIError, MissingApiKey, ValueError) as exc:
        fallback = TfidfEmbedder()
        reason = type(exc).__name__
        note = f"Embeddings from {embedder.name} failed ({reason}); dedup used TF-IDF instead."
        return fallback.embed(texts), fallback.name, note

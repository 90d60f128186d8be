"""Static token vectors distilled from a sentence encoder: a prompt's embedding in a millisecond.

The full encoder (MiniLM: 6 transformer layers) costs ~9 ms for a 20-token prompt and ~50 ms for
130 tokens on one core here, which is most of a routing decision. Distillation in the manner of
Model2Vec: every vocabulary token is run through the encoder once, alone (``[CLS] tok [SEP]``),
and its mean-pooled output kept; a text's vector is then the weighted mean of its tokens'
vectors, minus the vocabulary's mean vector (the direction every text shares, which otherwise
pushes all cosine similarities towards 1), normalised. The weights are Model2Vec's SIF weights
under a Zipf law over the vocabulary order (BERT's WordPiece vocabulary is roughly ordered by
frequency): w = a / (a + p(token)), so "the", "how" and "what" count for little. Word order
and context are lost; for matching a prompt against a few skill descriptions and examples that
costs little (see benchmarks/README.md), and any prompt length takes about the time of
tokenizing it.

The table (vocabulary x dim, float16) is built once per encoder file (~25 s on two cores for
MiniLM's 30,522 tokens) and cached under ``~/.cache/modelfarm/static-embeddings``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

_DISTILL_BATCH = 1024
_SIF_A = 1e-4  # Model2Vec's default; on our code-vs-other skill checks 1e-3 and 1e-2 did worse


class StaticEmbedder:
    def __init__(self, table: np.ndarray, tokenizer: Tokenizer, special_ids: set[int]) -> None:
        self._table = table.astype(np.float32)
        self._mean = self._table.mean(axis=0)
        vocab = len(self._table)
        p = 1.0 / (np.arange(1, vocab + 1) * (np.log(vocab) + 0.5772))  # Zipf by vocabulary order
        self._weight = (_SIF_A / (_SIF_A + p)).astype(np.float32)
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(tokenizer.to_str())  # a copy without the encoder's 256-token cut
        self._tok.no_truncation()
        self._tok.no_padding()
        self._special = np.array(sorted(special_ids), dtype=np.int64)

    @property
    def dim(self) -> int:
        return int(self._table.shape[1])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors, shape (len(texts), dim). Texts are not truncated."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, encoding in enumerate(self._tok.encode_batch(texts, add_special_tokens=False)):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            ids = ids[~np.isin(ids, self._special)]
            if not len(ids):
                continue  # nothing to say about an empty text: the zero vector matches nothing
            w = self._weight[ids]
            vec = w @ self._table[ids] / float(w.sum()) - self._mean
            out[row] = vec / max(float(np.linalg.norm(vec)), 1e-12)
        return out

    @classmethod
    def load_or_distill(
        cls, session: ort.InferenceSession, tokenizer: Tokenizer, model_file: Path, cache_dir: Path
    ) -> StaticEmbedder:
        """The cached table for this encoder file, distilling it first if there is none."""
        st = model_file.stat()
        key = hashlib.sha256(f"{model_file.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
        path = cache_dir / f"{model_file.stem}-{key}.npy"
        special = _special_ids(tokenizer)
        if path.exists():
            try:
                return cls(np.load(path, allow_pickle=False), tokenizer, special)
            except (OSError, ValueError) as exc:  # a torn or foreign file: build it again
                log.warning("static embeddings %s unreadable (%s): rebuilding", path, exc)
        log.warning(
            "distilling static token vectors from %s (once per model file, ~25 s on two cores)", model_file.name
        )
        table = distill(session, tokenizer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, table.astype(np.float16), allow_pickle=False)
        os.replace(tmp, path)
        return cls(table, tokenizer, special)


def distill(session: ort.InferenceSession, tokenizer: Tokenizer) -> np.ndarray:
    """Each vocabulary token's mean-pooled encoder output: shape (vocab, dim), float32."""
    cls_id, sep_id = _token(tokenizer, "[CLS]", "<s>"), _token(tokenizer, "[SEP]", "</s>")
    inputs = {i.name for i in session.get_inputs()}
    vocab = tokenizer.get_vocab_size()
    table: np.ndarray | None = None
    for start in range(0, vocab, _DISTILL_BATCH):
        ids = np.arange(start, min(vocab, start + _DISTILL_BATCH), dtype=np.int64)
        x = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        feeds: dict[str, Any] = {"input_ids": x, "attention_mask": np.ones_like(x)}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = np.zeros_like(x)
        hidden = session.run(None, feeds)[0]  # (B, 3, D)
        if table is None:
            table = np.zeros((vocab, hidden.shape[-1]), dtype=np.float32)
        table[ids] = hidden.mean(axis=1)
    assert table is not None
    return table


def _token(tokenizer: Tokenizer, *names: str) -> int:
    for name in names:
        tid = tokenizer.token_to_id(name)
        if tid is not None:
            return int(tid)
    return 0


def _special_ids(tokenizer: Tokenizer) -> set[int]:
    names = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>")
    return {int(t) for t in (tokenizer.token_to_id(n) for n in names) if t is not None}

"""In-process llama.cpp backend (llama-cpp-python), for local GGUF models.

We drive the token loop ourselves (`Llama.generate`) instead of `create_chat_completion`:
it lets a closed stream stop generation at the next token, and gives token log-probabilities
from the last logits row without `logits_all=True` (which would hold n_ctx x n_vocab floats,
2.4 GB for a Qwen model with a 4k context).

llama.cpp is not thread-safe per model and blocks while it computes, so each generation runs
in a worker thread, one at a time per model, and hands chunks to the event loop.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelfarm.errors import BackendUnavailableError, ContextLengthError, InvalidRequestError
from modelfarm.models.base import Backend
from modelfarm.types import ChatChunk, ChatRequest, Message, TokenLogprob, Usage

_END = object()


class LlamaCppBackend(Backend):
    """A GGUF model loaded in this process."""

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        context_length: int,
        threads: int,
        chat_format: str | None = None,
    ) -> None:
        import llama_cpp  # heavy import: only when a local model is loaded
        from llama_cpp import llama_chat_format

        self.name = name
        self.cpu_threads = threads
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=context_length,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendUnavailableError(f"model {name!r}: llama.cpp could not load {path}: {exc}") from exc
        self.memory_bytes = path.stat().st_size
        self._n_ctx = self._llm.n_ctx()
        self._lock = threading.Lock()
        self._vocab = self._llm._model.vocab
        self._is_eog: Callable[[Any, int], bool] = llama_cpp.llama_vocab_is_eog
        self._get_logits = llama_cpp.llama_get_logits_ith
        self._grammar_cls = llama_cpp.LlamaGrammar
        template = self._llm.metadata.get("tokenizer.chat_template")
        if chat_format:
            fn = getattr(llama_chat_format, "format_" + chat_format.replace("-", "_"), None)
            if fn is None:
                raise BackendUnavailableError(
                    f"model {name!r}: unknown chat_format {chat_format!r}; remove it to use the GGUF's own template"
                )
            self._formatter: Callable[..., Any] = fn
        elif template:
            eos, bos = self._llm.token_eos(), self._llm.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=self._llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=self._llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        else:
            self._formatter = llama_chat_format.format_chatml

    # -- prompt ---------------------------------------------------------------------------

    def prompt_tokens(self, messages: list[Message]) -> tuple[list[int], list[str]]:
        """The prompt as tokens (chat template applied), and the template's stop strings."""
        result = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        stops = result.stop or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        tokens = self._llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        return tokens, stops

    def _grammar(self, response_format: dict[str, Any] | None) -> Any:
        if not response_format or response_format.get("type") in (None, "text"):
            return None
        kind = response_format.get("type")
        if kind == "json_object":
            schema: Any = response_format.get("schema") or {"type": "object"}
        elif kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise InvalidRequestError(
                    "response_format.json_schema.schema must be a JSON schema object",
                    param="response_format",
                )
        else:
            raise InvalidRequestError(
                f"response_format type {kind!r} is not supported; use 'text', 'json_object' or 'json_schema'",
                param="response_format",
            )
        try:
            return self._grammar_cls.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # llama.cpp's converter raises bare exceptions on bad schemas
            raise InvalidRequestError(f"cannot use this JSON schema: {exc}", param="response_format") from exc

    # -- generation (worker thread) -------------------------------------------------------

    def _generate(self, request: ChatRequest, emit: Callable[[object], None], cancel: threading.Event) -> None:
        try:
            with self._lock:
                self._generate_locked(request, emit, cancel)
        except Exception as exc:  # hand every failure to the event loop, never lose it in a thread
            emit(exc)
        finally:
            emit(_END)

    def _generate_locked(self, request: ChatRequest, emit: Callable[[object], None], cancel: threading.Event) -> None:
        llm = self._llm
        tokens, template_stops = self.prompt_tokens(request.messages)
        n_prompt = len(tokens)
        if n_prompt >= self._n_ctx:
            raise ContextLengthError(
                f"the prompt is {n_prompt} tokens, {n_prompt - self._n_ctx + 1} more than model "
                f"{self.name!r} can take with room to answer (context length {self._n_ctx}); "
                "shorten the messages",
                param="messages",
            )
        room = self._n_ctx - n_prompt
        max_new = min(request.max_tokens, room) if request.max_tokens else room
        stops = [s for s in (*request.stop, *template_stops) if s]
        grammar = self._grammar(request.response_format)
        if request.seed is not None:
            # Reusing the KV cache of a shared prompt prefix re-evaluates the tail in a smaller
            # batch, whose float results differ slightly and can flip near-tied tokens. A seed
            # asks for a reproducible answer, so evaluate the whole prompt afresh.
            llm.reset()
            llm.set_seed(request.seed)
        else:
            llm.set_seed(random.randrange(2**31))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        held = ""  # text kept back because it may be the start of a stop string
        generated: list[int] = []
        pending_lp: list[TokenLogprob] = []
        finish = "length"
        want_lp = request.logprobs
        for token in llm.generate(
            tokens,
            temp=0.2 if request.temperature is None else request.temperature,
            top_p=0.95 if request.top_p is None else request.top_p,
            repeat_penalty=1.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            grammar=grammar,
        ):
            if cancel.is_set():
                finish = "cancelled"
                break
            if self._is_eog(self._vocab, token):
                finish = "stop"
                break
            piece = llm.detokenize([token])
            generated.append(token)
            text = decoder.decode(piece)
            if want_lp:
                pending_lp.append(self._logprob(token, piece, request.top_logprobs))
            held += text
            cut = _first_stop(held, stops)
            if cut is not None:
                emit(ChatChunk(text=held[:cut], logprobs=pending_lp))
                held, pending_lp, finish = "", [], "stop"
                break
            keep = _partial_stop(held, stops)
            if len(held) > keep:
                emit(ChatChunk(text=held[: len(held) - keep], logprobs=pending_lp))
                held, pending_lp = held[len(held) - keep :], []
            if len(generated) >= max_new:
                break
        if finish == "cancelled":
            return
        usage = Usage(prompt_tokens=n_prompt, completion_tokens=len(generated))
        emit(
            ChatChunk(
                text=held + decoder.decode(b"", final=True),
                finish_reason=finish,
                logprobs=pending_lp,
                usage=usage,
            )
        )

    def _logprob(self, token: int, piece: bytes, top: int) -> TokenLogprob:
        n_vocab = self._llm.n_vocab()
        logits = np.ctypeslib.as_array(self._get_logits(self._llm._ctx.ctx, -1), shape=(n_vocab,))
        shifted = logits - logits.max()
        logp = shifted - np.log(np.exp(shifted).sum())  # (n_vocab,) log-softmax
        alts: tuple[tuple[str, float], ...] = ()
        if top:
            best = np.argpartition(-logp, top)[:top]
            best = best[np.argsort(-logp[best])]
            alts = tuple((self._llm.detokenize([int(t)]).decode("utf-8", "replace"), float(logp[t])) for t in best)
        return TokenLogprob(piece.decode("utf-8", "replace"), float(logp[token]), alts)

    # -- async surface --------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = loop.run_in_executor(None, self._generate, request, emit, cancel)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, ChatChunk)
                yield item
        finally:
            cancel.set()  # the client went away, or we are done: stop at the next token
            await asyncio.wait([worker])

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                self._llm.close()

        await asyncio.to_thread(close)


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _partial_stop(text: str, stops: list[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best

"""Documents at the boundary of the pipeline: checked one by one, and one bad document fails alone.

What `Relik.__call__` / `Relik.stream` accept as a document (anything else is a `DocumentTypeError`):

- a `str` (valid Unicode: a lone surrogate such as "\\ud800", which no UTF-8 / UTF-16 encoder accepts, is a
  `DocumentError` naming its character offset);
- a list (or tuple) of words, each such a `str`;
- a record `{"text": <str or list of words>, "id": <str | int>}` ("id" optional; any other key is an error, so a
  typo such as "txt" is not silently dropped). The output's `id` is the record's id (default: the position).

`bytes` are refused (decode them first: which encoding is the caller's knowledge, not ours); so are None, numbers
and dicts without "text". `relik(42)` / `relik(b"...")` / `relik(None)` raise a `DocumentTypeError` (a
`TypeError`) at the call; `stream` checks each document lazily, when the pipeline reaches it.

Errors (`on_error` of `stream` and `__call__`):

- "raise" (default): the outputs of the documents before the bad one are yielded first, then the
  `DocumentError` is raised at the bad document's position (nothing after it is read);
- "record": the bad document yields a `RelikOutput` with `error` set (empty text/spans) and the stream goes on;
- "skip": the bad document yields nothing and the stream goes on (outputs keep their input position as `id`).

The same applies when the model itself fails: the documents being processed together (one chunk of windows) are
re-run in halves (`isolate`) until the failing document is alone, so every other one is annotated as if alone and
only the failing one gets an `AnnotationError` (a `DocumentError`: "annotation failed: ...", chained to the
original exception). A reader (the CLI) may put a `DocumentError` in the input in place of a document it could not
read: it is reported at that position like any other bad document.

Why a decorator: `Relik.stream` batches windows across documents, so the valid documents before a bad one are still
inside the pipeline when the bad one is read; the hook ends the pipeline's input there (it flushes them), and maps
its outputs back to input positions, without changes to the pipeline's own loop.
"""

from __future__ import annotations

import collections
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from relik_jax.inference.outputs import RelikOutput

__all__ = ["ON_ERROR", "AnnotationError", "DocumentError", "DocumentTypeError", "accepts_documents", "check_text",
           "error_output", "isolate", "isolates_documents", "validate_document"]

ON_ERROR = ("raise", "record", "skip")
RECORD_KEYS = ("text", "id")
_SURROGATE = re.compile("[\ud800-\udfff]")
T = TypeVar("T")
R = TypeVar("R")


class DocumentError(ValueError):
    """One document could not be annotated: `index` (its position in the input), `id` (its id, when it has one)
    and `reason` (what is wrong and what was expected)."""

    def __init__(self, index: int | None, reason: str, id: Any = None) -> None:  # noqa: A002 - the output's name
        self.index, self.id, self.reason = index, id, reason
        where = "document" if index is None else f"document {index}"
        if id is not None and id != index:
            where += f" (id {id!r})"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple:  # picklable (multiprocessing, concurrent.futures)
        return type(self), (self.index, self.reason, self.id)


class DocumentTypeError(DocumentError, TypeError):
    """A document of the wrong type (bytes, None, a number, a dict without "text", ...)."""


class AnnotationError(DocumentError):
    """A valid document on which the model failed (the original exception is its `__cause__`): the caller's input
    is fine, so a service answers it as a server error (5xx), unlike other `DocumentError`s (4xx)."""


def _expected(got: object) -> str:
    name = type(got).__name__
    hint = "; decode it first, e.g. data.decode('utf-8')" if isinstance(got, (bytes, bytearray, memoryview)) else ""
    return (f'expected a str, a list of words or a {{"text": ..., "id": ...}} record, got {name}'
            f"{'' if got is None else f' {_short(got)}'}{hint}")


def _short(value: object, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def check_text(text: str, index: int | None = None, id: Any = None, what: str = "text") -> str:  # noqa: A002
    """`text` if it is a str of valid Unicode; else a `DocumentError` naming the document and the offending
    character offset (lone surrogates come from bad `\\ud800` escapes in JSON / Turtle, or `surrogateescape`)."""
    if not isinstance(text, str):
        raise DocumentTypeError(index, f"{what}: {_expected(text)}", id)
    if not text.isascii() and (bad := _SURROGATE.search(text)) is not None:
        raise DocumentError(index, f"{what} holds a lone surrogate U+{ord(bad.group()):04X} at character offset "
                                   f"{bad.start()} (expected valid Unicode text)", id)
    return text


def _check_words(words: Sequence[Any], index: int, id: Any) -> list[str]:  # noqa: A002
    for k, word in enumerate(words):
        check_text(word, index, id, what=f"word {k}")
    return list(words)


def validate_document(item: Any, index: int) -> tuple[str | list[str], Any]:
    """(text or word list, id) of one input document, or a `DocumentError` saying what is wrong with it."""
    if isinstance(item, DocumentError):  # a reader's placeholder for a document it could not read
        raise item
    if isinstance(item, str):
        return check_text(item, index), index
    if isinstance(item, (list, tuple)):
        return _check_words(item, index, index), index
    if isinstance(item, dict):
        doc_id = item.get("id", index)
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
            raise DocumentTypeError(index, f'"id" must be a str or an int, got {type(doc_id).__name__}')
        if isinstance(doc_id, str):
            check_text(doc_id, index, what='"id"')
        unknown = sorted(map(str, set(item) - set(RECORD_KEYS)))
        if unknown:
            raise DocumentError(index, f"unknown key(s) {', '.join(map(repr, unknown))} (a record has "
                                       f'"text" and optionally "id")', doc_id)
        if "text" not in item:
            raise DocumentTypeError(index, 'a record needs a "text" field (a str or a list of words)', doc_id)
        text = item["text"]
        if isinstance(text, (list, tuple)):
            return _check_words(text, index, doc_id), doc_id
        return check_text(text, index, doc_id, what='"text"'), doc_id
    raise DocumentTypeError(index, _expected(item))


def error_output(error: DocumentError) -> RelikOutput:
    """What `on_error="record"` yields for a failed document: no text, no annotations, `error` set."""
    return RelikOutput(text="", tokens=[], id=error.id if error.id is not None else error.index, error=str(error))


def isolate(run: Callable[[list[T]], Sequence[R]], items: list[T]) -> Iterator[R | Exception]:
    """The results of `run(items)`, in order; when the call raises, `run` on each half, recursively: every item
    gets its result as if run alone (or in a group that did not fail), and only an item that fails alone gets the
    exception (in its place). A call returning the wrong number of results counts as failed. Lazy, so a caller
    that stops at the first failure runs only O(log n) extra calls; all failures cost O(k log n)."""
    if not items:
        return
    try:
        results = list(run(items))
        if len(results) != len(items):
            raise RuntimeError(f"expected {len(items)} results, got {len(results)}")
    except Exception as err:
        if len(items) == 1:
            yield err
            return
        mid = len(items) // 2
        yield from isolate(run, items[:mid])
        yield from isolate(run, items[mid:])
        return
    yield from results


# --------------------------------------------------------------------------------------------------------------
# The hooks on Relik.__call__ and Relik.stream
# --------------------------------------------------------------------------------------------------------------


def accepts_documents(call: Callable[..., Any]) -> Callable[..., Any]:
    """`Relik.__call__`: one document (a str or a record) -> one output; a collection -> a list. bytes, None and
    non-iterables are refused here with a `DocumentTypeError`, before anything runs."""

    @functools.wraps(call)
    def wrapper(self: Any, text: Any, *args: Any, **kwargs: Any) -> Any:
        single = isinstance(text, (str, dict))
        if isinstance(text, (bytes, bytearray, memoryview)) or text is None or not (
                single or isinstance(text, Iterable)):
            raise DocumentTypeError(0, _expected(text))
        outputs = call(self, [text] if single else list(text), *args, **kwargs)
        if single:  # (None only with on_error="skip" and a bad document)
            return outputs[0] if outputs else None
        return outputs

    return wrapper


@dataclass(eq=False)
class _Entry:
    index: int
    id: Any
    doc: Any = None  # the document, kept while it is being annotated (to re-run it alone if its batch fails)
    error: DocumentError | None = None


def isolates_documents(stream: Callable[..., Iterator[RelikOutput]]) -> Callable[..., Iterator[RelikOutput]]:
    """`Relik.stream` with lazy per-document checks and per-document failures (module docstring), adding the
    keyword `on_error="raise" | "record" | "skip"`."""

    @functools.wraps(stream)
    def wrapper(self: Any, texts: Any, *args: Any, on_error: str = "raise", **kwargs: Any) -> Iterator[RelikOutput]:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if isinstance(texts, (str, bytes, bytearray, dict)) or not isinstance(texts, Iterable):
            raise DocumentTypeError(None, f"stream takes an iterable of documents (wrap one document in a list), "
                                          f"got {type(texts).__name__}")
        return _IsolatedStream(stream, self, texts, on_error, args, kwargs).run()

    sig = inspect.signature(stream)
    extra = inspect.Parameter("on_error", inspect.Parameter.KEYWORD_ONLY, default="raise", annotation="str")
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])  # help() shows on_error
    return wrapper


class _TaskView(Sequence):
    """One task's per-document candidates, read through from the growing list of fed documents' candidate dicts."""

    def __init__(self, cands: list[dict[str, Any]], task: str) -> None:
        self.cands, self.task = cands, task

    def __len__(self) -> int:
        return len(self.cands)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [c[self.task] for c in self.cands[index]]
        return self.cands[index][self.task]


class _IsolatedStream:
    """Feeds the pipeline's stream valid documents only and maps its outputs back to input positions; when the
    pipeline raises, re-runs the documents it was holding (`isolate`) and goes on with a fresh stream."""

    def __init__(self, stream: Callable[..., Iterator[RelikOutput]], relik: Any, texts: Iterable[Any],
                 on_error: str, args: tuple, kwargs: dict) -> None:
        self.stream, self.relik, self.on_error, self.args = stream, relik, on_error, args
        self.kwargs = dict(kwargs)
        self.candidates = self.kwargs.pop("candidates", None)
        self.source = enumerate(texts)
        self.pending: collections.deque[_Entry] = collections.deque()  # read, not yet yielded (in input order)
        self.stop: DocumentError | None = None  # on_error="raise": raised once the documents before it are out
        self.source_error: Exception | None = None

    # candidates: the pipeline reads them by its own document counter, which restarts with every fresh stream and
    # skips nothing, so each fed document's candidates are passed per document, in feeding order
    def _candidates_of(self, index: int) -> Any:
        def one(cands: Any) -> Any:
            if cands and isinstance(cands[0], (list, tuple)):  # one list per document (the pipeline's convention)
                if index >= len(cands):
                    raise DocumentError(index, f"candidates given for {len(cands)} documents, not for this one")
                return list(cands[index])
            return cands  # the same candidates for every document

        if isinstance(self.candidates, dict):
            return {task: one(c) for task, c in self.candidates.items()}
        return one(self.candidates)

    def _per_document(self, cands: list[Any]) -> Any:
        """The candidates of the fed documents, one list per document. `cands` grows while the pipeline reads
        `_feed`, so the per-task views read it lazily (a copy made now would be empty)."""
        if self.candidates is None:
            return None
        if isinstance(self.candidates, dict):
            return {task: _TaskView(cands, task) for task in self.candidates}
        return cands

    def _feed(self, fed: list[Any]) -> Iterator[Any]:
        """The pipeline's input: valid documents only; a bad one is queued as an error (or ends the input)."""
        while self.stop is None:
            try:
                index, item = next(self.source)
            except StopIteration:
                return
            except Exception as err:  # the caller's iterator failed: flush what was read, then re-raise
                self.source_error = err
                return
            try:
                doc, doc_id = validate_document(item, index)
                cands = None if self.candidates is None else self._candidates_of(index)
            except DocumentError as err:
                if self.on_error == "raise":
                    self.stop = err
                    return
                self.pending.append(_Entry(index, err.id if err.id is not None else index, error=err))
                continue
            self.pending.append(_Entry(index, doc_id, doc))
            fed.append(cands)
            yield doc

    def _run_alone(self, entries: list[_Entry]) -> list[RelikOutput]:
        """The pipeline on just these documents, with their own candidates."""
        cands = self._per_document([None if self.candidates is None else self._candidates_of(e.index)
                                    for e in entries])
        return list(self.stream(self.relik, [e.doc for e in entries], *self.args, candidates=cands, **self.kwargs))

    def _failed(self, err: DocumentError) -> Iterator[RelikOutput]:
        if self.on_error == "raise":
            raise err
        if self.on_error == "record":
            yield error_output(err)

    def _finish(self, entry: _Entry, out: RelikOutput | Exception) -> Iterator[RelikOutput]:
        if isinstance(out, Exception):
            if isinstance(out, DocumentError):
                err = type(out)(entry.index, out.reason, entry.id)
            else:
                err = AnnotationError(entry.index, f"annotation failed: {type(out).__name__}: {out}", entry.id)
            err.__cause__ = out
            yield from self._failed(err)
            return
        out.id = entry.id
        for w in out.windows or ():
            w.doc_id = entry.id
        yield out

    def _drain_errors(self) -> Iterator[RelikOutput]:
        while self.pending and self.pending[0].error is not None:
            yield from self._failed(self.pending.popleft().error)

    def run(self) -> Iterator[RelikOutput]:
        while True:
            fed: list[Any] = []
            inner = self.stream(self.relik, self._feed(fed), *self.args, candidates=self._per_document(fed),
                                **self.kwargs)
            failure: Exception | None = None
            while True:
                try:
                    out = next(inner)
                except StopIteration:
                    break
                except Exception as err:  # the model failed on one of the documents it holds
                    failure = err
                    break
                yield from self._drain_errors()
                yield from self._finish(self.pending.popleft(), out)
            if failure is None:
                break  # the pipeline read the input to its end (or to the first bad document)
            held = [e for e in self.pending if e.error is None]
            if not held:
                raise failure  # not a document's fault: nothing was being annotated
            results = isolate(self._run_alone, held)
            while self.pending:
                entry = self.pending.popleft()
                if entry.error is not None:
                    yield from self._failed(entry.error)
                else:
                    yield from self._finish(entry, next(results))
            # and a fresh pipeline stream over the rest of the input
        yield from self._drain_errors()
        if self.pending:
            raise RuntimeError(f"the pipeline yielded no output for document {self.pending[0].index}")
        if self.source_error is not None:
            raise self.source_error
        if self.stop is not None:
            raise self.stop

"""Generated ids turned into text as they come, for streaming: :class:`TextPieces`.

The rule. After each new id the ids so far are decoded whole (special tokens skipped, as
:func:`~contlearn.kinds.generation.texts_of` does) and the new piece is what that text adds
past the text already sent. Held back until more text follows: leading whitespace (the answer
is stripped), trailing whitespace, and a trailing U+FFFD (a byte-level tokenizer's character
whose bytes span several ids, decoded before its last byte came): so a piece never splits a
multi-byte character. When decoding more ids rewrites text already sent (a tokenizer's clean-up
rule), nothing more is sent until the text extends it again. :meth:`TextPieces.finish` sends
what was held (the stripped whole text's rest), and :attr:`TextPieces.text` is every piece
joined: the streamed and the non-streamed answers are that one text.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"  # what decoding shows for an incomplete UTF-8 sequence


class TextPieces:
    """One answer's text, piece by piece, from its generated ids."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""  # every piece sent so far, joined

    def add(self, token: int) -> str:
        """The piece ``token`` completes ("" while text is held back)."""
        self.ids.append(token)
        ready = self._decoded().lstrip().rstrip().rstrip(REPLACEMENT).rstrip()
        return self._send(ready)

    def finish(self) -> str:
        """The last piece: the rest of the whole text (stripped), held back until now."""
        return self._send(self._decoded().strip())

    def _send(self, ready: str) -> str:
        if len(ready) <= len(self.text) or not ready.startswith(self.text):
            return ""
        piece, self.text = ready[len(self.text) :], ready
        return piece

    def _decoded(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

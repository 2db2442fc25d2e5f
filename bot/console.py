"""Where the CLI and the demo write, and how they ask a person: replaceable in tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO


class Console:
    """Where the CLI writes and how it asks; replaceable in tests and the demo."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        ask: Callable[[str], str] | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._ask = ask or input

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def warn(self, text: str) -> None:
        print(text, file=self.err)

    def ask(self, prompt: str) -> str:
        """One line from the person; EOFError when there is none (end of input)."""
        return self._ask(prompt)

    def confirm(self, question: str) -> bool:
        try:
            answer = self._ask(f"{question} [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

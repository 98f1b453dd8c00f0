"""The README's shell examples, run as a user would paste them: each `curl` command of a
section, with `localhost:8000` pointed at a test server, placeholders such as `<run id>`
filled from earlier answers, and external URLs pointed at a local peer."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
CURL_TIMEOUT_S = 60


def section(title: str) -> str:
    """The text of the README section headed `## title` (down to the next `## `)."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def commands(text: str) -> list[str]:
    """The shell commands of the ```sh blocks in `text`, comments and blank lines left out;
    a command goes on while a quote is open or a line ends with a backslash."""
    out: list[str] = []
    for block in _FENCE.findall(text):
        current: list[str] = []
        for line in block.splitlines():
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            current.append(line)
            joined = "\n".join(current)
            if _complete(joined):
                out.append(joined)  # a trailing `# …` is a comment to bash too
                current = []
        assert not current, f"unterminated command in the README: {current}"
    return out


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quote still open
        return False
    return True


@dataclass
class Session:
    """Runs README commands against `url`, remembering the ids they answered with."""

    url: str
    replace: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workflow_id: str | None = None
    run_ids: list[str] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)

    def run(self, command: str) -> Any:
        """Run one command (through bash); its stdout as JSON when it is JSON."""
        host = self.url.removeprefix("http://")
        command = command.replace("localhost:8000", host)
        for old, new in self.replace.items():
            command = command.replace(old, new)
        if self.workflow_id is not None:
            command = command.replace("<workflow id>", self.workflow_id)
        if self.run_ids:
            command = command.replace("<run id>", self.run_ids[-1])
        assert not re.search(r"<[a-z ]+ id>", command), f"a placeholder is unfilled: {command}"
        done = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=CURL_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", **self.env},
            check=False,
        )
        assert done.returncode == 0, f"{command}\nexit {done.returncode}: {done.stderr}"
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            answer = done.stdout
        self.answers.append(answer)
        self._remember(answer)
        return answer

    def run_all(self, text: str) -> list[Any]:
        """Run every command of `text` in order; fails on any error answer."""
        answers = []
        for command in commands(text):
            answer = self.run(command)
            assert not is_error(answer), (command, answer)
            answers.append(answer)
        return answers

    def _remember(self, answer: Any) -> None:
        if not isinstance(answer, dict) or "id" not in answer:
            return
        if "graph" in answer:
            self.workflow_id = answer["id"]
        elif "workflow_id" in answer and "status" in answer and answer["id"] not in self.run_ids:
            self.run_ids.append(answer["id"])


def is_error(answer: Any) -> bool:
    """Whether an answer is weft's error shape, `{"error": {"code", "message", …}}`."""
    return (
        isinstance(answer, dict)
        and isinstance(answer.get("error"), dict)
        and "code" in answer["error"]
        and "status" not in answer  # a run's own error is not an error answer
    )

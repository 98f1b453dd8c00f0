"""The build's one step that pyproject.toml cannot say: the wheel ships sql/ (the named
queries and migrations, kept at the top of the repository) as runner/sql, where
runner/store/queries.py looks first."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSql(build_py):
    """build_py, then sql/ copied into the built runner package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "runner" / "sql"
        shutil.copytree(Path(__file__).parent / "sql", target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithSql})

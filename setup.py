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
        # A build folder may be reused: a file removed from sql/ must not ship from it.
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(__file__).parent / "sql", target)


setup(cmdclass={"build_py": BuildWithSql})

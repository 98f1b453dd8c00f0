"""The secret key: checked with the settings, made by `weft up`, and cryptography loaded
only once a secret is encrypted or decrypted (it is ~6 MB of every process's memory)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from runner.secrets import kept_key
from runner.settings import Settings


def test_the_kept_key_is_a_fernet_key_made_once(tmp_path: Path) -> None:
    key = kept_key(tmp_path)
    box = Fernet(key.encode())
    assert box.decrypt(box.encrypt(b"x")) == b"x"
    assert kept_key(tmp_path) == key
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_settings_take_a_fernet_key_and_refuse_anything_else() -> None:
    key = Fernet.generate_key().decode()
    assert Settings(weft_secret_key=key).weft_secret_key == key
    assert Settings(weft_secret_key="").weft_secret_key == ""
    short = base64.urlsafe_b64encode(b"k" * 31).decode()
    for bad in ("not-a-key", short, key[:-2]):
        with pytest.raises(ValidationError, match="not a Fernet key"):
            Settings(weft_secret_key=bad)


def test_cryptography_is_not_loaded_by_a_weft_that_stores_no_secret() -> None:
    code = (
        "import sys, runner.system, web.app, web.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

"""The README's Python example runs as written; its commands exist."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_sdk_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README lost its SDK example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    printed_key = capsys.readouterr().out.split()[0]
    assert printed_key == namespace["arch"].key  # type: ignore[attr-defined]
    assert namespace["space"].size() == 9  # type: ignore[attr-defined]
    assert namespace["child"] != namespace["arch"]


def test_elastic_space_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    block = next(b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S)
                 if "ElasticSpace" in b)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    size, params = map(int, capsys.readouterr().out.split())
    assert size == 3 and params == 64 * 128 + 128 + 128 * 10 + 10


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make quickstart", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "\nquickstart: setup" in makefile and "\ntest: setup" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()

"""The documents stay true to the code: README.md and docs/*.md are checked against the checkout.

* the zoo table in docs/models.md is what ``docs/gen_zoo.py`` (``make docs``) makes from the
  registry, so a model added, removed or changed without regenerating the table fails here;
* every ``python -m MODULE`` the documents name runs (a module, or a package with ``__main__``),
  and every subcommand they name for the CLIs that have subcommands exists;
* every relative link, and every ``#anchor`` into a markdown file, resolves;
* every project path (``models/...``, ``tests/...``, ...) and dotted name (``export.parity``,
  ``models.create_model``, ...) they mention exists;
* every ``make TARGET`` they name is a Makefile target, and ``make test`` lists the slowest tests.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODELS_MD = ROOT / "docs" / "models.md"

# Paths the documents quote from other projects' repositories, not this one.
EXTERNAL_PATHS = {
    "models/model.py": "EdgeNeXt's official repository, where its published FPS figures are",
}
# CLIs whose first argument is a subcommand; a documented subcommand must be one of theirs.
SUBCOMMAND_CLIS = ("models", "profiling")
PROJECT_PATH = re.compile(r"(?<![\w/.~-])((?:models|reparam|export|profiling|tests|bench|docs|\.ci)/[\w./-]*)")
TEST_FILE = re.compile(r"`(test_\w+\.py)`")  # test files named without their tests/ folder
DOTTED_NAME = re.compile(r"(?<![\w/.-])((?:models|reparam|export|profiling)(?:\.[A-Za-z_]\w*)+)(?![\w/<])")
FILE_SUFFIXES = {"md", "py", "db", "json", "pt", "pth", "onnx", "tflite", "mlpackage", "png"}
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _load_doc_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen_zoo = _load_doc_script("gen_zoo")
gen_mutations = _load_doc_script("gen_mutations")
gen_tolerances = _load_doc_script("gen_tolerances")


def _texts() -> dict[Path, str]:
    return {path: path.read_text() for path in DOCUMENTS}


def _mentions(pattern: re.Pattern, *, outside_fences: bool = False) -> list[tuple[str, str]]:
    """(document, match) for every match in every document, each pair once, in reading order."""
    found: dict[tuple[str, str], None] = {}
    for path, text in _texts().items():
        if outside_fences:
            text = FENCE.sub("", text)
        for match in pattern.finditer(text):
            found[(str(path.relative_to(ROOT)), match.group(1))] = None
    return list(found)


# --- the zoo table ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo_rows():
    """Every registered model built and counted once for this module (a few seconds)."""
    return gen_zoo.zoo_rows()


def test_committed_zoo_table_is_what_the_registry_gives(zoo_rows, tmp_path, monkeypatch):
    copy = tmp_path / "models.md"
    shutil.copy(MODELS_MD, copy)
    monkeypatch.setattr(gen_zoo, "zoo_rows", lambda: zoo_rows)
    assert gen_zoo.main([str(copy)]) == 0
    committed, generated = MODELS_MD.read_text(), copy.read_text()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True),
                                        "docs/models.md (committed)", "docs/models.md (generated)"))
    assert generated == committed, f"the zoo table is stale; run `make docs`:\n{diff}"


def test_zoo_table_covers_every_registered_model_with_its_measured_figures(zoo_rows):
    import models

    table = MODELS_MD.read_text().split(gen_zoo.BEGIN)[1].split(gen_zoo.END)[0]
    names = [line.split("|")[1].strip() for line in table.strip().splitlines()[2:]]
    assert names == models.list_models()
    rows = {row.name: row for row in zoo_rows}
    # figures this suite measures elsewhere too (tests/test_models.py), here as the table prints them
    assert "| repvit_m1 | 5.485 | 0.82 | 224x224 | 78.5 |" in table
    assert rows["repvit_m1"].params == 5_485_248
    assert rows["mobilevit_xxs"].input_hw == (256, 256)
    assert rows["swin_tiny"].published_latency_ms is None and "| swin_tiny |" in table


def test_generator_rewrites_a_stale_table_and_check_reports_it(zoo_rows, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gen_zoo, "zoo_rows", lambda: zoo_rows)
    committed = MODELS_MD.read_text()
    stale = committed.replace("| repvit_m1 | 5.485 |", "| repvit_m1 | 9.999 |")
    assert stale != committed
    copy = tmp_path / "models.md"
    copy.write_text(stale)
    assert gen_zoo.main([str(copy), "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert copy.read_text() == stale  # --check changes nothing
    assert gen_zoo.main([str(copy)]) == 0
    assert copy.read_text() == committed
    assert gen_zoo.main([str(copy), "--check"]) == 0


@pytest.mark.fast
def test_committed_tolerance_table_is_the_gates(tmp_path, capsys):
    """docs/export.md shows export.parity.TOLERANCES as it is; a stale copy is reported and rewritten."""
    from export.parity import TOLERANCES

    export_md = ROOT / "docs" / "export.md"
    assert gen_tolerances.main([str(export_md), "--check"]) == 0, "the tolerance table is stale; run `make docs`"
    table = export_md.read_text().split(gen_tolerances.BEGIN)[1].split(gen_tolerances.END)[0]
    rows = [line for line in table.strip().splitlines()[2:]]
    assert len(rows) == len(TOLERANCES)
    fp16_row = next(row for row in rows if row.startswith("| tflite | fp16 |"))
    fp16 = fp16_row.split(" | ")
    assert fp16[2] == f"{TOLERANCES[('tflite', 'fp16')].rtol:g}" and fp16[6] == "gated too (rtol 1e-4)"
    assert next(row for row in rows if row.startswith("| onnx | fp32 |")).split(" | ")[6] == "-"
    copy = tmp_path / "export.md"
    copy.write_text(export_md.read_text().replace(fp16_row, fp16_row.replace(f"| {fp16[2]} |", "| 9.99 |")))
    assert gen_tolerances.main([str(copy), "--check"]) == 1 and "stale" in capsys.readouterr().err
    assert gen_tolerances.main([str(copy)]) == 0 and copy.read_text() == export_md.read_text()
    copy.write_text("no markers here\n")
    assert gen_tolerances.main([str(copy)]) == 2 and "tolerances:begin" in capsys.readouterr().err


def test_generator_refuses_a_file_without_markers_before_building_anything(tmp_path, monkeypatch, capsys):
    def must_not_build():
        raise AssertionError("models were built before the markers were checked")

    monkeypatch.setattr(gen_zoo, "zoo_rows", must_not_build)
    copy = tmp_path / "models.md"
    copy.write_text(MODELS_MD.read_text().replace(gen_zoo.END, ""))
    assert gen_zoo.main([str(copy)]) == 2
    error = capsys.readouterr().err
    assert gen_zoo.BEGIN in error and gen_zoo.END in error and "found 1 and 0" in error
    reversed_markers = tmp_path / "reversed.md"
    reversed_markers.write_text(f"{gen_zoo.END}\n{gen_zoo.BEGIN}\n")
    assert gen_zoo.main([str(reversed_markers)]) == 2
    assert "comes before" in capsys.readouterr().err


# --- commands ---------------------------------------------------------------------------------

PYTHON_M = _mentions(re.compile(r"python -m ([a-z_][\w.<>]*)"))  # upper case: a placeholder


@pytest.mark.fast
@pytest.mark.parametrize("document, module", [m for m in PYTHON_M if "<" not in m[1]],
                         ids=lambda value: str(value))
def test_every_python_m_module_exists(document, module):
    module = module.rstrip(".")
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{document} names `python -m {module}`, which is not an importable module"
    if spec.submodule_search_locations is not None:  # a package runs through its __main__
        assert importlib.util.find_spec(f"{module}.__main__") is not None, \
            f"{document} names `python -m {module}`, a package without __main__.py"


def _documented_subcommands() -> list[tuple[str, str]]:
    pattern = re.compile(r"python -m (" + "|".join(SUBCOMMAND_CLIS) + r") ([a-z][a-z_|]*)(?=[\s`]|$)")
    pairs = set()
    for text in _texts().values():
        for match in pattern.finditer(text):
            pairs.update((match.group(1), word) for word in match.group(2).split("|"))
    return sorted(pairs)


@pytest.mark.parametrize("cli, subcommand", _documented_subcommands())
def test_every_documented_subcommand_exists(cli, subcommand):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", cli, subcommand, "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (f"the documents name `python -m {cli} {subcommand}`, but "
                                    f"`python -m {cli} {subcommand} --help` exits {result.returncode}:\n"
                                    f"{result.stderr[-2000:]}")


def test_subcommand_scan_finds_every_cli_at_a_glance_entry():
    """The scan itself: the README's CLI block must yield every subcommand it lists."""
    documented = set(_documented_subcommands())
    for word in ("run", "show", "report", "compare", "android", "ios", "import"):
        assert ("profiling", word) in documented
    assert {("models", "list"), ("models", "info")} <= documented


MAKE_TARGET = re.compile(r"\bmake ([a-z][\w-]*)")


@pytest.mark.fast
def test_every_documented_make_target_exists_and_make_test_lists_the_slowest():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    documented = {target for _, target in _mentions(MAKE_TARGET)}
    assert {"demo", "test", "docs"} <= documented
    missing = sorted(documented - targets)
    assert not missing, f"the documents name make targets the Makefile lacks: {missing}"
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "--durations=15" in recipe


# --- links, paths and names -------------------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", path.read_text()).splitlines():
        match = re.match(r"^#{1,6} (.+)$", line)
        if match:
            slug = _slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_slug_follows_githubs_rule():
    assert _slug("`run`: measure on host runtimes") == "run-measure-on-host-runtimes"
    assert _slug("`show`, `report`, `compare`") == "show-report-compare"
    assert _slug("Reparameterization: training form against deploy form") == \
        "reparameterization-training-form-against-deploy-form"


@pytest.mark.fast
@pytest.mark.parametrize("document, link", _mentions(LINK, outside_fences=True), ids=lambda value: str(value))
def test_every_relative_link_resolves(document, link):
    if re.match(r"^[a-z]+:", link):  # https:, mailto:: not checked here (nothing is downloaded)
        return
    target, _, anchor = link.partition("#")
    path = (ROOT / document).parent / target if target else ROOT / document
    assert path.exists(), f"{document} links to {link}, and {path.relative_to(ROOT)} does not exist"
    if anchor and path.suffix == ".md":
        assert anchor in _anchors(path), f"{document} links to {link}: no heading with that anchor"


def test_link_scan_sees_the_readme_links():
    links = {link for document, link in _mentions(LINK, outside_fences=True) if document == "README.md"}
    assert {"docs/models.md", "docs/export.md", "docs/testing.md", "docs/benchmarks.md"} <= links


@pytest.mark.fast
@pytest.mark.parametrize("document, path", _mentions(PROJECT_PATH), ids=lambda value: str(value))
def test_every_project_path_exists(document, path):
    path = path.rstrip(".,")
    if path in EXTERNAL_PATHS:
        return
    assert (ROOT / path).exists(), f"{document} mentions {path}, which does not exist in this checkout"


@pytest.mark.fast
@pytest.mark.parametrize("document, name", _mentions(TEST_FILE), ids=lambda value: str(value))
def test_every_test_file_named_exists(document, name):
    assert (ROOT / "tests" / name).is_file(), f"{document} names {name}, which is not in tests/"


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        if cut == len(parts):
            return True
        value = importlib.import_module(module_name)
        for attribute in parts[cut:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


DOTTED = [(document, name) for document, name in _mentions(DOTTED_NAME)
          if name.rsplit(".", 1)[1] not in FILE_SUFFIXES]


@pytest.mark.parametrize("document, name", DOTTED, ids=lambda value: str(value))
def test_every_dotted_name_exists(document, name):
    assert _resolve(name), f"{document} mentions {name}, which is no module or attribute of this checkout"


def test_name_scans_see_known_mentions():
    """The scans themselves: a regex that matched nothing would pass every check above."""
    names = {name for _, name in DOTTED}
    assert {"models.create_model", "reparam.reparameterize", "export.parity", "profiling.store"} <= names
    assert not _resolve("export.no_such_module") and not _resolve("models.no_such_function")
    paths = {path for _, path in _mentions(PROJECT_PATH)}
    assert {"tests/device_sim/", "tests/zoo_xfails.py", "bench/bench_reparam.py", ".ci/run"} <= paths
    assert {"test_models.py", "test_docs.py"} <= {name for _, name in _mentions(TEST_FILE)}
    modules = {module for _, module in PYTHON_M}
    assert {"models", "reparam", "export", "export.onnx", "profiling"} <= modules


_FAKE_SUITE = """
import pytest

CASES = [("onnx-fp32-repvit_m0_6-drop identity branch (fold)", "raise"),
         ("onnx-fp32-convnext_atto-GELU exact -> tanh", "raise"),
         ("coreml-fp16-convnext_atto-GELU exact -> tanh", "xfail"),
         ("tflite-fp32-edgevit_xxs-forget eps in every BN fold", "return"),
         ("tflite-fp16-edgevit_xxs-zero the input", "skip"),
         ("tflite-fp16-repvit_m0_6-scale one folded BN by 1.001", "xpass")]


@pytest.mark.parametrize("outcome", [
    pytest.param(o, id=i, marks=[pytest.mark.xfail(strict=True, reason="below fp16's own error")] if o in ("xfail", "xpass") else [])
    for i, o in CASES])
def test_gate_catches_mutation(outcome):
    if outcome == "skip":
        pytest.skip("deselected by hand")
    if outcome in ("raise", "xfail"):
        with pytest.raises(ZeroDivisionError):  # a caught mutation: the gate raised
            1 / 0
    if outcome == "xfail":
        raise AssertionError("DID NOT RAISE ParityError")
    if outcome == "return":
        raise AssertionError("DID NOT RAISE ParityError: the gate passed it")
"""


@pytest.mark.fast
def test_mutation_tables_are_written_from_a_real_pytest_report(tmp_path):
    """docs/gen_mutations.py reads the JUnit report pytest itself writes (with xdist, as make test-mutations
    runs it): a pass is caught, a strict xfail survives with its reason, a failure is an unexpected survivor,
    a skip is not a result; mutation names with '-' and '->' in them keep their whole name."""
    (tmp_path / "test_fake.py").write_text(_FAKE_SUITE)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                          "--junitxml", str(tmp_path / "r.xml"), str(tmp_path / "test_fake.py")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout  # the unexpected survivor and the stale xfail fail the run
    readme, details = tmp_path / "README.md", tmp_path / "export.md"
    for path in (readme, details):
        path.write_text(f"before\n{gen_mutations.BEGIN}\nold table\n{gen_mutations.END}\nafter\n")
    assert gen_mutations.main([str(tmp_path / "r.xml"), "--readme", str(readme), "--details", str(details)]) == 0

    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old table" not in text
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in text.splitlines() if line.startswith("| ")}
    assert rows["drop identity branch (fold)"][:1] == ["1/1"]
    assert rows["GELU exact -> tanh"][0] == "1/1" and rows["GELU exact -> tanh"][3] == "**0/1**"
    assert rows["forget eps in every BN fold"][1] == "**0/1**"
    assert "5 cases over 3 representatives: 3 caught, 1 survive as strict xfails, 1 survive unexpectedly" in text
    assert rows["scale one folded BN by 1.001"][4] == "1/1 |"  # a strict xfail that passed: caught
    assert "zero the input" not in text  # skipped: not a result
    assert rows["drop identity branch (fold)"] == ["1/1", "n/a", "not run", "n/a", "n/a |"]  # no coreml fp32 case ran

    text = details.read_text()
    assert "- coreml fp16, convnext_atto, GELU exact -> tanh (survived): below fp16's own error" in text
    assert "- tflite fp32, edgevit_xxs, forget eps in every BN fold (missed): " in text


@pytest.mark.fast
def test_mutation_tables_need_a_report_with_mutation_cases(tmp_path, capsys):
    report = tmp_path / "r.xml"
    report.write_text('<testsuites><testsuite><testcase classname="t" name="test_other" /></testsuite></testsuites>')
    assert gen_mutations.main([str(report), "--readme", str(tmp_path / "no.md")]) == 1
    assert "no mutation case; nothing written" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="run `make test-mutations`"):
        gen_mutations.main([str(tmp_path / "missing.xml")])

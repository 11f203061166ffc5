"""Reading spec files: formats, encodings, syntax errors and line numbers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from orchestrator.errors import SpecError, SpecIssue
from orchestrator.spec import Spec, load_spec, parse_spec
from orchestrator.spec import _load as load_module

from ._helpers import DEFAULTS, entry, issues, one_issue, parse

TOML = entry('hostname = "web-01"')
YAML = """\
defaults:
  organization: acme
  data_center: uk-lon-01
  package: rock-1
vms:
  - hostname: web-01
"""
JSON = json.dumps(
    {
        "defaults": {"organization": "acme", "data_center": "uk-lon-01", "package": "rock-1"},
        "vms": [{"hostname": "web-01"}],
    }
)


@pytest.mark.parametrize(
    ("name", "text"),
    [("s.toml", TOML), ("s.yaml", YAML), ("s.yml", YAML), ("s.json", JSON), ("S.TOML", TOML)],
)
def test_load_spec_reads_every_format(tmp_path: Path, name: str, text: str) -> None:
    """The extension picks the format; the three formats describe the same VMs."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    spec = load_spec(path)
    assert [vm.key for vm in spec.vms] == ["web-01"]
    assert spec.path == str(path)
    assert spec.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_same_content_in_every_format_gives_equal_vms() -> None:
    """TOML, YAML and JSON versions of a spec give equal VmRequests."""
    results = [parse(TOML, "toml").vms, parse(YAML, "yaml").vms, parse(JSON, "json").vms]
    assert results[0] == results[1] == results[2]


def test_path_is_kept_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spec.path is the path as the caller wrote it, not resolved."""
    monkeypatch.chdir(tmp_path)
    Path("x.toml").write_text(TOML, encoding="utf-8")
    assert load_spec("x.toml").path == "x.toml"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "spec.txt",
            "unsupported file extension '.txt': spec files are .toml, .yaml, .yml or .json",
        ),
        ("spec", "unsupported file no extension: spec files are .toml, .yaml, .yml or .json"),
    ],
)
def test_unknown_extension(tmp_path: Path, name: str, message: str) -> None:
    """Another extension is an error naming the supported ones."""
    path = tmp_path / name
    path.write_text(TOML, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.issues == (SpecIssue(str(path), message),)


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a SpecError naming it, not an OSError."""
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.issues == (
        SpecIssue(str(path), "cannot read the spec file: No such file or directory"),
    )


def test_directory_is_not_a_spec(tmp_path: Path) -> None:
    """A directory named like a spec is a SpecError."""
    path = tmp_path / "dir.toml"
    path.mkdir()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.issues[0].message == "cannot read the spec file: Is a directory"


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    """A FIFO named like a spec is a SpecError at once (opening it would block forever)."""
    path = tmp_path / "spec.toml"
    os.mkfifo(path)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: cannot read the spec file: not a regular file"


def test_too_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over the size limit is refused before parsing."""
    monkeypatch.setattr(load_module, "MAX_FILE_BYTES", 10)
    path = tmp_path / "big.toml"
    path.write_text(TOML, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.issues[0].message == "the spec file is larger than 0 MiB"


def test_bytes_that_are_not_utf8() -> None:
    """Bytes that are not UTF-8 give one issue with the line and offset."""
    issue = one_issue(b'[defaults]\nname = "\xff"\n')  # type: ignore[arg-type]
    assert issue == SpecIssue(
        "spec.toml", "the file is not UTF-8 text (byte 0xff at offset 19)", line=2
    )


def test_bom_is_accepted_and_hashed() -> None:
    """A UTF-8 byte order mark is skipped for parsing but included in the hash."""
    data = b"\xef\xbb\xbf" + TOML.encode()
    spec = parse_spec(data, source="s.toml", fmt="toml")
    assert [vm.key for vm in spec.vms] == ["web-01"]
    assert spec.sha256 == hashlib.sha256(data).hexdigest()


def test_text_and_bytes_hash_alike() -> None:
    """sha256 of text input is the hash of its UTF-8 bytes."""
    by_text = parse_spec(TOML, source="s", fmt="toml")
    by_bytes = parse_spec(TOML.encode(), source="s", fmt="toml")
    assert isinstance(by_text, Spec)
    assert by_text.sha256 == by_bytes.sha256


@pytest.mark.parametrize(
    ("text", "fmt", "message", "line"),
    [
        ("a = \nb = 1\n", "toml", "not valid TOML: Invalid value (column 5)", 1),
        (
            '[defaults]\npackage = "x"\npackage = "y"\n',
            "toml",
            "not valid TOML: Cannot overwrite a value (column 14)",
            3,
        ),
        (
            "---\na: 1\n---\nb: 2\n",
            "yaml",
            "not valid YAML: expected a single document in the stream, but found another "
            "document (column 1)",
            3,
        ),
        ("a: &x 1\nb: *y\n", "yaml", "not valid YAML: found undefined alias 'y' (column 4)", 2),
        (
            "a: &x 1\nb: &x 2\n",
            "yaml",
            "not valid YAML: found duplicate anchor 'x' (first at line 1) (column 4)",
            2,
        ),
        ('{"vms": [}', "json", "not valid JSON: Expecting value (column 10)", 1),
        (
            '{\n"vms": 1,\n}',
            "json",
            "not valid JSON: Expecting property name enclosed in double quotes (column 1)",
            3,
        ),
    ],
)
def test_syntax_errors_give_one_issue_with_the_parsers_line(
    text: str, fmt: str, message: str, line: int
) -> None:
    """A file that does not parse gives one issue with the parser's line and column."""
    issue = one_issue(text, fmt)  # type: ignore[arg-type]
    assert (issue.message, issue.line) == (message, line)


@pytest.mark.parametrize(
    ("text", "line"),
    [("vms:\n  - hostname: [a\n", 3), ("vms: a: b\n", 1), ("a:\n\tb: 1\n", 2)],
)
def test_yaml_parser_errors_carry_its_line(text: str, line: int) -> None:
    """YAML syntax errors give the parser's own words (libyaml's or PyYAML's) and line."""
    issue = one_issue(text, "yaml")
    assert issue.message.startswith("not valid YAML: ")
    assert issue.line == line


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("[" * 100_000, "json"),
        ("[" * 100_000, "yaml"),
        ("- " * 100_000 + "x", "yaml"),
        ("{a: " * 100_000, "yaml"),
        ("a = " + "[" * 100_000, "toml"),
    ],
)
def test_deep_nesting_is_a_spec_error(text: str, fmt: str) -> None:
    """Pathologically nested input is a SpecError, not a RecursionError or a crash of libyaml."""
    issue = issues(text, fmt)[0]  # type: ignore[arg-type]
    assert issue.message.startswith(f"not valid {fmt.upper()}")


def test_json_huge_integer_is_a_spec_error() -> None:
    """An integer beyond Python's digit limit is a syntax issue, not a ValueError."""
    issue = one_issue('{"vms": [{"count": ' + "9" * 5000 + "}]}", "json")
    assert issue.message.startswith("not valid JSON: Exceeds the limit")


@pytest.mark.parametrize(
    ("text", "fmt", "line"),
    [
        ("vms:\n  - hostname: a\n    hostname: b\n", "yaml", 3),
        ('{"vms": [{"hostname": "a", "hostname": "b"}]}', "json", None),
    ],
)
def test_duplicate_keys_are_errors(text: str, fmt: str, line: int | None) -> None:
    """YAML and JSON duplicate keys (silently last-wins in their parsers) are errors."""
    found = issues(text, fmt)  # type: ignore[arg-type]
    assert found[0] == SpecIssue(
        "spec." + fmt,
        "duplicate key 'hostname' (the earlier value would be silently ignored)",
        line=line,
    )


# ------------------------------------------------------------------ line numbers

TOML_LINES = """\
version = 1
[defaults]
organization = "acme"
package = 5

[[vms]]
hostname = "a"
data_center = "uk-lon-01"

[[vms]]
hostname = "b"
"data_center" = "uk-lon-01"
network.id = "x"

[vms.annotations]
"bad key" = "v"

[[vms]]
hostname = "c"
cpu_cores = 0
"""


def test_toml_line_numbers() -> None:
    """TOML issues carry the line of the key, found by a scan of the text."""
    found = [(i.entry, i.field, i.line) for i in issues(TOML_LINES)]
    assert found == [
        (None, "defaults.package", 4),
        (1, "network", 13),
        (1, "annotations", 15),
        (2, "cpu_cores", 20),
    ]


def test_toml_multiline_strings_do_not_confuse_lines() -> None:
    """Lines inside a multi-line string are not taken for keys."""
    text = (
        DEFAULTS + '[[vms]]\nhostname = "a"\ndescription = """\ncpu_cores = 1\n"""\ncpu_cores = 0\n'
    )
    assert one_issue(text).line == 10


YAML_LINES = """\
defaults:
  organization: acme
  package: 5
vms:
  - hostname: a
    data_center: uk-lon-01
  - hostname: b
    data_center: uk-lon-01
    annotations:
      "bad key": v
  - {hostname: c, data_center: uk-lon-01, cpu_cores: 0}
  - hostname: d
    tags: [x, 7]
  - 12
"""


def test_yaml_line_numbers() -> None:
    """YAML issues carry the line of the node, from the composed node tree."""
    found = [(i.entry, i.field, i.line) for i in issues(YAML_LINES, "yaml")]
    assert found == [
        (None, "defaults.package", 3),
        (1, "annotations", 9),
        (2, "cpu_cores", 11),
        (3, "tags[1]", 13),
        (4, None, 14),
    ]


def test_json_content_issues_have_no_line() -> None:
    """JSON content issues are located by entry and field only."""
    issue = one_issue(
        '{"vms": [{"hostname": "a_b", "package": "p", "organization": "o", "zone": "z"}]}', "json"
    )
    assert (issue.entry, issue.field, issue.line) == (0, "hostname", None)


def test_unknown_format_is_a_programming_error() -> None:
    """parse_spec with a format other than toml/yaml/json is a ValueError."""
    with pytest.raises(ValueError, match="unknown spec format 'xml'"):
        parse_spec("", source="s", fmt="xml")  # type: ignore[arg-type]


def test_entries_naming_the_same_objects_share_one_lookup_each() -> None:
    """Equal references of different entries are one (frozen) Lookup: a spec of many
    VMs holds each package, template and location once, not once per VM."""
    text = DEFAULTS + "".join(
        f'\n[[vms]]\nhostname = "web-{i:02d}"\ndisk_template = "templates/ubuntu-22-04"\n'
        for i in range(3)
    )
    first, *rest = parse(text).vms
    for vm in rest:
        assert vm.package is first.package
        assert vm.organization is first.organization
        assert vm.data_center is first.data_center
        assert vm.disk_template is first.disk_template

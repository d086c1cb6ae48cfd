"""Loading user manifests: files -> YAML/JSON documents -> typed objects.

Safety and clarity rules, each with an error that says where the problem is
(``deploy.yaml: document 2: line 7, column 3: ...``):

* a file is at most 4 MiB (MAX_BYTES);
* a mapping may not repeat a key (YAML would silently keep the last one);
* aliases may not expand a document by more than MAX_ALIAS_EXPANSION nodes,
  and may not be recursive: "billion laughs" fails in time proportional to the
  text, the expansion is never built;
* unquoted dates stay strings (YAML 1.1 would make them datetime objects);
* empty documents are skipped; a top-level ``kind: List`` contributes its
  ``items``; JSON is accepted (as YAML, or as JSON when YAML rejects it).

Every error is a ManifestError (a ValueError) whose message starts with the
source and the document number.
"""

import json
import os
import sys

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.parser import ParserError
from yaml.resolver import Resolver
from yaml.scanner import ScannerError

from skiff.api import codec, kinds
from skiff.api.errors import FieldError, ValidationError

MAX_BYTES = 4 * 1024 * 1024
MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 100
EXTENSIONS = (".yaml", ".yml", ".json")
STDIN = "-"
STDIN_NAME = "<stdin>"

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class ManifestError(ValueError):
    """A manifest that cannot be used; str() starts with where it is. errors: its FieldErrors, if any."""

    def __init__(self, message: str, errors=()):
        super().__init__(message)
        self.errors = list(errors)


# ---------------------------------------------------------------- the YAML loader

class _StrictMappings:
    """Constructor mixin: duplicate keys are errors, and timestamps stay strings."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            _check_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _check_duplicate_keys(node: MappingNode) -> None:
    """ConstructorError at the second occurrence of a scalar key (same tag and text)."""
    first_line = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            continue  # "<<: *defaults" merges (later keys may override); complex keys fail later
        key = (key_node.tag, key_node.value)
        if key in first_line:
            raise ConstructorError(
                None, None,
                f"duplicate key {_show(key_node.value)} (first defined on line {first_line[key] + 1})",
                key_node.start_mark)
        first_line[key] = key_node.start_mark.line


class _CheckedComposer:
    """Composer mixin: limits nesting to MAX_DEPTH and counts aliases per document.

    The depth is checked here, in Python, because libyaml's own composer
    recurses on the C stack and crashes the process on very deep nesting
    ("- - - - ..." or "[[[[...").
    """

    _depth = 0
    aliases = 0

    def compose_document(self):
        self.aliases = 0
        return super().compose_document()

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            self.aliases += 1
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


if getattr(yaml, "__with_libyaml__", False):
    from yaml.cyaml import CParser

    class _Loader(_StrictMappings, _CheckedComposer, Composer, CParser, SafeConstructor, Resolver):
        """libyaml's fast iterative parser, then PyYAML's composer (checked) and safe constructor."""

        def __init__(self, stream):
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
else:  # pragma: no cover - PyYAML without libyaml
    class _Loader(_StrictMappings, _CheckedComposer, yaml.SafeLoader):
        """PyYAML's pure-Python loader, with the same checks."""


def _type_name(value) -> str:
    """The JSON name of a value's type, as users know it from their manifests."""
    names = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "list"),
             (dict, "object"))
    if value is None:
        return "null"
    return next((name for t, name in names if isinstance(value, t)), type(value).__name__)


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _expansion(root) -> int:
    """How many more nodes the document has with every alias expanded than as written.

    Each distinct node is visited once (sizes are memoized by identity), so
    the cost is linear in the text however large the expansion would be.
    ComposerError for a recursive alias (a node that contains itself).
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ComposerError(None, None, "recursive alias: a node refers to itself", node.start_mark)
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        return total

    return size(root) - len(sizes)


def _describe_yaml_error(e: yaml.YAMLError) -> str:
    """'line L, column C: problem (context, line L2)' from a PyYAML error."""
    if not isinstance(e, yaml.MarkedYAMLError):
        return str(e)
    mark = e.problem_mark or e.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    text = e.problem or e.context or "invalid YAML"
    if e.context and e.problem:
        context_line = f" on line {e.context_mark.line + 1}" if e.context_mark else ""
        text += f" ({e.context}{context_line})"
    return where + text


# ---------------------------------------------------------------- documents

def _to_text(text, source: str) -> str:
    """The manifest as str, checking the size limit and the encoding."""
    if isinstance(text, (bytes, bytearray)):
        size = len(text)
    else:
        size = len(text) if len(text) > MAX_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ManifestError(f"{source}: {size} bytes is too large: a manifest file may have at most "
                            f"{MAX_BYTES} bytes (4 MiB); split it into several files")
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ManifestError(f"{source}: not UTF-8 text (invalid byte at offset {e.start})") from None
    return text


def _yaml_documents(text: str, source: str) -> list:
    """[(document number, first line, data)] of the non-empty documents, checked for bombs.

    Documents are numbered from 1 in stream order, empty ones included, so the
    numbers match what the user sees between the "---" separators.
    """
    out = []
    loader = _Loader(text)
    number = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
            except yaml.YAMLError as e:
                raise _yaml_failure(source, number + 1, e) from None
            number += 1
            try:
                if loader.aliases:
                    _check_aliases(node, source, number)
                data = loader.construct_document(node)
            except yaml.YAMLError as e:
                raise _yaml_failure(source, number, e) from None
            if data is not None:
                out.append((number, node.start_mark.line + 1, data))
    except RecursionError:
        raise ManifestError(f"{source}: document {number + 1}: nested too deeply") from None
    finally:
        loader.dispose()
    return out


class _YAMLSyntaxError(ManifestError):
    """Text that is not YAML at all (scanner or parser error), as opposed to YAML we refuse."""


def _yaml_failure(source: str, number: int, e: yaml.YAMLError) -> ManifestError:
    error_class = _YAMLSyntaxError if isinstance(e, (ScannerError, ParserError)) else ManifestError
    return error_class(f"{source}: document {number}: {_describe_yaml_error(e)}")


def _check_aliases(node, source: str, number: int) -> None:
    extra = _expansion(node)
    if extra > MAX_ALIAS_EXPANSION:
        raise ManifestError(
            f"{source}: document {number}: line {node.start_mark.line + 1}: aliases (*name) would expand "
            f"this document by {extra} nodes, more than the limit of {MAX_ALIAS_EXPANSION} "
            "(a 'billion laughs' YAML bomb?)")


def _json_documents(text: str, source: str) -> list:
    """The one document of a JSON text, duplicate keys rejected."""
    def no_duplicates(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {_show(key)}")
            result[key] = value
        return result

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{source}: document 1: line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise ManifestError(f"{source}: document 1: nested too deeply") from None
    except ValueError as e:
        raise ManifestError(f"{source}: document 1: {e}") from None
    return [] if data is None else [(1, 1, data)]


def _documents(text: str, source: str) -> list:
    """Parse as YAML; JSON that YAML 1.1 cannot read (e.g. tab-indented) is parsed as JSON."""
    try:
        return _yaml_documents(text, source)
    except _YAMLSyntaxError:
        if not text.lstrip("\ufeff \t\r\n").startswith(("{", "[")):
            raise
    return _json_documents(text.lstrip("\ufeff"), source)


def load_located(text, source: str) -> list[tuple[str, dict]]:
    """[(where, document)] for every non-empty document; where is "source: document N[: items[i]]"."""
    out = []
    for number, line, data in _documents(_to_text(text, source), source):
        where = f"{source}: document {number}"
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: line {line}: expected a mapping (an object with apiVersion "
                                f"and kind), got {_type_name(data)}")
        if data.get("kind") == "List" and "items" in data:
            out.extend(_list_items(data["items"], where))
        else:
            out.append((where, data))
    return out


def _list_items(items, where: str) -> list[tuple[str, dict]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ManifestError(f"{where}: items: expected a list, got {_type_name(items)}")
    out = []
    for i, item in enumerate(items):
        item_where = f"{where}: items[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{item_where}: expected a mapping (an object with apiVersion and kind), "
                                f"got {_type_name(item)}")
        out.append((item_where, item))
    return out


def load_documents(text, source: str) -> list[dict]:
    """The non-empty documents of a YAML/JSON text, List items flattened; ManifestError if unusable."""
    return [doc for _, doc in load_located(text, source)]


# ---------------------------------------------------------------- objects

def _format_errors(where: str, errors) -> str:
    if len(errors) == 1:
        return f"{where}: {errors[0]}"
    return f"{where}: {len(errors)} errors:\n" + "\n".join(f"  {e}" for e in errors)


def _explain_missing_api_version(doc: dict, error: FieldError) -> FieldError:
    """'apiVersion: required' rather than 'not "None"' when the document has no apiVersion."""
    kind = kinds.BY_NAME.get(doc.get("kind")) if isinstance(doc.get("kind"), str) else None
    if error.path == "apiVersion" and doc.get("apiVersion") is None and kind is not None:
        return FieldError("apiVersion", f'required: {kind.name} is served as apiVersion "{kind.api_version}"')
    return error


def parse_object(doc, where: str):
    """(Kind, typed message) for one document; ManifestError naming the fields that are wrong."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected a mapping (an object with apiVersion and kind), "
                            f"got {_type_name(doc)}")
    try:
        kind = kinds.for_manifest(doc.get("apiVersion"), doc.get("kind"))
    except ValidationError as e:
        errors = [_explain_missing_api_version(doc, err) for err in e.errors]
        raise ManifestError(_format_errors(where, errors), errors) from None
    try:
        msg = codec.decode(kind.message, doc)
    except ValidationError as e:
        raise ManifestError(_format_errors(where, e.errors), e.errors) from None
    return kind, msg


def load_objects(text, source: str) -> list[tuple[str, object, object]]:
    """[(where, Kind, message)] for every object in a text; the first problem raises ManifestError."""
    out = []
    for where, doc in load_located(text, source):
        kind, msg = parse_object(doc, where)
        out.append((where, kind, msg))
    return out


# ---------------------------------------------------------------- files

def read_sources(paths: list[str], recursive: bool = False) -> list[tuple[str, str]]:
    """[(where, text)] for files, directories (their .yaml/.yml/.json files, sorted) and "-" (stdin).

    recursive also descends into subdirectories. A missing path, an unreadable
    or oversized file raises ManifestError naming it.
    """
    out = []
    for path in paths:
        if path == STDIN:
            out.append((STDIN_NAME, _read_stdin()))
        elif os.path.isdir(path):
            out.extend((f, _read_file(f)) for f in _directory_files(path, recursive))
        elif os.path.exists(path):
            out.append((path, _read_file(path)))
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return out


def _directory_files(directory: str, recursive: bool) -> list[str]:
    if not recursive:
        names = sorted(os.listdir(directory))
        return [os.path.join(directory, n) for n in names
                if n.endswith(EXTENSIONS) and os.path.isfile(os.path.join(directory, n))]
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in files if f.endswith(EXTENSIONS))
    return sorted(found)


def _read_file(path: str) -> str:
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise ManifestError(f"{path}: {size} bytes is too large: a manifest file may have at most "
                                f"{MAX_BYTES} bytes (4 MiB); split it into several files")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ManifestError(f"{path}: cannot read: {e.strerror or e}") from None
    return _to_text(data, path)


def _read_stdin() -> str:
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    return _to_text(stream.read(MAX_BYTES + 1), STDIN_NAME)

"""Label selectors, and the syntax of label keys, label values and DNS names.

A Selector is an immutable conjunction of Requirements; an object matches when
its labels satisfy every requirement. The empty selector matches everything
(Kubernetes' ``labels.Everything()``): whether an empty selector is acceptable
(a Deployment's is not; a Service with no selector selects no pods) is the
caller's decision, not this module's.

Semantics, as in Kubernetes:

* ``k=v``, ``k==v``, ``k in (a,b)``: the label is present and its value is listed;
* ``k!=v``, ``k notin (a,b)``: the label is absent, or its value is not listed;
* ``k``: the label is present; ``!k``: it is absent.

str(selector) is canonical: requirements sorted by key, values sorted, ``==``
written as ``=``, so equal selectors print identically and parse(str(s)) == s.
"""

import re
from dataclasses import dataclass
from typing import Mapping

# ---------------------------------------------------------------- name syntax

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63


def validate_dns1123_label(v: str) -> str | None:
    """Error detail when v is not an RFC 1123 label (e.g. "my-name", "abc-123"), else None."""
    if len(v) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if not _DNS1123_LABEL.fullmatch(v):
        return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')")
    return None


def validate_dns1123_subdomain(v: str) -> str | None:
    """Error detail when v is not an RFC 1123 subdomain (e.g. "example.com"), else None."""
    if len(v) > DNS1123_SUBDOMAIN_MAX:
        return f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
    if not _DNS1123_SUBDOMAIN.fullmatch(v):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')")
    return None


def validate_dns1035_label(v: str) -> str | None:
    """Error detail when v is not an RFC 1035 label (starts with a letter, e.g. "my-name"), else None."""
    if len(v) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if not _DNS1035_LABEL.fullmatch(v):
        return ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123')")
    return None


def validate_label_key(k: str) -> str | None:
    """Error detail when k is not a valid label key ([prefix/]name), else None.

    The optional prefix is a DNS subdomain; the name is at most 63 characters
    of alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
    Annotation keys follow the same rule.
    """
    if k.count("/") > 1:
        return "a label key may contain at most one '/' (e.g. 'example.com/my-key')"
    prefix, _, name = k.rpartition("/")
    if "/" in k:
        if prefix == "":
            return "the prefix before '/' must be non-empty (e.g. 'example.com/my-key')"
        problem = validate_dns1123_subdomain(prefix)
        if problem:
            return f"prefix part: {problem}"
    if name == "":
        return "the name part must be non-empty (e.g. 'app' or 'example.com/app')"
    if len(name) > LABEL_VALUE_MAX:
        return f"name part must be no more than {LABEL_VALUE_MAX} characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')")
    return None


def validate_label_value(v: str) -> str | None:
    """Error detail when v is not a valid label value (may be empty), else None."""
    if len(v) > LABEL_VALUE_MAX:
        return f"must be no more than {LABEL_VALUE_MAX} characters"
    if v and not _QUALIFIED_NAME.fullmatch(v):
        return ("a valid label value must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'MyValue', 'my_value' or '12345')")
    return None


# ---------------------------------------------------------------- selectors

EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"

_SET_OPERATORS = (IN, NOT_IN)
_VALUE_OPERATORS = (EQUALS, NOT_EQUALS)


@dataclass(frozen=True, order=True)
class Requirement:
    """One condition on one label key.

    Invariants: key and values are syntactically valid; operator is one of
    the module constants (=, !=, in, notin, exists, !); values is sorted and
    has exactly one element for = and !=, at least one for in and notin,
    none for exists and !.
    """
    key: str
    operator: str
    values: tuple = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in (EQUALS, IN):
            return present and labels[self.key] in self.values
        # != and notin: an absent label satisfies them, as in Kubernetes.
        return not present or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in _VALUE_OPERATORS:
            return f"{self.key}{self.operator}{self.values[0]}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"


def requirement(key: str, operator: str, values=()) -> Requirement:
    """A checked Requirement; ValueError naming the key or value that is wrong."""
    problem = validate_label_key(key)
    if problem:
        raise ValueError(f"invalid label key {key!r}: {problem}")
    for v in values:
        problem = validate_label_value(v)
        if problem:
            raise ValueError(f"invalid value {v!r} for label key {key!r}: {problem}")
    if operator not in _VALUE_OPERATORS + _SET_OPERATORS + (EXISTS, DOES_NOT_EXIST):
        raise ValueError(f"{key!r}: unknown operator {operator!r}")
    values = tuple(sorted(set(values)))
    if operator in _VALUE_OPERATORS and len(values) != 1:
        raise ValueError(f"{key!r}: operator {operator!r} needs exactly one value")
    if operator in _SET_OPERATORS and not values:
        raise ValueError(f"{key!r}: operator {operator!r} needs at least one value, e.g. {key} {operator} (a,b)")
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        raise ValueError(f"{key!r}: operator {operator!r} takes no values")
    return Requirement(key, operator, values)


@dataclass(frozen=True)
class Selector:
    """An immutable, canonical (sorted, de-duplicated) conjunction of requirements."""
    requirements: tuple = ()

    @staticmethod
    def of(requirements) -> "Selector":
        return Selector(tuple(sorted(set(requirements))))

    @property
    def empty(self) -> bool:
        """True when there are no requirements: the selector matches everything."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()


def from_map(labels: Mapping[str, str]) -> Selector:
    """Equality on every key (a Service's or ReplicaSet's matchLabels). {} -> the empty selector."""
    return Selector.of(requirement(k, EQUALS, (v,)) for k, v in labels.items())


_LABEL_SELECTOR_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def from_label_selector(selector) -> Selector:
    """A pb.LabelSelector (matchLabels AND matchExpressions) as a Selector.

    An empty LabelSelector matches everything, as in Kubernetes. ValueError
    for an unknown operator or a wrong number of values.
    """
    reqs = [requirement(k, EQUALS, (v,)) for k, v in selector.match_labels.items()]
    for expr in selector.match_expressions:
        op = _LABEL_SELECTOR_OPERATORS.get(expr.operator)
        if op is None:
            raise ValueError(f"{expr.key!r}: unknown operator {expr.operator!r} "
                             f"(use one of {', '.join(_LABEL_SELECTOR_OPERATORS)})")
        reqs.append(requirement(expr.key, op, tuple(expr.values)))
    return Selector.of(reqs)


# ---------------------------------------------------------------- the string syntax

_SPECIAL = "!=(),"
_TOKEN = re.compile(r"\s*(!=|==|[!=(),]|[^\s!=(),]+)")


def _tokenize(text: str) -> list[str]:
    """Split text into operators, parentheses, commas and words; whitespace only separates."""
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace remains
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent over the tokens of a selector string.

    selector    := '' | requirement (',' requirement)*
    requirement := '!' KEY | KEY [ ('=' | '==' | '!=') VALUE | ('in' | 'notin') '(' VALUES ')' ]
    """

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def error(self, what: str, syntax_hint: bool = True) -> ValueError:
        hint = (" (syntax: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; comma-separated)"
                if syntax_hint else "")
        return ValueError(f"invalid label selector {self.text!r}: {what}{hint}")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def word(self, what: str) -> str:
        token = self.take()
        if token is None:
            raise self.error(f"expected {what} at the end")
        if token in _SPECIAL or token == "==" or token == "!=":
            raise self.error(f"expected {what}, found {token!r}")
        return token

    def parse(self) -> Selector:
        reqs = []
        if self.peek() is None:
            return EVERYTHING
        while True:
            reqs.append(self.requirement())
            token = self.take()
            if token is None:
                return Selector.of(reqs)
            if token != ",":
                raise self.error(f"expected ',' between requirements, found {token!r}")

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return self.checked(self.word("a label key after '!'"), DOES_NOT_EXIST, ())
        key = self.word("a label key")
        token = self.peek()
        if token is None or token == ",":
            return self.checked(key, EXISTS, ())
        self.take()
        if token in ("=", "==", "!="):
            value = self.peek()
            if value is None or value == ",":  # "k=" selects the empty value
                return self.checked(key, NOT_EQUALS if token == "!=" else EQUALS, ("",))
            return self.checked(key, NOT_EQUALS if token == "!=" else EQUALS, (self.word("a value"),))
        if token in (IN, NOT_IN):
            return self.checked(key, token, self.value_set(key, token))
        raise self.error(f"after key {key!r} expected one of =, ==, !=, in, notin, or ',', found {token!r}")

    def value_set(self, key: str, op: str) -> tuple:
        if self.take() != "(":
            raise self.error(f"expected '(' after '{key} {op}'")
        values = []
        while True:
            token = self.peek()
            if token is None:
                raise self.error(f"missing ')' after '{key} {op} ('")
            if token in (",", ")"):
                values.append("")  # "(a,)" lists the empty value, as in Kubernetes
            else:
                values.append(self.word("a value"))
            token = self.take()
            if token == ")":
                break
            if token is None:
                raise self.error(f"missing ')' after '{key} {op} ('")
            if token != ",":
                raise self.error(f"expected ',' or ')' in the values of {key!r}, found {token!r}")
        if values == [""]:
            raise self.error(f"'{key} {op} ()' needs at least one value")
        return tuple(values)

    def checked(self, key: str, op: str, values: tuple) -> Requirement:
        try:
            return requirement(key, op, values)
        except ValueError as e:
            raise self.error(str(e), syntax_hint=False) from None


def parse(text: str) -> Selector:
    """Parse kubectl's -l syntax ("app=web,tier in (fe,be),!canary"); "" -> the empty selector."""
    return _Parser(text).parse()

"""Recursive-descent parser: expression text -> AST, with reserved words and placeholders noted.

`parse(kind, text)` is cached per (kind, text): the tree does not depend on the request's
ExpressionAttributeNames/Values, which are checked against `Parsed.name_refs/value_refs`.
Precedence, loosest first: OR, AND, NOT, then comparisons / BETWEEN / IN / functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.expressions.lexer import Token, tokenize
from strata.services.dynamodb.expressions.reserved import RESERVED_WORDS

MAX_EXPRESSION_BYTES = 4096  # "the maximum length of any expression string is 4 KB"
MAX_OPERATORS = 300  # operators and functions in one expression

COMPARATORS = frozenset({"=", "<>", "<", "<=", ">", ">="})
CONDITION_FUNCTIONS = frozenset(
    {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"}
)
OPERAND_FUNCTIONS = frozenset({"size"})
UPDATE_FUNCTIONS = frozenset({"if_not_exists", "list_append"})
ALL_FUNCTIONS = CONDITION_FUNCTIONS | OPERAND_FUNCTIONS | UPDATE_FUNCTIONS
_ARITY = {
    "attribute_exists": 1,
    "attribute_not_exists": 1,
    "attribute_type": 2,
    "begins_with": 2,
    "contains": 2,
    "size": 1,
    "if_not_exists": 2,
    "list_append": 2,
}
UPDATE_CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")


@dataclass(frozen=True)
class Parsed:
    kind: str
    tree: object
    name_refs: frozenset[str]
    value_refs: frozenset[str]


class _Parser:
    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text
        self.tokens = tokenize(text, kind)
        self.i = 0
        self.names: set[str] = set()
        self.values: set[str] = set()
        self.operators = 0

    # -- token helpers -------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def error(self) -> Exception:
        t = self.tok
        prev = self.tokens[self.i - 1] if self.i else None
        near = self.text[prev.pos : t.pos + len(t.text)] if prev else t.text
        if t.kind == "eof":
            near = self.text[prev.pos :] if prev else ""
        return validation(f'Invalid {self.kind}: Syntax error; token: "{t.text}", near: "{near}"')

    def operator(self) -> None:
        """Count one operator or function against DynamoDB's limit of 300 per expression."""
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise self.fail(f"The expression contains too many operators; operator count: {self.operators}")

    def fail(self, message: str) -> Exception:
        return validation(f"Invalid {self.kind}: {message}")

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text.upper() == word

    def expect_op(self, text: str) -> None:
        if not self.is_op(text):
            raise self.error()
        self.i += 1

    def expect_eof(self) -> None:
        if self.tok.kind != "eof":
            raise self.error()

    # -- paths and operands ----------------------------------------------------------------------

    def path_element(self) -> str | ast.NameRef:
        t = self.tok
        if t.kind == "nameref":
            self.i += 1
            self.names.add(t.text)
            return ast.NameRef(t.text)
        if t.kind == "name":
            if t.text.upper() in RESERVED_WORDS:
                raise self.fail(f"Attribute name is a reserved keyword; reserved keyword: {t.text}")
            self.i += 1
            return t.text
        raise self.error()

    def path(self) -> ast.Path:
        parts: list[ast.PathPart] = [self.path_element()]
        while True:
            if self.is_op("."):
                self.i += 1
                parts.append(self.path_element())
            elif self.is_op("["):
                self.i += 1
                if self.tok.kind != "number":
                    raise self.error()
                parts.append(int(self.next().text))
                self.expect_op("]")
            else:
                return ast.Path(tuple(parts))

    def function_args(self, name: str) -> tuple:
        self.expect_op("(")
        args = [self.operand()]
        while self.is_op(","):
            self.i += 1
            args.append(self.operand())
        self.expect_op(")")
        if len(args) != _ARITY[name]:
            raise self.fail(
                f"Incorrect number of operands for operator or function; operator or function: {name}, "
                f"number of operands: {len(args)}"
            )
        return tuple(args)

    def is_call(self) -> bool:
        return (
            self.tok.kind == "name"
            and self.tokens[self.i + 1].kind == "op"
            and self.tokens[self.i + 1].text == "("
        )

    def operand(self) -> ast.Operand:
        t = self.tok
        if t.kind == "valref":
            self.i += 1
            self.values.add(t.text)
            return ast.ValueRef(t.text)
        if self.is_call():
            name = t.text
            if name not in ALL_FUNCTIONS:
                raise self.fail(f"Invalid function name; function: {name}")
            allowed = OPERAND_FUNCTIONS | (
                UPDATE_FUNCTIONS if self.kind == "UpdateExpression" else frozenset()
            )
            if name not in allowed:
                raise self.fail(
                    f"The function is not allowed to be used this way in an expression; function: {name}"
                )
            self.operator()
            self.i += 1
            args = self.function_args(name)
            if name == "size":
                if not isinstance(args[0], ast.Path):
                    raise self.fail(
                        "Incorrect operand type for operator or function; operator or function: size, operand type: M"
                    )
                return ast.Size(args[0])
            if name == "if_not_exists":
                if not isinstance(args[0], ast.Path):
                    raise self.fail(
                        "Operator or function requires a document path; operator or function: if_not_exists"
                    )
                return ast.IfNotExists(args[0], args[1])
            return ast.ListAppend(args[0], args[1])
        if t.kind in ("name", "nameref"):
            return self.path()
        raise self.error()

    # -- conditions ------------------------------------------------------------------------------

    def condition(self) -> ast.Condition:
        """OR of ANDs of NOTs of predicates, left-associative.

        Parsed with explicit stacks rather than one Python call per parenthesis or NOT, so
        `((((...` or `NOT NOT NOT ...` nests as deep as the 4 KB expression allows without ever
        touching the interpreter's recursion limit.
        """
        ops: list[str] = []  # "(", "NOT", "AND", "OR"
        out: list[ast.Condition] = []
        while True:
            while True:  # an operand may start with any number of NOTs and parentheses
                if self.is_word("NOT"):  # a reserved word, never a function: NOT (a OR b) negates
                    self.operator()
                    ops.append("NOT")
                elif self.is_op("("):
                    ops.append("(")
                else:
                    break
                self.i += 1
            out.append(self.predicate())
            while True:
                while ops and ops[-1] == "NOT":
                    ops.pop()
                    out.append(ast.Not(out.pop()))
                if not (self.is_op(")") and "(" in ops):
                    break
                self.i += 1
                _reduce(ops, out, ("AND", "OR"))
                ops.pop()  # the "("
            if self.is_word("AND") or self.is_word("OR"):
                word = self.next().text.upper()
                self.operator()
                _reduce(ops, out, ("AND",) if word == "AND" else ("AND", "OR"))
                ops.append(word)
                continue
            _reduce(ops, out, ("AND", "OR"))
            if ops:  # an unclosed parenthesis
                raise self.error()
            return out[0]

    def predicate(self) -> ast.Condition:
        """A comparison, BETWEEN, IN or condition function (parentheses belong to `condition`)."""
        if self.is_call() and self.tok.text in CONDITION_FUNCTIONS:
            self.operator()
            name = self.next().text
            args = self.function_args(name)
            if not isinstance(args[0], ast.Path):
                raise self.fail(
                    f"Operator or function requires a document path; operator or function: {name}"
                )
            return ast.Function(name, args)
        left = self.operand()
        t = self.tok
        if t.kind == "op" and t.text in COMPARATORS:
            self.operator()
            self.i += 1
            return ast.Compare(t.text, left, self.operand())
        if self.is_word("BETWEEN"):
            self.operator()
            self.i += 1
            low = self.operand()
            if not self.is_word("AND"):
                raise self.error()
            self.i += 1
            return ast.Between(left, low, self.operand())
        if self.is_word("IN"):
            self.operator()
            self.i += 1
            self.expect_op("(")
            options = [self.operand()]
            while self.is_op(","):
                self.i += 1
                options.append(self.operand())
            self.expect_op(")")
            if len(options) > 100:
                raise self.fail(
                    f"The IN operator is provided with too many operands; number of operands: {len(options)}"
                )
            return ast.In(left, tuple(options))
        if isinstance(left, ast.Size) and t.kind == "eof":
            raise self.fail(
                "The function is not allowed to be used this way in an expression; function: size"
            )
        raise self.error()

    # -- updates ---------------------------------------------------------------------------------

    def set_value(self) -> ast.Operand:
        left = self.operand()
        if self.tok.kind == "op" and self.tok.text in ("+", "-"):
            self.operator()
            op = self.next().text
            return ast.Arithmetic(op, left, self.operand())
        return left

    def update(self) -> ast.Update:
        actions: list[ast.UpdateAction] = []
        seen: set[str] = set()
        while self.tok.kind != "eof" or not seen:
            if self.tok.kind != "name" or self.tok.text.upper() not in UPDATE_CLAUSES:
                raise self.error()
            clause = self.next().text.upper()
            if clause in seen:
                raise self.fail(f'The "{clause}" section can only be used once in an update expression;')
            seen.add(clause)
            while True:
                path = self.path()
                if clause == "SET":
                    self.expect_op("=")
                    actions.append(ast.SetAction(path, self.set_value()))
                elif clause == "REMOVE":
                    actions.append(ast.RemoveAction(path))
                elif clause == "ADD":
                    actions.append(ast.AddAction(path, self.operand()))
                else:
                    actions.append(ast.DeleteAction(path, self.operand()))
                if not self.is_op(","):
                    break
                self.i += 1
        return ast.Update(tuple(actions))

    def projection(self) -> ast.Projection:
        paths = [self.path()]
        while self.is_op(","):
            self.i += 1
            paths.append(self.path())
        return ast.Projection(tuple(paths))


def _reduce(ops: list[str], out: list[ast.Condition], words: tuple[str, ...]) -> None:
    """Apply the binary operators in `words` from the top of `ops` to the operands in `out`."""
    while ops and ops[-1] in words:
        right, left = out.pop(), out.pop()
        out.append(ast.And(left, right) if ops.pop() == "AND" else ast.Or(left, right))


@lru_cache(maxsize=4096)
def parse(kind: str, text: str) -> Parsed:
    """Parse `text` as the expression `kind` (ConditionExpression, UpdateExpression, ...)."""
    if not text.strip():
        raise validation(f"Invalid {kind}: The expression can not be empty;")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_EXPRESSION_BYTES:
        raise validation(
            f"Invalid {kind}: Expression size has exceeded the maximum allowed size; expression size: {size}"
        )
    p = _Parser(kind, text)
    if kind == "UpdateExpression":
        tree: object = p.update()
    elif kind == "ProjectionExpression":
        tree = p.projection()
    else:
        tree = p.condition()
    p.expect_eof()
    return Parsed(kind, tree, frozenset(p.names), frozenset(p.values))

"""Recursive-descent parser for DynamoDB's PartiQL subset: statement text -> Statement.

WHERE clauses, SET/REMOVE actions and projections are built from the expression engine's own
AST nodes (strata.services.dynamodb.expressions.ast), so compile.py can hand them to the one
engine; every literal or `?` becomes a `ValueRef(":vN")` whose slot (values.py) is bound per
request. `parse(text)` is cached: a statement reused with new parameters is parsed once.

    SELECT * | path, ... FROM table["."index] [WHERE cond] [ORDER BY key [ASC|DESC]]
    INSERT INTO table VALUE {'k': value, ...}
    UPDATE table SET path = value [, ...] | REMOVE path [, ...] ... WHERE cond [RETURNING ...]
    DELETE FROM table WHERE cond [RETURNING ALL OLD *]
    EXISTS(SELECT * FROM table WHERE cond)            (ExecuteTransaction condition checks)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.partiql import values as val
from strata.services.dynamodb.partiql.lexer import Token, malformed, tokenize

MAX_STATEMENT_BYTES = 8192
MAX_NESTING = 64  # parentheses / NOT depth: deeper statements are refused, not a RecursionError
MAX_OPERATORS = 300  # as for an expression: the compiled expression could not hold more

# Words that end a path or start a clause: a bare identifier spelt like one must be "quoted".
KEYWORDS = frozenset(
    "SELECT FROM WHERE AND OR NOT BETWEEN IN IS MISSING NULL TRUE FALSE INSERT INTO VALUE VALUES "
    "UPDATE SET REMOVE DELETE RETURNING ORDER BY ASC DESC EXISTS".split()
)
_COMPARE = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# IS <type>: the attribute_type name each PartiQL type maps to.
_IS_TYPES = {
    "NULL": "NULL",
    "BOOLEAN": "BOOL",
    "BLOB": "B",
    "STRING": "S",
    "NUMERIC": "N",
    "STRUCT": "M",
    "TUPLE": "M",
    "LIST": "L",
}
_CONDITION_FUNCTIONS = {
    "begins_with": "begins_with",
    "contains": "contains",
    "attribute_type": "attribute_type",
    "exists": "attribute_exists",
    "missing": "attribute_not_exists",
}
RETURNING = ("ALL OLD", "ALL NEW", "MODIFIED OLD", "MODIFIED NEW")


@dataclass(frozen=True)
class Select:
    table: str
    index: str | None
    projection: tuple[ast.Path, ...] | None  # None: *
    where: ast.Condition | None
    order: tuple[str, bool] | None = None  # (key attribute, descending)


@dataclass(frozen=True)
class Insert:
    table: str
    index: str | None
    item: ast.ValueRef


@dataclass(frozen=True)
class Update:
    table: str
    index: str | None
    actions: tuple[ast.UpdateAction, ...]
    where: ast.Condition | None
    returning: str | None


@dataclass(frozen=True)
class Delete:
    table: str
    index: str | None
    where: ast.Condition | None
    returning: str | None


@dataclass(frozen=True)
class Exists:
    select: Select


Statement = Select | Insert | Update | Delete | Exists


@dataclass(frozen=True)
class Parsed:
    statement: Statement
    slots: dict  # ":vN" -> values.Slot
    params: int  # number of `?` in the statement
    plans: dict = field(default_factory=dict, compare=False)  # table id -> compile.Template


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.slots: dict[str, val.Slot] = {}
        self.params = 0
        self.depth = 0
        self.operators = 0

    # -- tokens ----------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def word(self, *words: str) -> bool:
        t = self.tok
        return t.kind == "ident" and t.text.upper() in words

    def op(self, *ops: str) -> bool:
        t = self.tok
        return t.kind == "op" and t.text in ops

    def expect_word(self, word: str) -> None:
        if not self.word(word):
            raise self.unexpected()
        self.i += 1

    def expect_op(self, text: str) -> None:
        if not self.op(text):
            raise self.unexpected()
        self.i += 1

    def unexpected(self) -> Exception:
        t = self.tok
        if t.kind == "eof":
            return malformed("Unexpected end of statement")
        if t.kind == "ident" and t.text.upper() in KEYWORDS:
            return malformed(f"Unexpected keyword: {t.text}")
        return malformed(f"Unexpected token: {t.text}")

    def is_call(self) -> bool:
        if self.tok.kind != "ident":
            return False
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "op" and nxt.text == "("

    # -- statements ------------------------------------------------------------------------------

    def statement(self) -> Statement:
        if self.word("SELECT"):
            stmt: Statement = self.select()
        elif self.word("INSERT"):
            stmt = self.insert()
        elif self.word("UPDATE"):
            stmt = self.update()
        elif self.word("DELETE"):
            stmt = self.delete()
        elif self.word("EXISTS") and self.is_call():
            self.i += 2
            if not self.word("SELECT"):
                raise validation("Unsupported operation in transaction.")
            stmt = Exists(self.select())
            self.expect_op(")")
        else:
            raise self.unexpected()
        if self.op(";"):
            self.i += 1
        if self.tok.kind != "eof":
            if self.word("SELECT", "INSERT", "UPDATE", "DELETE"):
                raise validation("Only one operation is allowed in a statement.")
            raise self.unexpected()
        return stmt

    def source(self) -> tuple[str, str | None]:
        table = self.name()
        index = None
        if self.op("."):
            self.i += 1
            index = self.name()
            if self.op(".", "["):
                raise validation("A path may contain at most 2 components in the FROM clause")
        if self.op(","):
            raise validation("Only select from a single table or index is supported.")
        return table, index

    def select(self) -> Select:
        self.expect_word("SELECT")
        projection: tuple[ast.Path, ...] | None
        if self.op("*"):
            self.i += 1
            projection = None
            if self.op(","):
                raise validation("Other attributes should not be present in the projection when '*' is used.")
        else:
            paths = [self.path()]
            while self.op(",") or self.word("AS"):
                if self.word("AS"):
                    raise validation("Aliasing is not supported")
                self.i += 1
                if self.op("*"):
                    raise validation(
                        "Other attributes should not be present in the projection when '*' is used."
                    )
                paths.append(self.path())
            projection = tuple(paths)
        if self.word("AS"):
            raise validation("Aliasing is not supported")
        self.expect_word("FROM")
        table, index = self.source()
        where = self.where()
        order = None
        if self.word("ORDER"):
            self.i += 1
            self.expect_word("BY")
            name = self.name()
            descending = False
            if self.word("ASC", "DESC"):
                descending = self.next().text.upper() == "DESC"
            order = (name, descending)
        return Select(table, index, projection, where, order)

    def where(self) -> ast.Condition | None:
        if not self.word("WHERE"):
            return None
        self.i += 1
        return self.condition()

    def insert(self) -> Insert:
        self.expect_word("INSERT")
        self.expect_word("INTO")
        table, index = self.source()
        if self.word("VALUE"):
            self.i += 1
        if self.op("<<") or self.word("VALUES"):
            raise validation(
                "Unsupported operation: Inserting multiple items in a single statement is not supported, "
                'use "INSERT INTO tableName VALUE item" instead'
            )
        if self.tokens[self.i - 1].text.upper() != "VALUE":
            raise self.unexpected()
        if not self.op("{") and not self.op("?"):
            raise validation(
                "Unsupported format in item expression. Please use struct format {...} to express item values "
                "for insert statement."
            )
        item = self.value_ref(self.value())
        if self.word("RETURNING"):
            raise validation("RETURNING is not supported in INSERT")
        if self.word("FROM", "WHERE"):
            raise validation("Unsupported FROM ... WHERE ... clause in INSERT statement.")
        return Insert(table, index, item)

    def update(self) -> Update:
        self.expect_word("UPDATE")
        table, index = self.source()
        actions: list[ast.UpdateAction] = []
        while self.word("SET", "REMOVE"):
            clause = self.next().text.upper()
            while True:
                path = self.path()
                if clause == "SET":
                    if not self.op("="):
                        raise self.unexpected()
                    self.i += 1
                    actions.append(self.assignment(path))
                else:
                    actions.append(ast.RemoveAction(path))
                if not self.op(","):
                    break
                self.i += 1
        if not actions:
            if self.word("ADD", "DELETE"):
                raise validation("Only SET and REMOVE are supported in update expressions at this time")
            raise self.unexpected()
        where = self.where()
        return Update(table, index, tuple(actions), where, self.returning())

    def delete(self) -> Delete:
        self.expect_word("DELETE")
        self.expect_word("FROM")
        table, index = self.source()
        where = self.where()
        returning = self.returning()
        if returning is not None and returning != "ALL OLD":
            raise validation(
                f"Invalid returning clause: RETURNING {returning} *. Only RETURNING ALL OLD * is allowed in "
                "DELETE statements."
            )
        return Delete(table, index, where, returning)

    def returning(self) -> str | None:
        if not self.word("RETURNING"):
            return None
        self.i += 1
        if not self.word("ALL", "MODIFIED"):
            raise self.unexpected()
        first = self.next().text.upper()
        if not self.word("OLD", "NEW"):
            raise self.unexpected()
        which = f"{first} {self.next().text.upper()}"
        if not self.op("*"):
            raise validation("Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in RETURNING clause")
        self.i += 1
        return which

    def assignment(self, target: ast.Path) -> ast.UpdateAction:
        """`path = value`, `path = a + b`, `path = list_append(a, b)`, `path = set_add(path, <<..>>)`."""
        if self.is_call() and self.tok.text.lower() in ("set_add", "set_delete"):
            name = self.next().text.upper()
            self.i += 1
            first = self.operand()
            args = [first]
            while self.op(","):
                self.i += 1
                args.append(self.operand())
            self.expect_op(")")
            if len(args) != 2:
                raise validation(f"{name} must have exactly two arguments")
            if first != target:
                raise validation(f"The first argument to {name} must equal the assignment value")
            if not isinstance(args[1], ast.ValueRef):
                raise validation(f"The second argument to {name} must be a value with type SET")
            return (ast.AddAction if name == "SET_ADD" else ast.DeleteAction)(target, args[1])
        left = self.term()
        if self.op("+", "-"):
            sign = self.next().text
            return ast.SetAction(target, ast.Arithmetic(sign, left, self.term()))
        return ast.SetAction(target, left)

    def term(self) -> ast.Operand:
        if self.is_call() and self.tok.text.lower() == "list_append":
            self.i += 2
            left = self.operand()
            self.expect_op(",")
            right = self.operand()
            self.expect_op(")")
            return ast.ListAppend(left, right)
        return self.operand()

    # -- names, paths, values --------------------------------------------------------------------

    def name(self) -> str:
        t = self.tok
        if t.kind == "qident" or (t.kind == "ident" and t.text.upper() not in KEYWORDS):
            self.i += 1
            if not t.text:
                raise validation("Path component cannot be an empty string")
            return t.text
        raise self.unexpected()

    def path(self) -> ast.Path:
        if self.op("["):
            raise validation("A path cannot start with a list index")
        parts: list[ast.PathPart] = [self.name()]
        while True:
            if self.op("."):
                self.i += 1
                if self.op("*"):
                    raise validation("Unpivot path component like a.*.b are not supported")
                parts.append(self.name())
            elif self.op("["):
                self.i += 1
                t = self.next()
                if t.kind == "number" and t.text.isdigit():
                    parts.append(int(t.text))
                elif t.kind == "string":
                    parts.append(t.text)
                elif t.kind == "op" and t.text == "*":
                    raise validation("Wildcard path component like a[*].b are not supported")
                else:
                    raise malformed(f"Unexpected token: {t.text}")
                self.expect_op("]")
            else:
                return ast.Path(tuple(parts))

    def value_ref(self, slot: val.Slot) -> ast.ValueRef:
        ref = f":v{len(self.slots)}"
        self.slots[ref] = slot
        return ast.ValueRef(ref)

    def value(self) -> val.Slot:
        """A literal or parameter: 'string', number, TRUE/FALSE/NULL, [list], {map}, <<set>>, ?."""
        t = self.tok
        if t.kind == "op":
            if t.text == "?":
                self.i += 1
                self.params += 1
                return ("p", self.params - 1)
            if t.text == "-" and self.tokens[self.i + 1].kind == "number":
                self.i += 2
                return val.constant({"N": "-" + self.tokens[self.i - 1].text})
            if t.text in ("[", "{", "<<"):
                return self.collection()
        if t.kind == "string":
            self.i += 1
            return val.constant({"S": t.text})
        if t.kind == "number":
            self.i += 1
            return val.constant({"N": t.text})
        if self.word("TRUE", "FALSE"):
            self.i += 1
            return val.constant({"BOOL": t.text.upper() == "TRUE"})
        if self.word("NULL"):
            self.i += 1
            return val.constant({"NULL": True})
        if self.word("MISSING"):
            raise validation("MISSING must be compared using IS operator")
        raise self.unexpected()

    def collection(self) -> val.Slot:
        opener = self.next().text
        closer = {"[": "]", "{": "}", "<<": ">>"}[opener]
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise validation("Nesting Levels have exceeded supported limits")
        items: list = []
        while not self.op(closer):
            if items:
                self.expect_op(",")
            if opener == "{":
                key = self.tok
                if key.kind != "string":
                    if key.kind in ("ident", "qident", "number"):
                        raise validation(
                            f"Tuple keys must be of type String. Actual type: {key.kind} under item"
                        )
                    raise self.unexpected()
                self.i += 1
                self.expect_op(":")
                items.append((key.text, self.value()))
            else:
                items.append(self.value())
        self.i += 1
        self.depth -= 1
        if opener == "[":
            return val.list_slot(items)
        if opener == "{":
            return val.map_slot(items)
        return val.bag_slot(items)

    def operand(self) -> ast.Operand:
        t = self.tok
        if self.is_call():
            name = t.text.lower()
            if name != "size":
                raise validation(f"Unrecognized function: {t.text}")
            self.i += 2
            path = self.path()
            self.expect_op(")")
            return ast.Size(path)
        if t.kind == "qident" or (t.kind == "ident" and t.text.upper() not in KEYWORDS):
            return self.path()
        return self.value_ref(self.value())

    # -- conditions: OR < AND < NOT < predicate ------------------------------------------------------

    def operator(self) -> None:
        """Count an operator or function; a long AND chain stays within what the engine takes."""
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise malformed(f"The expression contains too many operators; operator count: {self.operators}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise validation("Nesting Levels have exceeded supported limits")

    def condition(self) -> ast.Condition:
        left = self.conjunction()
        while self.word("OR"):
            self.i += 1
            self.operator()
            left = ast.Or(left, self.conjunction())
        return left

    def conjunction(self) -> ast.Condition:
        left = self.negation()
        while self.word("AND"):
            self.i += 1
            self.operator()
            left = ast.And(left, self.negation())
        return left

    def negation(self) -> ast.Condition:
        if self.word("NOT"):
            self.i += 1
            self.operator()
            self.nest()
            inner = self.negation()
            self.depth -= 1
            return ast.Not(inner)
        return self.predicate()

    def predicate(self) -> ast.Condition:
        if self.op("("):
            self.i += 1
            self.nest()
            inner = self.condition()
            self.depth -= 1
            self.expect_op(")")
            return inner
        if self.is_call() and self.tok.text.lower() in _CONDITION_FUNCTIONS:
            name = _CONDITION_FUNCTIONS[self.next().text.lower()]
            self.i += 1
            args = [self.operand()]
            while self.op(","):
                self.i += 1
                args.append(self.operand())
            self.expect_op(")")
            wanted = 1 if name in ("attribute_exists", "attribute_not_exists") else 2
            if len(args) != wanted or not isinstance(args[0], ast.Path):
                raise malformed(f"Incorrect arguments to function: {name}")
            return ast.Function(name, tuple(args))
        self.operator()
        left = self.operand()
        t = self.tok
        if t.kind == "op" and t.text in _COMPARE:
            self.i += 1
            return ast.Compare(_COMPARE[t.text], left, self.operand())
        negate = False
        if self.word("NOT") and self.tokens[self.i + 1].text.upper() in ("BETWEEN", "IN"):
            self.i += 1
            negate = True
        if self.word("BETWEEN"):
            self.i += 1
            low = self.operand()
            self.expect_word("AND")
            cond: ast.Condition = ast.Between(left, low, self.operand())
        elif self.word("IN"):
            self.i += 1
            cond = ast.In(left, self.in_list())
        elif self.word("IS"):
            self.i += 1
            return self.is_test(left)
        else:
            raise self.unexpected()
        return ast.Not(cond) if negate else cond

    def in_list(self) -> tuple[ast.Operand, ...]:
        if not self.op("(", "["):
            raise validation(
                "IN operator must have a left hand argument of type Variable Reference and right hand argument of "
                "type Seq with at least one member"
            )
        closer = ")" if self.next().text == "(" else "]"
        options = [self.operand()]
        while self.op(","):
            self.i += 1
            options.append(self.operand())
        self.expect_op(closer)
        return tuple(options)

    def is_test(self, left: ast.Operand) -> ast.Condition:
        negate = False
        if self.word("NOT"):
            self.i += 1
            negate = True
        if not isinstance(left, ast.Path):
            raise validation(
                "The left hand side argument to IS must be a Variable Reference, Literal, or Path"
            )
        t = self.next()
        kind = t.text.upper() if t.kind == "ident" else t.text
        if kind == "MISSING":
            return ast.Function("attribute_exists" if negate else "attribute_not_exists", (left,))
        if kind not in _IS_TYPES:
            raise validation(
                f"Unsupported data type for IS operator: {t.text}. Supported data types are [MISSING, NULL, "
                "BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST]"
            )
        test = ast.Function("attribute_type", (left, self.value_ref(val.constant({"S": _IS_TYPES[kind]}))))
        return ast.Not(test) if negate else test


@lru_cache(maxsize=2048)
def parse(text: str) -> Parsed:
    """The statement, its value slots and its parameter count (ValidationException when malformed)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_STATEMENT_BYTES:
        raise validation(
            "1 validation error detected: Value at 'statement' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_STATEMENT_BYTES}"
        )
    p = _Parser(text)
    statement = p.statement()
    return Parsed(statement, p.slots, p.params)

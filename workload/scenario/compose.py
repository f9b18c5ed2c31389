"""YAML composition in bounded time and memory: the node tree built once from parser events.

PyYAML's composer recurses once per nesting level (a 3000-deep `[[[...]]]` overflows the
stack), and an alias is only a reference that every later walk expands again (a 1 KB
"billion laughs" file becomes gigabytes in validation).  This composer reads the parser's
event stream (libyaml's C parser where present) in a loop and refuses, at the line it
happens on:

- nesting deeper than `DEFAULT_MAX_DEPTH` (an alias counts as deep as what it names);
- more than `DEFAULT_MAX_ALIAS_NODES` values reached through aliases;
- an alias inside the collection it names (a structure containing itself);
- a mapping key written twice (YAML keeps the last one silently);
- a second document in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import yaml

from workload.errors import Problem, ScenarioError

if TYPE_CHECKING:
    from yaml._yaml import Mark as LibyamlMark  # what CSafeLoader's events carry

    EventMark = yaml.Mark | LibyamlMark

DEFAULT_MAX_DEPTH = 100
DEFAULT_MAX_ALIAS_NODES = 10_000
MERGE_TAG = "tag:yaml.org,2002:merge"
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PathPart = str | int
Path = tuple[PathPart, ...]


def key_path(path: Path) -> str:
    """`('policies', 'shared', 'pool_maxsize')` → `policies.shared.pool_maxsize`; lists as `[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class _Open:
    """A collection whose end event has not come yet."""

    node: yaml.CollectionNode
    path: Path
    size: int = 1  # values in it, aliases expanded
    height: int = 1  # nesting levels in it, aliases expanded
    key: yaml.Node | None = None  # a mapping key waiting for its value
    keys: dict[tuple[str, str], int] = field(default_factory=dict)  # (tag, text) -> line


class Composer:
    """Builds one document's node tree from `loader`'s events; `compose()` returns its root."""

    def __init__(self, loader: yaml.SafeLoader, file: str, max_depth: int = DEFAULT_MAX_DEPTH,
                 max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES) -> None:
        self.loader, self.file = loader, file
        self.max_depth, self.max_alias_nodes = max_depth, max_alias_nodes
        self.anchors: dict[str, yaml.Node] = {}
        self.extent: dict[int, tuple[int, int]] = {}  # id(node) -> (size, height), once closed
        self.stack: list[_Open] = []
        self.via_aliases = 0
        self.root: yaml.Node | None = None
        self.duplicates: list[Problem] = []

    def compose(self) -> yaml.Node | None:
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        while not loader.check_event(yaml.DocumentEndEvent):
            self._step(loader.get_event())
        loader.get_event()
        if not loader.check_event(yaml.StreamEndEvent):
            self._fail(loader.get_event().start_mark, "the file holds a second YAML document",
                       "keep one document: remove the second '---' line and what follows it")
        if self.duplicates:
            raise ScenarioError(self.duplicates)
        return self.root

    def _step(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.AliasEvent):
            self._alias(event)
        elif isinstance(event, yaml.ScalarEvent):
            tag = event.tag if event.tag not in (None, "!") else \
                self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            # typeshed's nodes accept only yaml.Mark, but with libyaml they get (and hold) its Mark
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]
                                   style=event.style)
            self._anchor(event, node)
            self._attach(node, 1, 1)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self._open(event)
        elif isinstance(event, yaml.CollectionEndEvent):
            self._close(event)

    def _open(self, event: yaml.CollectionStartEvent) -> None:
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        tag = event.tag if event.tag not in (None, "!") else self.loader.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)  # type: ignore[arg-type]  # as above
        path = self._attach(node, 0, 0)
        if len(self.stack) + 1 > self.max_depth:
            self._fail(event.start_mark, f"the values are nested more than {self.max_depth} levels deep",
                       "flatten the structure (see 'Input limits' in docs/scenario-format.md)", path)
        self._anchor(event, node)
        self.stack.append(_Open(node, path))

    def _close(self, event: yaml.Event) -> None:
        done = self.stack.pop()
        done.node.end_mark = event.end_mark
        self.extent[id(done.node)] = (done.size, done.height)
        if self.stack:
            self._grow(done.size, done.height)

    def _alias(self, event: yaml.AliasEvent) -> None:
        node = self.anchors.get(event.anchor) if event.anchor is not None else None
        if node is None:
            self._fail(event.start_mark, f"alias '*{event.anchor}' names no anchor",
                       f"define '&{event.anchor}' on a value before this alias")
        if any(o.node is node for o in self.stack):
            self._fail(event.start_mark, f"alias '*{event.anchor}' is inside the value it names "
                       "(a structure that contains itself)", "point the alias at a value defined outside this one")
        size, height = self.extent.get(id(node), (1, 1))
        self.via_aliases += size
        if self.via_aliases > self.max_alias_nodes:
            self._fail(event.start_mark, f"aliases expand to more than {self.max_alias_nodes:,} values",
                       "use fewer or smaller aliases (see 'Input limits' in docs/scenario-format.md)")
        if len(self.stack) + height - 1 > self.max_depth:
            self._fail(event.start_mark, f"the values are nested more than {self.max_depth} levels deep "
                       f"(through alias '*{event.anchor}')", "flatten the structure")
        self._attach(node, size, height)

    def _anchor(self, event: yaml.NodeEvent, node: yaml.Node) -> None:
        if event.anchor is not None:
            self.anchors[event.anchor] = node

    def _attach(self, node: yaml.Node, size: int, height: int) -> Path:
        """Add `node` to the open collection; returns its key path."""
        if not self.stack:
            self.root = node
            return ()
        parent = self.stack[-1]
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
            path = (*parent.path, len(parent.node.value) - 1)
        elif parent.key is None:
            parent.key = node
            self._check_unique(parent, node)
            path = (*parent.path, str(node.value) if isinstance(node, yaml.ScalarNode) else "?")
        else:
            key, parent.key = parent.key, None
            parent.node.value.append((key, node))
            path = (*parent.path, str(key.value) if isinstance(key, yaml.ScalarNode) else "?")
        self._grow(size, height)
        return path

    def _grow(self, size: int, height: int) -> None:
        parent = self.stack[-1]
        parent.size += size
        parent.height = max(parent.height, height + 1)

    def _check_unique(self, parent: _Open, key: yaml.Node) -> None:
        if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
            return
        line = key.start_mark.line + 1
        first = parent.keys.get((key.tag, key.value))
        if first is None:
            parent.keys[(key.tag, key.value)] = line
        else:
            self.duplicates.append(Problem(
                self.file, line, key_path((*parent.path, str(key.value))),
                f"duplicate key '{key.value}': already written on line {first} "
                "(YAML would silently keep only the last one)",
                "merge the two into one key, or remove one of them"))

    def _fail(self, mark: EventMark | None, what: str, fix: str, path: Path | None = None) -> NoReturn:
        key = key_path(path if path is not None else self._path())
        raise ScenarioError([Problem(self.file, mark.line + 1 if mark is not None else None, key, what, fix)])

    def _path(self) -> Path:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.node, yaml.SequenceNode):
            return (*top.path, len(top.node.value))
        key = top.key
        return (*top.path, str(key.value)) if isinstance(key, yaml.ScalarNode) else top.path

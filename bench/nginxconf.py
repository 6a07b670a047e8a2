"""Nginx's configuration syntax, read and written back: directives, their arguments
and their blocks. Enough to take a block out of a rendered config (the app's vhost)
and put it in another; arguments keep their quotes, comments are dropped.

    conf = parse(text)                  # [Directive, ...]
    location = find(conf, "server", "location /")
    print(dump([location]))
"""

from dataclasses import dataclass, field


@dataclass
class Directive:
    name: str
    args: list = field(default_factory=list)
    block: list | None = None  # the directives inside { }; None for `name args;`


def tokens(text):
    """Nginx's tokens: words (quotes kept as written), "{", "}" and ";"."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":  # a comment, to the end of the line
            end = text.find("\n", i)
            i = len(text) if end == -1 else end
        elif ch in "{};":
            yield ch
            i += 1
        else:
            start, i = i, word_end(text, i)
            yield text[start:i]


def word_end(text, i):
    """Where the word starting at i ends: at a space, "{", "}" or ";" outside quotes
    (a backslash escapes the next character; ${name} is a variable, not a block)."""
    quote = None
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "$" and text.startswith("{", i + 1):
            i = text.index("}", i) + 1
            continue
        elif ch.isspace() or ch in "{};":
            break
        i += 1
    if quote:
        raise ValueError(f"unclosed {quote} in the Nginx config")
    return i


def parse(text):
    """The directives of a config file, blocks nested."""
    stack = [[]]
    words = []
    for token in tokens(text):
        if token == ";":
            if not words:
                raise ValueError("a ';' with no directive in the Nginx config")
            stack[-1].append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            if not words:
                raise ValueError("a '{' with no directive in the Nginx config")
            directive = Directive(words[0], words[1:], [])
            stack[-1].append(directive)
            stack.append(directive.block)
            words = []
        elif token == "}":
            if words or len(stack) == 1:
                raise ValueError("an unexpected '}' in the Nginx config")
            stack.pop()
        else:
            words.append(token)
    if words or len(stack) != 1:
        raise ValueError("the Nginx config ends inside a directive or a block")
    return stack[0]


def dump(directives, indent=0):
    """Directives as Nginx reads them, four spaces per level."""
    pad = "    " * indent
    lines = []
    for directive in directives:
        head = " ".join([directive.name, *directive.args])
        if directive.block is None:
            lines.append(f"{pad}{head};")
        else:
            lines.append(f"{pad}{head} {{")
            if directive.block:
                lines.append(dump(directive.block, indent + 1))
            lines.append(f"{pad}}}")
    return "\n".join(lines)


def matches(directive, wanted):
    """Does the directive match `wanted`, its name then maybe its first arguments
    ("location /", "upstream hello_app")?"""
    name, *args = wanted.split()
    return directive.name == name and directive.args[:len(args)] == args


def find_all(directives, *path):
    """Every directive at the end of path, one pattern (see matches) per level."""
    found = [d for d in directives if matches(d, path[0])]
    if len(path) == 1:
        return found
    return [inner for d in found if d.block for inner in find_all(d.block, *path[1:])]


def find(directives, *path):
    """The first directive at the end of path, or None."""
    found = find_all(directives, *path)
    return found[0] if found else None


def walk(directives):
    """Every directive, blocks' contents included."""
    for directive in directives:
        yield directive
        if directive.block:
            yield from walk(directive.block)

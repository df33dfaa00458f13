"""The code a DVC stage runs, found by reading imports, and whether dvc.yaml's deps cover it.

Each stage command is `python -m stages.<name>`. The repository files that command can execute are
the import closure of `stages.<name>`: every `import` / `from ... import` anywhere in a file (module
level or inside functions), the `__init__.py` of every package on the way, and
`importlib.import_module("<literal>")`, followed file by file inside the repository. Names from outside
the repository (numpy, torch, ...) are not followed. Imports under `if TYPE_CHECKING:` do not run and
are not followed, except that `from package import Name` follows the module the package's __init__.py
takes `Name` from (a package that loads its names lazily lists them there). Not seen: attribute access
on an imported package (`import pkg; pkg.Name` of a lazily loaded name) and computed module names.

A file whose body is empty or only a docstring runs no code and is left out: when someone adds code to
it, its importers' closures change and the check asks for it.

Data deps follow params the same way: the logs, sensor blobs and maps params.yaml points each stage at
(`stages.sources.data_inputs`) are its deps, besides the outputs of other stages it reads.

    python -m flows.dvc_deps            # problems per stage; exit 1 when a stage misses code or data
    python -m flows.dvc_deps --suggest  # the code deps each stage needs (directories where whole)
    python -m flows.dvc_deps --write    # rewrite the code and data deps of dvc.yaml to exactly those
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def module_files(root: Path, module: str) -> list[Path] | None:
    """The repository files Python executes for `import <module>`: each package's __init__.py on the
    way, then the module itself. None when the module is not in the repository."""
    parts = module.split(".")
    files: list[Path] = []
    for i in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:i])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif i == len(parts) and base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
        else:
            return None
    return files


def _package(root: Path, path: Path) -> list[str]:
    """The package a file belongs to (for relative imports): a/b/c.py and a/b/__init__.py -> [a, b]."""
    return list(path.relative_to(root).parts[:-1])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(tree: ast.AST, type_checking: bool):
    """ast.walk, leaving out the bodies of `if TYPE_CHECKING:` unless type_checking is True."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


@dataclass(frozen=True)
class _Import:
    module: str  # the module imported (its packages' __init__.py run too)
    names: tuple[str, ...] = ()  # `from module import names`: each a submodule or a name of the module


def _imports(root: Path, path: Path, tree: ast.AST, type_checking: bool = False) -> list[_Import]:
    out: list[_Import] = []
    for node in _walk(tree, type_checking):
        if isinstance(node, ast.Import):
            out.extend(_Import(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package(root, path)
                keep = len(package) - (node.level - 1)
                if keep < 0:
                    continue
                base = ".".join(package[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                out.append(_Import(base, tuple(a.name for a in node.names if a.name != "*")))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and _is_import_module(node.func)):
            out.append(_Import(node.args[0].value))
    return out


def _binding_module(root: Path, init: Path, name: str) -> str | None:
    """The module a package's __init__.py takes `name` from (`from x import name`), wherever the
    import sits: a package that loads its names lazily lists them under `if TYPE_CHECKING:`."""
    for imp in _imports(root, init, ast.parse(init.read_text()), type_checking=True):
        if name in imp.names:
            return imp.module
    return None


def _inert(tree: ast.Module) -> bool:
    """No statement besides a docstring: importing the file runs nothing."""
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return not body


def file_imports(root: Path, path: Path) -> set[Path]:
    """The repository files one file's imports execute directly (not transitively)."""
    root = root.resolve()
    out: set[Path] = set()
    for imp in _imports(root, path, ast.parse(path.read_text(), filename=str(path))):
        files = module_files(root, imp.module)
        if files is None:
            continue
        out.update(files)
        for name in imp.names:
            sub = module_files(root, f"{imp.module}.{name}")
            if sub is not None:
                out.update(sub)
            elif files[-1].name == "__init__.py":
                origin = _binding_module(root, files[-1], name)
                if origin is not None:
                    out.update(module_files(root, origin) or [])
    return out


def closure(root: Path, module: str) -> set[str]:
    """Repository files (posix paths relative to root) that `python -m <module>` can execute."""
    root = root.resolve()
    start = module_files(root, module)
    if start is None:
        raise ValueError(f"module {module!r} is not a file of the repository")
    seen: set[Path] = set()
    todo = list(start)
    keep: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if not _inert(ast.parse(path.read_text(), filename=str(path))):
            keep.add(path.relative_to(root).as_posix())
        todo.extend(f for f in file_imports(root, path) if f not in seen)
    return keep


def stage_module(cmd: str) -> str | None:
    """`python -m stages.x` -> `stages.x`; None for a command that is not a module run."""
    words = cmd.split()
    if len(words) >= 3 and words[0].startswith("python") and words[1] == "-m":
        return words[2]
    return None


def covers(dep: str, path: str) -> bool:
    dep = dep.rstrip("/")
    return path == dep or path.startswith(dep + "/")


def is_code_dep(root: Path, dep: str) -> bool:
    """A .py file, or a folder of the repository that holds .py files (data folders hold none)."""
    if "://" in dep or Path(dep).is_absolute() or dep.startswith(("data/", "models/")):
        return False  # outside the repository's code (a dataset is not walked)
    path = root / dep
    return dep.endswith(".py") or (path.is_dir() and any(
        "__pycache__" not in p.parts for p in path.rglob("*.py")))


def params_inputs(root: Path) -> dict[str, list[str]] | None:
    """Per stage, the data params.yaml points it at; None for a repository without params.yaml."""
    if not (root / "params.yaml").is_file():
        return None
    from drivefine_core.config import load_params
    from stages.sources import data_inputs

    return data_inputs(load_params(root / "params.yaml").data)


def _is_params_input(dep: str, outs: set[str]) -> bool:
    """A data dep that params decide: not another stage's output, or a part of the generated world."""
    from stages.sources import SYNTHETIC_ROOT

    return dep not in outs or covers(SYNTHETIC_ROOT, dep)


def _outs(stages: dict) -> set[str]:
    return {e if isinstance(e, str) else next(iter(e)) for s in stages.values() for e in s.get("outs", []) or []}


def data_problems(root: Path, dvc_yaml: str = "dvc.yaml") -> list[str]:
    """Where dvc.yaml's data deps and what params point the stages at disagree (empty when they agree)."""
    inputs = params_inputs(root)
    if inputs is None:
        return []
    stages = (yaml.safe_load((root / dvc_yaml).read_text()) or {}).get("stages", {})
    outs, problems = _outs(stages), []
    for name, spec in stages.items():
        have = [d for d in stage_deps(spec) if not is_code_dep(root, d) and _is_params_input(d, outs)]
        want = inputs.get(name, [])
        problems += [f"{name}: reads {p} (params data.*), which no dep names" for p in want if p not in have]
        problems += [f"{name}: dep {d} is not what params point it at" for d in have if d not in want]
    return problems


@dataclass
class StageCheck:
    stage: str
    module: str
    closure: set[str]
    deps: list[str]
    missing: list[str] = field(default_factory=list)  # closure files no dep covers
    unused: list[str] = field(default_factory=list)  # code deps that cover no closure file

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unused


def stage_deps(spec: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", []) or []]


def check_stages(root: Path, dvc_yaml: str = "dvc.yaml") -> list[StageCheck]:
    """Every `python -m` stage of dvc.yaml against the import closure of its module."""
    stages = (yaml.safe_load((root / dvc_yaml).read_text()) or {}).get("stages", {})
    out = []
    for name, spec in stages.items():
        module = stage_module(str(spec.get("cmd", "")))
        if module is None:
            continue
        deps = stage_deps(spec)
        files = closure(root, module)
        check = StageCheck(name, module, files, deps)
        check.missing = sorted(f for f in files if not any(covers(d, f) for d in deps))
        check.unused = [d for d in deps if is_code_dep(root, d) and not any(covers(d, f) for f in files)]
        out.append(check)
    return out


def stages_covering(root: Path, path: str, dvc_yaml: str = "dvc.yaml") -> set[str]:
    """Stages whose deps in dvc.yaml cover one file (those DVC re-runs when it changes)."""
    stages = (yaml.safe_load((root / dvc_yaml).read_text()) or {}).get("stages", {})
    return {name for name, spec in stages.items() if any(covers(d, path) for d in stage_deps(spec))}


def stages_importing(root: Path, path: str, dvc_yaml: str = "dvc.yaml") -> set[str]:
    """Stages whose import closure contains one file."""
    return {c.stage for c in check_stages(root, dvc_yaml) if path in c.closure}


def minimal_cover(root: Path, files: Iterable[str]) -> list[str]:
    """The closure as dvc deps: a folder where every non-inert .py file under it is in the closure,
    the files otherwise (so that a dep never covers code the stage does not run)."""
    files = set(files)
    root = root.resolve()

    def code_files(folder: Path) -> set[str]:
        out = set()
        for p in folder.rglob("*.py"):
            if "__pycache__" not in p.parts and not _inert(ast.parse(p.read_text())):
                out.add(p.relative_to(root).as_posix())
        return out

    result: list[str] = []
    for f in sorted(files):
        if any(covers(d, f) for d in result):
            continue
        parts = f.split("/")
        chosen = f
        for i in range(2, len(parts)):  # never a whole top-level package
            folder = "/".join(parts[:i])
            if code_files(root / folder) <= files:
                chosen = folder
                break
        result.append(chosen)
    return result


def write_deps(root: Path, dvc_yaml: str = "dvc.yaml") -> list[str]:
    """Rewrite each stage's deps in dvc.yaml: its non-code deps (data) as they were, then the minimal
    cover of its import closure. Only the `deps:` lists change; comments and layout elsewhere stay.
    Returns the stages whose deps changed."""
    path = root / dvc_yaml
    lines = path.read_text().splitlines(keepends=True)
    wanted = {c.stage: minimal_cover(root, c.closure) for c in check_stages(root, dvc_yaml)}
    inputs, outs = params_inputs(root), _outs((yaml.safe_load(path.read_text()) or {}).get("stages", {}))
    out: list[str] = []
    changed: list[str] = []
    stage: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage = stripped[:-1]
        if stage in wanted and indent == 4 and stripped == "deps:":
            out.append(line)
            i += 1
            old: list[str] = []
            item_indent = " " * 6
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > 4):
                if lines[i].strip().startswith("- "):
                    item_indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                    old.append(lines[i].strip()[2:].strip())
                i += 1
            data = [d for d in old if not is_code_dep(root, d)]
            if inputs is not None:  # other stages' outputs stay; what params decide is written anew
                data = [d for d in data if not _is_params_input(d, outs)] + inputs.get(stage, [])
            new = data + wanted[stage]
            if new != old:
                changed.append(stage)
            out.extend(f"{item_indent}- {d}\n" for d in new)
            continue
        out.append(line)
        i += 1
    path.write_text("".join(out))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--suggest", action="store_true", help="print the code deps each stage needs")
    parser.add_argument("--write", action="store_true", help="rewrite the code deps of dvc.yaml")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if args.write:
        changed = write_deps(root)
        print(f"dvc.yaml: deps rewritten for {', '.join(changed) or 'no stage'}")
        return 0
    checks = check_stages(root)
    if args.suggest:
        for c in checks:
            print(f"{c.stage}:")
            for dep in minimal_cover(root, c.closure):
                print(f"  - {dep}")
        return 0
    bad = [c for c in checks if not c.ok]
    for c in bad:
        for f in c.missing:
            print(f"{c.stage}: imports {f}, which no dep in dvc.yaml covers")
        for d in c.unused:
            print(f"{c.stage}: dep {d} holds no code the stage imports")
    data = data_problems(root)
    for line in data:
        print(line)
    return 1 if data or any(c.missing for c in bad) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Atomic writes: concurrent writers of one file never fail or tear it, and a failed write changes nothing."""

import ast
import multiprocessing
from pathlib import Path

import pytest

import model_discovery
from model_discovery.files import atomic_path, atomic_write

WRITERS, WRITES, SIZE = 4, 200, 64 * 1024


def _write_many(args: tuple[str, int]) -> None:
    """One process's writes: every byte of a write is the writer's id, so a torn file shows two ids."""
    path, writer = args
    for _ in range(WRITES):
        atomic_write(path, bytes([writer]) * SIZE)


def test_concurrent_writers_leave_one_complete_write_and_no_temp_file(tmp_path):
    target = tmp_path / "shared" / "tokens.bin"
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        pool.map(_write_many, [(str(target), w) for w in range(WRITERS)])
    data = target.read_bytes()
    assert len(data) == SIZE and data == bytes([data[0]]) * SIZE and data[0] < WRITERS
    assert [p.name for p in target.parent.iterdir()] == ["tokens.bin"]


def test_a_failing_writer_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_text_is_utf8_and_permissions_are_those_of_a_plain_open(tmp_path):
    atomic_write(tmp_path / "new" / "source.py", "α = 1")
    assert (tmp_path / "new" / "source.py").read_bytes() == "α = 1".encode()
    plain = tmp_path / "plain"
    plain.write_text("")
    assert (tmp_path / "new" / "source.py").stat().st_mode == plain.stat().st_mode


def test_the_writer_gets_a_path_of_its_own_beside_the_target(tmp_path):
    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "a.json").read_text() == "1"  # the later replace wins


# Plain writes that no reader sees half-written, and why; every other write in the package goes through
# model_discovery.files, so the UI and a run's readers never see a torn file.
PLAIN_WRITES = {
    ("cli.py", "export_slurm_cmd"): "a file the user names, written once by the command",
    ("cli.py", "eval_cmd"): "a file the user names, written once by the command",
    ("sandbox/runner.py", "_run"): "the child's inputs, written before the child starts",
    ("sandbox/zygote.py", "__init__"): "the zygote's own log, written by the zygote alone",
    ("sandbox/zygote.py", "_isolate"): "an empty mount point in a run's private tmpfs",
    ("sandbox/runner.py", "_spawn"): "the child's output streams, written by the child alone",
    ("ui/views/launch.py", "start"): "the launched run's log, appended by its own process",
    ("evolution/executors.py", "_spawn"): "a worker's log, appended by its own process",
    ("evolution/worker.py", "_verify"): "the job's design file, written before the job starts",
    ("verify/run.py", "_publish"): "a private staging folder, renamed into the cache whole",
    ("export/hf.py", "write_remote_code"): "an export folder, written once by `modis export hf`",
    ("export/hf.py", "export_hf"): "an export folder, written once by `modis export hf`",
    ("export/hf.py", "_fetch"): "a scratch folder of `modis export hf`",
    ("evals/plugin.py", "write_pth"): "a .pth file of the set-up",
    ("verify/trainer.py", "train"): "the training log, appended by the job and read after it",
}
WRITERS_CALLED = {"write_text", "write_bytes", "save_file", "copyfile", "tofile", "save"}


def _plain_writes(tree):
    """(function, line) of each call that writes a file other than a temporary path of ``atomic_path``."""
    found = []

    def visit(node, func, safe):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func, safe = node.name, set()
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                names = {n.id for n in ast.walk(item.context_expr) if isinstance(n, ast.Name)}
                if "atomic_path" in names or names & safe:
                    bound = item.optional_vars or ast.Tuple(elts=[])
                    safe |= {n.id for n in ast.walk(bound) if isinstance(n, ast.Name)}
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            mode = node.args[1] if name == "open" and len(node.args) > 1 else None
            writes = name in WRITERS_CALLED or (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax"))
            if writes and not {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & safe:
                found.append((func, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, func, safe)

    visit(tree, "<module>", set())
    return found


def test_files_a_reader_can_see_are_written_atomically():
    package = Path(model_discovery.__file__).parent
    unexpected = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel == "files.py" or "/hf_remote/" in f"/{rel}":  # the writer itself; the export's own remote code
            continue
        for func, line in _plain_writes(ast.parse(path.read_text())):
            if (rel, func) not in PLAIN_WRITES:
                unexpected.append(f"{rel}:{line} in {func}()")
    assert not unexpected, ("plain file writes (use model_discovery.files.atomic_write or atomic_path, or add the "
                            f"function to PLAIN_WRITES with why no reader can see it half-written): {unexpected}")


def test_the_plain_write_finder_sees_a_plain_write_and_passes_an_atomic_one():
    plain = ast.parse("def f(out):\n    (out / 'report.json').write_text('{}')\n")
    atomic = ast.parse("def f(out):\n    with atomic_path(out / 'm.bin') as tmp, open(tmp, 'wb') as fh:\n"
                       "        np.save(fh, 1)\n        save_file({}, str(tmp))\n")
    assert _plain_writes(plain) == [("f", 2)] and _plain_writes(atomic) == []

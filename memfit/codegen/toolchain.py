"""Compile and run generated C with the system compiler.

The compiler is ``$CC`` when set, else the first of ``cc``, ``gcc``, ``clang`` on ``PATH``.
A build compiles every source to an object (the weights only once for all variants of one
model: they are the slow part) and links one program per variant:

- ``release``: the flags of the generated Makefile;
- ``profile``: the same with ``-DMF_PROFILE`` (per-op timers);
- ``no_heap``: linked with ``malloc``/``calloc``/``realloc``/``free`` wrapped (``-Wl,--wrap``)
  by functions that abort, so any heap use by the model, the runtime or ``main.c`` kills the
  run (the C library's own start-up and stdio are not wrapped: the check is about our code);
- ``sanitize``: ``-fsanitize=address,undefined`` with ``-fno-sanitize-recover``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memfit.codegen.emit import GeneratedModel
from memfit.codegen.program import CFLAGS, LDLIBS, PROFILE_DEFINE
from memfit.errors import MemfitError

CANDIDATES = ("cc", "gcc", "clang")
_ERROR_LINES = 12

_WRAPPED = ("malloc", "calloc", "realloc", "free")


class CompilerNotFound(MemfitError):
    """No C compiler on this machine."""


class CompileError(MemfitError):
    """The C compiler rejected the generated sources (a bug in memfit's C, or the compiler)."""


class ProgramError(MemfitError):
    """The compiled program failed: crashed, was aborted by a check, or returned an error."""

    exit_code = 1


@dataclass(frozen=True)
class Compiler:
    path: str
    version: str

    @property
    def description(self) -> str:
        return f"{Path(self.path).name}: {self.version}"


def find_compiler() -> Compiler:
    """The system C compiler; CompilerNotFound (exit 2) when there is none."""
    wanted = os.environ.get("CC")
    names = (wanted,) if wanted else CANDIDATES
    for name in names:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            result = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        first = (result.stdout or result.stderr).strip().splitlines()
        return Compiler(path, first[0] if first else "unknown version")
    where = f"$CC={wanted!r} is not" if wanted else f"none of {', '.join(CANDIDATES)} is"
    raise CompilerNotFound(
        f"no C compiler found: {where} on PATH; install one (e.g. `apt install gcc`) or set CC"
    )


@dataclass(frozen=True)
class Variant:
    name: str
    compile_flags: tuple[str, ...] = ()
    link_flags: tuple[str, ...] = ()
    extra_source: Path | None = None


RELEASE = Variant("release")
PROFILE = Variant("profile", (PROFILE_DEFINE,))
NO_HEAP = Variant(
    "no_heap",
    link_flags=("-Wl," + ",".join(f"--wrap={f}" for f in _WRAPPED),),
    extra_source=Path(__file__).resolve().parent / "templates" / "no_heap.c",
)
SANITIZE = Variant(
    "sanitize",
    ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"),
    ("-fsanitize=address,undefined",),
)


@dataclass
class Build:
    """Objects and programs of one generated model, built in ``model.directory/build``."""

    model: GeneratedModel
    compiler: Compiler
    warnings: tuple[str, ...] = ()
    """Extra flags for every compile, e.g. ("-Wall", "-Wextra", "-Werror")."""
    object_cache: Path | None = None
    """Where objects of sources that are the same for every model (the runtime) are kept and
    reused, by content, flags and compiler (tests and benchmarks build many models)."""
    _objects: dict[tuple[str, tuple[str, ...]], Path] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.model.directory / "build"

    def program(self, variant: Variant = RELEASE) -> Path:
        """Compile (what is not compiled yet) and link ``variant``; returns the executable."""
        self.directory.mkdir(exist_ok=True)
        flags = (*CFLAGS, *self.warnings, *variant.compile_flags)
        sources = [self.model.directory / s for s in (*self.model.model_sources, "main.c")]
        if variant.extra_source is not None:
            sources.append(variant.extra_source)
        weights = self.model.directory / f"{self.model.name}_weights.c"
        jobs = []
        for source in sources:
            # constant data needs no instrumentation and no variant: compile it once
            source_flags = (*CFLAGS, *self.warnings) if source == weights else flags
            if (str(source), source_flags) not in self._objects:
                jobs.append((source, source_flags))
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            for key, obj in pool.map(lambda job: self._compile(*job), jobs):
                self._objects[key] = obj
        objects = [
            self._objects[(str(s), (*CFLAGS, *self.warnings) if s == weights else flags)]
            for s in sources
        ]
        executable = self.directory / f"{self.model.program}_{variant.name}"
        command = [
            self.compiler.path,
            *flags,
            "-o",
            str(executable),
            *map(str, objects),
            *variant.link_flags,
            *LDLIBS,
        ]
        _check(command, "linking")
        return executable

    def _compile(
        self, source: Path, flags: tuple[str, ...]
    ) -> tuple[tuple[str, tuple[str, ...]], Path]:
        key = (str(source), flags)
        tag = hashlib.sha1(" ".join(flags).encode()).hexdigest()[:8]
        obj = self.directory / f"{source.stem}.{tag}.o"
        shared = self.object_cache is not None and source.name not in self._model_files
        if shared:
            assert self.object_cache is not None
            digest = hashlib.sha1(source.read_bytes())
            for header in sorted(self.model.directory.glob("*.h")):
                if header.name not in self._model_files:
                    digest.update(header.read_bytes())
            digest.update(f"{self.compiler.path} {' '.join(flags)}".encode())
            obj = self.object_cache / f"{source.stem}.{digest.hexdigest()[:16]}.o"
            if obj.exists():
                return key, obj
            self.object_cache.mkdir(parents=True, exist_ok=True)
        command = [self.compiler.path, *flags, "-I", str(self.model.directory), "-c", str(source)]
        target = obj.with_suffix(f".{os.getpid()}.tmp") if shared else obj
        _check([*command, "-o", str(target)], f"compiling {source.name}")
        if shared:
            os.replace(target, obj)
        return key, obj

    @property
    def _model_files(self) -> set[str]:
        """Sources that differ from model to model."""
        name = self.model.name
        return {f"{name}.c", f"{name}.h", f"{name}_weights.c", f"{name}_weights.h", "main.c"}


def _check(command: Sequence[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        shown = "\n".join(lines[:_ERROR_LINES])
        more = len(lines) - _ERROR_LINES
        if more > 0:
            shown += f"\n... ({more} more lines)"
        raise CompileError(
            f"the C compiler failed {what} ({Path(command[0]).name}, exit {result.returncode}):"
            f"\n{shown}"
        )


@dataclass(frozen=True)
class RunResult:
    outputs: tuple[np.ndarray, ...]
    run_seconds: tuple[float, ...]
    """Wall time of every timed run (``--repeat``), in order."""
    op_seconds: tuple[tuple[float, ...], ...]
    """Profile builds: per op, its time in every run (the untimed first run first)."""


def run_program(
    executable: Path,
    model: GeneratedModel,
    inputs: Sequence[np.ndarray],
    *,
    repeat: int = 0,
    timeout: float = 3600.0,
    workdir: Path | None = None,
) -> RunResult:
    """Run a built program on ``inputs`` (the model's external layout) and read its outputs."""
    workdir = workdir or executable.parent
    files = []
    for i, (port, array) in enumerate(zip(model.inputs, inputs, strict=True)):
        data = np.ascontiguousarray(array, dtype=port.dtype)
        if data.shape != port.external_shape:
            raise ProgramError(f"input {i}: shape {data.shape}, expected {port.external_shape}")
        path = workdir / f"input{i}.bin"
        path.write_bytes(data.tobytes())
        files.append(path)
    out_files = [workdir / f"output{i}.bin" for i in range(len(model.outputs))]
    for path in out_files:
        path.unlink(missing_ok=True)
    command = [str(executable), *map(str, files + out_files)]
    if repeat:
        command += ["--repeat", str(repeat)]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ProgramError(f"{executable.name} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-_ERROR_LINES:])
        raise ProgramError(
            f"{executable.name} failed (exit {_describe_status(result.returncode)}):\n{tail}"
        )
    outputs = tuple(
        np.fromfile(path, dtype=port.dtype).reshape(port.external_shape)
        for path, port in zip(out_files, model.outputs, strict=True)
    )
    runs: list[float] = []
    ops: dict[int, list[float]] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["run_seconds"]:
            runs.append(float(fields[1]))
        elif fields[:1] == ["op_seconds"]:
            ops.setdefault(int(fields[2]), []).append(float(fields[3]))
    return RunResult(outputs, tuple(runs), tuple(tuple(ops[k]) for k in sorted(ops)))


def _describe_status(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"{code}, killed by {signal.Signals(-code).name}"
        except ValueError:
            return str(code)
    return str(code)

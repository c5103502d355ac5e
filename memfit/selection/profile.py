"""Costs of every (layer, primitive, layout) and every layout conversion, measured on this
machine by generated micro-benchmarks that run the layers as the model does, cached.

A layer's time inside the model is not its time run alone again and again: in the model, each
layer's weights were last touched a whole inference ago (a model's weights rarely fit in the
caches, and the ones that do share them with every other layer), while a layer repeated alone
finds its weights, input and workspace in the caches every time it runs. So the jobs run in
*passes*, each one the model's selectable layers in order, as one inference runs them: one pass
per (primitive, layout), running it on every layer it applies to and memfit's default kernel on
the others, and one pass of every layer's two layout conversions. Each layer of a pass has
weights of its own, so between two runs of a layer the pass touches as many weights as the
model does; the activations and workspaces share one input, one output and one workspace
buffer, as the model's arena reuses its memory, and a layer's input is read just before it
runs, as if the layer before had just written it. Every buffer starts on a cache line, as the
generated code's arena and constants do (``memfit.codegen.constants.ALIGNMENT``): some
primitives run several times slower on vectors that straddle two lines.

One C program is generated per batch of passes with a job not yet in the cache, built with the
generated code's compiler and flags (``memfit.codegen.program.CFLAGS``) against the runtime. It
runs every pass ``PASS_RUNS`` times in each of ``ROUNDS`` rounds, and a job's cost is its
fastest run over all of them (a job of several passes or layers: over all of those too): the
machines are shared, the minimum is the estimate least disturbed by other work, and the rounds
spread each job's runs over the whole program's time, so a burst of other work never covers all
of one job's runs (predictions are compared with the fastest end-to-end run). Results are cached
in a JSON file keyed by the job's shape, the compiler, the flags and a digest of the runtime's
sources and of the program (so a faster kernel, or a better way to measure it, is measured
again), and progress is shown with rich while the program runs.

int8 jobs (layers of int8 models, and conversions of int8 activations) run the primitives'
int8 versions on random int8 data with representative quantization parameters (a nonzero
input zero point, per-channel multipliers and shifts like a trained layer's): the integer
arithmetic's time does not depend on their values, so layers of one shape share one
measurement, as float layers do.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memfit.codegen.constants import ALIGNMENT
from memfit.codegen.emit import RUNTIME
from memfit.codegen.program import CFLAGS, LDLIBS
from memfit.codegen.toolchain import Compiler, ProgramError, _check, find_compiler
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.selection import primitives
from memfit.selection.pareto import DEFAULT
from memfit.selection.primitives import Choice, Geometry

ROUNDS = 3
PASS_RUNS = 2
"""Runs of every pass in each round."""
TO_NCHW, TO_NHWC = "nhwc_to_nchw", "nchw_to_nhwc"

Progress = Callable[[int, int], None]
"""Called with (pass runs done, pass runs in all: passes x rounds) as they finish."""


def default_cache_path() -> Path:
    root = os.environ.get("MEMFIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "memfit"
    )
    return Path(root) / "primitive_costs.json"


@dataclass(frozen=True)
class ConvJob:
    """One primitive on one layer shape."""

    geometry: Geometry
    choice: Choice
    weights: int
    """Elements of the arranged weights."""
    workspace: int
    """Bytes."""
    int8: bool = False

    @property
    def key(self) -> str:
        return f"conv {self.geometry.key} {self.choice.label}{' s8' if self.int8 else ''}"


@dataclass(frozen=True)
class ConversionJob:
    """One layout conversion of an [n, h, w, c] float or int8 activation."""

    shape: tuple[int, int, int, int]
    direction: str
    int8: bool = False

    @property
    def key(self) -> str:
        return f"{self.direction} {'x'.join(map(str, self.shape))}{' s8' if self.int8 else ''}"


Job = ConvJob | ConversionJob


def conv_job(op: Op, choice: Choice) -> ConvJob:
    return ConvJob(
        primitives.geometry(op),
        choice,
        int(primitives.arrange_weights(op, choice).size),
        primitives.workspace_bytes(op, choice),
        primitives.layer_dtype(op) is DType.INT8,
    )


def conversion_job(tensor: Tensor, direction: str) -> ConversionJob:
    n, h, w, c = tensor.shape
    return ConversionJob((n, h, w, c), direction, tensor.dtype is DType.INT8)


class CostCache:
    """Measured seconds by job key, for one compiler, flags and runtime."""

    def __init__(self, path: Path | None = None, compiler: Compiler | None = None) -> None:
        self.path = path or default_cache_path()
        self.compiler = compiler or find_compiler()
        digest = hashlib.sha1(_PROGRAM.encode())  # how the costs are measured, and
        for file in sorted(RUNTIME.iterdir()):  # the code measured
            if file.suffix in (".c", ".h"):
                digest.update(file.name.encode() + file.read_bytes())
        self.context = (
            f"{self.compiler.description} | {' '.join(CFLAGS)} | {digest.hexdigest()[:12]}"
        )
        self._entries: dict[str, dict[str, float]] = {}
        if self.path.exists():
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self._entries = {}

    def get(self, job: Job) -> float | None:
        return self._entries.get(self.context, {}).get(job.key)

    def put(self, results: Iterable[tuple[Job, float]]) -> None:
        table = self._entries.setdefault(self.context, {})
        for job, seconds in results:
            table[job.key] = seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self._entries, indent=0, sort_keys=True))
        os.replace(temporary, self.path)


class ProfilingTimeout(Exception):
    """The micro-benchmarks did not finish by their deadline; the passes that did are cached,
    so the next run goes on from there."""


def measure(
    passes: Sequence[Sequence[Job]],
    cache: CostCache,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> dict[str, float]:
    """Seconds of every job of ``passes`` (key -> seconds). A pass with a job the cache does not
    have runs whole (its jobs' times depend on the pass around them), and all its jobs' times
    are cached. Raises ProfilingTimeout when ``time.monotonic()`` passes ``deadline`` before
    every missing pass has run."""
    passes = [list(p) for p in passes if p]
    missing = [p for p in passes if any(cache.get(job) is None for job in p)]
    total = len(passes) * ROUNDS
    done = (len(passes) - len(missing)) * ROUNDS
    if progress is not None:
        progress(done, total)
    if missing:
        if deadline is not None and time.monotonic() > deadline:
            raise ProfilingTimeout(f"{len(missing)} of {len(passes)} passes not run")
        unique = {job.key: job for p in missing for job in p}
        jobs = list(unique.values())
        index = {key: i for i, key in enumerate(unique)}
        steps = [[index[job.key] for job in p] for p in missing]
        with tempfile.TemporaryDirectory(prefix="memfit-profile-") as scratch:
            program = _build(jobs, steps, Path(scratch), cache.compiler)
            if deadline is not None and time.monotonic() > deadline:
                raise ProfilingTimeout("the micro-benchmarks were built after the deadline")
            for finished in _run(program, jobs, deadline):
                if finished:  # the last round of a pass: its jobs' costs so far
                    cache.put(finished)
                done += 1
                if progress is not None:
                    progress(done, total)
    return {job.key: cache.get(job) for p in passes for job in p}  # type: ignore[misc]


# ---- the generated micro-benchmark -------------------------------------------------------------


def _conv_entry(job: ConvJob) -> str:
    g = job.geometry
    fields = [*vars(g).values()]
    default = 1 if job.choice.primitive == "default" else 0
    function = primitives.PRIMITIVES[job.choice.primitive].c_function(job.choice.layout, job.int8)
    functions = (
        "NULL, NULL" if default else (f"NULL, {function}" if job.int8 else f"{function}, NULL")
    )
    x_elements = g.n * g.h * g.w * g.c
    y_elements = g.n * g.oh * g.ow * g.m
    return (
        f"    {{0, {int(job.int8)}, {default}, {functions}, "
        f"{{{', '.join(map(str, fields))}, {g.c}, {g.m}}}, "
        f"{x_elements}, {job.weights}, {y_elements}, {job.workspace}}},"
    )


def _conversion_entry(job: ConversionJob) -> str:
    n, h, w, c = job.shape
    kind = 2 if job.direction == TO_NCHW else 3
    geometry = ", ".join(map(str, [n, h, w, c, *[0] * 12, c, c]))
    return (
        f"    {{{kind}, {int(job.int8)}, 0, NULL, NULL, {{{geometry}}}, {n * h * w * c}, 0, 0, 0}},"
    )


_PROGRAM = r"""/* generated by memfit.selection.profile: layers timed in passes */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memfit_runtime.h"
#include "mf_primitives.h"

typedef void (*primitive_fn)(const float*, const float*, const float*, float*,
                             const mf_prim_conv*, const mf_range_f32*, float*);
typedef void (*primitive_s8_fn)(const int8_t*, const int8_t*, const int32_t*, int8_t*,
                                const mf_prim_conv*, const mf_requant_s8*, void*);
typedef struct {
    int kind;       /* 0: convolution, 2: NHWC -> NCHW, 3: NCHW -> NHWC */
    int int8;       /* int8 layer or activation (else float32) */
    int is_default; /* mf_conv2d_f32 / mf_conv2d_s8 */
    primitive_fn fn;
    primitive_s8_fn fn_s8;
    mf_prim_conv p;
    size_t x, w, y, workspace_bytes; /* elements (workspace: bytes) */
} job;

static const job jobs[] = {
@JOBS@
};
#define JOBS (sizeof jobs / sizeof jobs[0])

/* The passes: the job of every step (a layer of the model, in order), pass after pass. */
static const int steps[] = {@STEPS@};
static const int pass_start[] = {@PASS_START@}; /* and the end of the last */
#define PASSES (sizeof pass_start / sizeof pass_start[0] - 1)
#define LINE @ALIGNMENT@

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static size_t line_up(size_t bytes) {
    return (bytes + LINE - 1) / LINE * LINE;
}

/* `bytes` starting on a cache line, holding random floats in [-1, 1) (read as int8 or int32
 * by int8 jobs: random values) */
static unsigned char* region(size_t bytes, unsigned seed) {
    unsigned char* b = malloc(bytes + LINE);
    if (b == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    b += LINE - (uintptr_t)b % LINE;
    for (size_t i = 0; i + sizeof(float) <= bytes; i += sizeof(float)) {
        seed = seed * 1103515245u + 12345u;
        const float v = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
        memcpy(b + i, &v, sizeof v);
    }
    return b;
}

/* Reads `bytes` of b, so that they are in the caches as far as they fit. */
static void touch(const unsigned char* b, size_t bytes) {
    static volatile unsigned char sink;
    unsigned char sum = 0;
    for (size_t i = 0; i < bytes; i += LINE) sum ^= b[i];
    sink = sum;
}

static size_t element_bytes(const job* j) {
    return j->int8 ? 1 : sizeof(float);
}

/* Bytes of a step's own constants: its weights, then its bias, each on a line of its own. */
static size_t constant_bytes(const job* j) {
    return j->kind == 0 ? line_up(j->w * element_bytes(j)) + line_up((size_t)j->p.m * 4) : 0;
}

/* Representative int8 requantization: per-channel multipliers and shifts of a trained
 * layer's magnitude, nonzero zero points, a ReLU clamp. */
static int32_t multipliers[@CHANNELS@], shifts[@CHANNELS@];

static void run(const job* j, const void* x, const void* w, const void* bias, void* y,
                void* ws) {
    const mf_range_f32 act = {0.0f, INFINITY, MF_FN_NONE};
    const mf_requant_s8 q = {-3, 0, -128, {-128, 127}, multipliers, shifts};
    const mf_prim_conv* p = &j->p;
    if (j->kind == 2 && j->int8) {
        mf_nhwc_to_nchw_s8(x, p->n, p->h, p->w, p->c, p->c, y);
    } else if (j->kind == 3 && j->int8) {
        mf_nchw_to_nhwc_s8(x, p->n, p->h, p->w, p->c, y, p->c);
    } else if (j->kind == 2) {
        mf_nhwc_to_nchw_f32(x, p->n, p->h, p->w, p->c, p->c, y);
    } else if (j->kind == 3) {
        mf_nchw_to_nhwc_f32(x, p->n, p->h, p->w, p->c, y, p->c);
    } else if (j->is_default) {
        const mf_view xv = {p->n, p->h, p->w, p->c, p->h * p->w * p->c, p->w * p->c, p->c};
        const mf_view yv = {p->n, p->oh, p->ow, p->m, p->oh * p->ow * p->m, p->ow * p->m, p->m};
        const mf_conv c = {p->kh, p->kw, p->stride_h, p->stride_w, p->dilation_h,
                           p->dilation_w, p->pad_top, p->pad_left, p->groups, 1};
        if (j->int8) {
            mf_conv2d_s8(x, &xv, w, bias, y, &yv, &c, &q, ws);
        } else {
            mf_conv2d_f32(x, &xv, w, bias, y, &yv, &c, &act, ws);
        }
    } else if (j->int8) {
        j->fn_s8(x, w, bias, y, p, &q, ws);
    } else {
        j->fn(x, w, bias, y, p, &act, ws);
    }
}

int main(void) {
    for (int32_t o = 0; o < @CHANNELS@; o++) {
        multipliers[o] = 1518500250 + 7919 * o;
        shifts[o] = -8 - o % 3;
    }
    /* one input, one output and one workspace buffer for every job, as the model's arena
     * reuses its memory; the largest pass's constants */
    size_t x_bytes = 1, y_bytes = 1, ws_bytes = 1, constants = 1;
    for (size_t i = 0; i < JOBS; i++) {
        const job* j = &jobs[i];
        const size_t out = j->kind == 0 ? j->y : j->x;
        if (j->x * element_bytes(j) > x_bytes) x_bytes = j->x * element_bytes(j);
        if (out * element_bytes(j) > y_bytes) y_bytes = out * element_bytes(j);
        if (j->workspace_bytes > ws_bytes) ws_bytes = j->workspace_bytes;
    }
    for (size_t pass = 0; pass < PASSES; pass++) {
        size_t bytes = 0;
        for (int s = pass_start[pass]; s < pass_start[pass + 1]; s++) {
            bytes += constant_bytes(&jobs[steps[s]]);
        }
        if (bytes > constants) constants = bytes;
    }
    unsigned char* x = region(x_bytes, 1u);
    unsigned char* y = region(y_bytes, 4u);
    unsigned char* ws = region(ws_bytes, 5u);
    unsigned char* w = region(constants, 2u);
    static double best[JOBS];
    for (size_t i = 0; i < JOBS; i++) best[i] = INFINITY;
    for (int round = 0; round < @ROUNDS@; round++) {
        for (size_t pass = 0; pass < PASSES; pass++) {
            for (int r = 0; r < @RUNS@; r++) {
                size_t offset = 0;
                for (int s = pass_start[pass]; s < pass_start[pass + 1]; s++) {
                    const job* j = &jobs[steps[s]];
                    const unsigned char* weights = w + offset;
                    const unsigned char* bias = weights + line_up(j->w * element_bytes(j));
                    offset += constant_bytes(j);
                    touch(x, j->x * element_bytes(j)); /* as the layer before wrote it */
                    const double start = now();
                    run(j, x, weights, bias, y, ws);
                    const double took = now() - start;
                    if (took < best[steps[s]]) best[steps[s]] = took;
                }
            }
            if (round + 1 == @ROUNDS@) {
                for (int s = pass_start[pass]; s < pass_start[pass + 1]; s++) {
                    printf("job %d %.9e\n", steps[s], best[steps[s]]);
                }
            }
            printf("pass %d %zu\n", round, pass);
            fflush(stdout);
        }
    }
    return 0;
}
"""


def _source(jobs: Sequence[Job], steps: Sequence[Sequence[int]]) -> str:
    """The program running ``steps`` (per pass, the index in ``jobs`` of each layer's job)."""
    entries = [_conv_entry(j) if isinstance(j, ConvJob) else _conversion_entry(j) for j in jobs]
    starts = [0]
    for pass_steps in steps:
        starts.append(starts[-1] + len(pass_steps))
    channels = max([j.geometry.m for j in jobs if isinstance(j, ConvJob)], default=1)
    text = _PROGRAM
    for field, value in (
        ("JOBS", "\n".join(entries)),
        ("STEPS", ", ".join(str(i) for pass_steps in steps for i in pass_steps)),
        ("PASS_START", ", ".join(map(str, starts))),
        ("ALIGNMENT", str(ALIGNMENT)),
        ("CHANNELS", str(channels)),
        ("ROUNDS", str(ROUNDS)),
        ("RUNS", str(PASS_RUNS)),
    ):
        text = text.replace(f"@{field}@", value)
    return text


def _build(
    jobs: Sequence[Job], steps: Sequence[Sequence[int]], directory: Path, compiler: Compiler
) -> Path:
    source = directory / "profile.c"
    source.write_text(_source(jobs, steps))
    runtime = [str(f) for f in sorted(RUNTIME.glob("*.c"))]
    program = directory / "profile"
    command = [compiler.path, *CFLAGS, "-I", str(RUNTIME), "-o", str(program), str(source)]
    _check([*command, *runtime, *LDLIBS], "building the primitive micro-benchmarks")
    return program


def _run(
    program: Path, jobs: Sequence[Job], deadline: float | None = None
) -> Iterable[list[tuple[Job, float]]]:
    """As each pass finishes a round: the costs of its jobs if it was the last round (the
    fastest run of each so far), else nothing. Past ``deadline`` the program is stopped and
    ProfilingTimeout raised."""
    with subprocess.Popen(
        [str(program)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        timer = None
        if deadline is not None:  # a round can be long and silent: stop it from outside
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), process.kill)
            timer.start()
        try:
            finished: list[tuple[Job, float]] = []
            for line in process.stdout:
                fields = line.split()
                if fields[:1] == ["job"]:
                    finished.append((jobs[int(fields[1])], float(fields[2])))
                elif fields[:1] == ["pass"]:
                    yield finished
                    finished = []
            error = process.stderr.read() if process.stderr is not None else ""
            status = process.wait()
        finally:
            if timer is not None:
                timer.cancel()
        if deadline is not None and time.monotonic() > deadline and status != 0:
            raise ProfilingTimeout("stopped at the deadline")
        if status != 0:
            raise ProgramError(f"the primitive micro-benchmarks failed: {error.strip()}")


# ---- a model's cost table ----------------------------------------------------------------------


@dataclass(frozen=True)
class LayerCosts:
    """Measured seconds of one layer: per choice, and its input/output conversions."""

    op: str
    seconds: dict[Choice, float]
    to_nchw_input: float
    """Converting the layer's input NHWC -> NCHW."""
    to_nhwc_output: float
    """Converting its output NCHW -> NHWC."""


def selectable_ops(graph: Graph) -> list[Op]:
    """The ops primitive selection chooses for: float32 or int8 conv2d with constant weights."""
    return [op for op in graph.ops if op.kind == "conv2d" and primitives.choices(op)]


def profiling_passes(graph: Graph) -> list[list[Job]]:
    """The passes that measure every selectable layer of ``graph``: per (primitive, layout),
    the layers in order, each running it where it applies and memfit's default kernel
    elsewhere; then every layer's input and output conversions, in order."""
    ops = selectable_ops(graph)
    every = sorted({c for op in ops for c in primitives.choices(op)} - {DEFAULT})
    found: list[list[Job]] = [[conv_job(op, DEFAULT) for op in ops]]
    for choice in every:
        found.append(
            [conv_job(op, choice if choice in primitives.choices(op) else DEFAULT) for op in ops]
        )
    conversions: list[Job] = []
    for op in ops:
        x = op.inputs[0]
        assert x is not None
        conversions += [conversion_job(x, TO_NCHW), conversion_job(op.output, TO_NHWC)]
    return [*found, conversions]


def profile_graph(
    graph: Graph,
    cache: CostCache | None = None,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> dict[str, LayerCosts]:
    """Measured costs of every selectable layer of ``graph`` (op name -> costs); raises
    ProfilingTimeout past ``deadline`` (``time.monotonic()``), see ``measure``."""
    seconds = measure(profiling_passes(graph), cache or CostCache(), progress, deadline)
    costs = {}
    for op in selectable_ops(graph):
        x = op.inputs[0]
        assert x is not None
        costs[op.name] = LayerCosts(
            op.name,
            {c: seconds[conv_job(op, c).key] for c in primitives.choices(op)},
            seconds[conversion_job(x, TO_NCHW).key],
            seconds[conversion_job(op.output, TO_NHWC).key],
        )
    return costs


def rich_progress(description: str) -> tuple[Callable[[], None], Progress]:
    """(stop, progress) for a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(description, total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar.stop, update

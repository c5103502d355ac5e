"""Costs of every (layer, primitive, layout) and every layout conversion, measured on this
machine by generated micro-benchmarks, cached.

One C program is generated per batch of measurements not yet in the cache: a table of jobs
(each a primitive call on one layer's shape, or a conversion of one activation shape), built
with the generated code's compiler and flags (``memfit.codegen.program.CFLAGS``) against the
runtime. The program goes through the whole table ``ROUNDS`` times; in each round a job runs
once to warm up, then until it has run ``MIN_REPEATS`` times and at least ``MIN_SECONDS``. Its
cost is its fastest run over all rounds: the machines are shared, the minimum is the estimate
least disturbed by other work, and the rounds spread each job's runs over the whole program's
time, so a burst of other work never covers all of one job's runs (predictions are compared
with the fastest end-to-end run). Results are cached in a JSON file keyed by the job's shape,
the compiler, the flags and a digest of the runtime's sources (so a faster kernel is measured
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memfit.codegen.emit import RUNTIME
from memfit.codegen.program import CFLAGS, LDLIBS
from memfit.codegen.toolchain import Compiler, ProgramError, _check, find_compiler
from memfit.ir.core import Graph, Op, Tensor
from memfit.ir.dtypes import DType
from memfit.selection import primitives
from memfit.selection.primitives import Choice, Geometry

ROUNDS = 3
MIN_REPEATS = 2
MIN_SECONDS = 0.02
MAX_REPEATS = 25
TO_NCHW, TO_NHWC = "nhwc_to_nchw", "nchw_to_nhwc"

Progress = Callable[[int, int], None]
"""Called with (measurements done, measurements in all: jobs x rounds) as they finish."""


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
        digest = hashlib.sha1()
        for file in sorted(RUNTIME.iterdir()):
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


def measure(
    jobs: Sequence[Job], cache: CostCache, progress: Progress | None = None
) -> dict[str, float]:
    """Seconds of every job (key -> seconds), measuring those the cache does not have."""
    unique = {job.key: job for job in jobs}
    missing = [job for job in unique.values() if cache.get(job) is None]
    total = len(unique) * ROUNDS
    done = (len(unique) - len(missing)) * ROUNDS
    if progress is not None:
        progress(done, total)
    if missing:
        with tempfile.TemporaryDirectory(prefix="memfit-profile-") as scratch:
            program = _build(missing, Path(scratch), cache.compiler)
            for job, seconds in _run(program, missing):
                if job is not None and seconds is not None:  # its last round: its cost
                    cache.put([(job, seconds)])
                done += 1
                if progress is not None:
                    progress(done, total)
    return {key: cache.get(job) for key, job in unique.items()}  # type: ignore[misc]


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


_PROGRAM = r"""/* generated by memfit.selection.profile: times primitives and conversions */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* elements of `size` bytes: random floats in [-1, 1) (size 4) or random bytes (size 1) */
static void* buffer(size_t elements, size_t size, unsigned seed) {
    void* b = malloc((elements ? elements : 1) * size);
    if (b == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < elements; i++) {
        seed = seed * 1103515245u + 12345u;
        if (size == 1) {
            ((int8_t*)b)[i] = (int8_t)(seed >> 16);
        } else {
            ((float*)b)[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
        }
    }
    return b;
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
    const size_t count = sizeof jobs / sizeof jobs[0];
    for (int32_t o = 0; o < @CHANNELS@; o++) {
        multipliers[o] = 1518500250 + 7919 * o;
        shifts[o] = -8 - o % 3;
    }
    static double best[sizeof jobs / sizeof jobs[0]];
    for (size_t i = 0; i < count; i++) best[i] = INFINITY;
    for (int pass = 0; pass < @ROUNDS@; pass++)
    for (size_t i = 0; i < count; i++) {
        const job* j = &jobs[i];
        const size_t size = j->int8 ? 1 : sizeof(float);
        void* x = buffer(j->x, size, 1u + (unsigned)i);
        void* w = buffer(j->w, size, 2u);
        void* bias = buffer((size_t)j->p.m, j->int8 ? sizeof(int32_t) : sizeof(float), 3u);
        void* y = buffer(j->kind == 0 ? j->y : j->x, size, 4u);
        void* ws = j->workspace_bytes ? malloc(j->workspace_bytes) : NULL;
        if (j->workspace_bytes && ws == NULL) {
            fprintf(stderr, "out of memory\n");
            return 2;
        }
        int runs = 0;
        double total = 0.0;
        run(j, x, w, bias, y, ws); /* warm-up */
        while (runs < @MAX@ && (runs < @MIN@ || total < @SECONDS@)) {
            const double start = now();
            run(j, x, w, bias, y, ws);
            const double took = now() - start;
            if (took < best[i]) best[i] = took;
            total += took;
            runs++;
        }
        if (pass + 1 < @ROUNDS@) {
            printf("round %d job %zu\n", pass, i);
        } else {
            printf("job %zu %.9e\n", i, best[i]);
        }
        fflush(stdout);
        free(x);
        free(w);
        free(bias);
        free(y);
        free(ws);
    }
    return 0;
}
"""


def _build(jobs: Sequence[Job], directory: Path, compiler: Compiler) -> Path:
    entries = [_conv_entry(j) if isinstance(j, ConvJob) else _conversion_entry(j) for j in jobs]
    source = directory / "profile.c"
    text = _PROGRAM.replace("@JOBS@", "\n".join(entries)).replace("@MAX@", str(MAX_REPEATS))
    text = text.replace("@MIN@", str(MIN_REPEATS)).replace("@SECONDS@", repr(MIN_SECONDS))
    text = text.replace("@ROUNDS@", str(ROUNDS))
    channels = max([j.geometry.m for j in jobs if isinstance(j, ConvJob)], default=1)
    text = text.replace("@CHANNELS@", str(channels))
    source.write_text(text)
    runtime = [str(f) for f in sorted(RUNTIME.glob("*.c"))]
    program = directory / "profile"
    command = [compiler.path, *CFLAGS, "-I", str(RUNTIME), "-o", str(program), str(source)]
    _check([*command, *runtime, *LDLIBS], "building the primitive micro-benchmarks")
    return program


def _run(program: Path, jobs: Sequence[Job]) -> Iterable[tuple[Job | None, float | None]]:
    """(job, seconds) as each job's last round finishes, (None, None) as one of its earlier
    rounds does."""
    with subprocess.Popen(
        [str(program)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            fields = line.split()
            if fields[:1] == ["job"]:
                yield jobs[int(fields[1])], float(fields[2])
            elif fields[:1] == ["round"]:
                yield None, None
        error = process.stderr.read() if process.stderr is not None else ""
        if process.wait() != 0:
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


def profile_graph(
    graph: Graph, cache: CostCache | None = None, progress: Progress | None = None
) -> dict[str, LayerCosts]:
    """Measured costs of every selectable layer of ``graph`` (op name -> costs)."""
    cache = cache or CostCache()
    ops = selectable_ops(graph)
    per_op: list[tuple[Op, list[ConvJob], ConversionJob, ConversionJob]] = []
    for op in ops:
        x = op.inputs[0]
        assert x is not None
        jobs = [conv_job(op, c) for c in primitives.choices(op)]
        per_op.append((op, jobs, conversion_job(x, TO_NCHW), conversion_job(op.output, TO_NHWC)))
    every: list[Job] = []
    for _, jobs, to_nchw, to_nhwc in per_op:
        every += [*jobs, to_nchw, to_nhwc]
    seconds = measure(every, cache, progress)
    return {
        op.name: LayerCosts(
            op.name,
            {job.choice: seconds[job.key] for job in jobs},
            seconds[to_nchw.key],
            seconds[to_nhwc.key],
        )
        for op, jobs, to_nchw, to_nhwc in per_op
    }


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

/* Data movement for any element size: copy, reshape, transpose, strided slice, pad, concat.
 * Each is a walk over a box of the output with an odometer; rows whose last axis is contiguous
 * on both sides move with memcpy. */
#include <string.h>

#include "mf_internal.h"

/* A box to copy: dims and the element strides of both sides (source may be permuted). */
typedef struct {
    int32_t rank;
    int32_t dims[MF_MAX_RANK];
    int32_t x_strides[MF_MAX_RANK];
    int32_t y_strides[MF_MAX_RANK];
} box;

static int32_t box_empty(const box* b) {
    for (int32_t d = 0; d < b->rank; d++) {
        if (b->dims[d] <= 0) {
            return 1;
        }
    }
    return 0;
}

/* len elements at element strides xs and ys; constant sizes let memcpy become a move. */
static void copy_row(const char* src, int32_t xs, char* dst, int32_t ys, int32_t len,
                     int32_t elem) {
    const ptrdiff_t xb = (ptrdiff_t)xs * elem, yb = (ptrdiff_t)ys * elem;
    switch (elem) {
    case 1:
        for (int32_t i = 0; i < len; i++) {
            dst[i * yb] = src[i * xb];
        }
        break;
    case 2:
        for (int32_t i = 0; i < len; i++) {
            memcpy(dst + i * yb, src + i * xb, 2);
        }
        break;
    case 4:
        for (int32_t i = 0; i < len; i++) {
            memcpy(dst + i * yb, src + i * xb, 4);
        }
        break;
    default:
        for (int32_t i = 0; i < len; i++) {
            memcpy(dst + i * yb, src + i * xb, (size_t)elem);
        }
        break;
    }
}

/* The same box with axes of one element dropped and neighbouring axes merged where both
 * sides step over them as over one axis, so that the innermost rows are as long as they can be
 * (a channel shuffle's [.., 4, 28, 1] -> [.., 28, 4, 1] moves rows of 4, not of 1). */
static box simplified(const box* b) {
    box s;
    s.rank = 0;
    for (int32_t d = 0; d < b->rank; d++) {
        if (b->dims[d] == 1) {
            continue;
        }
        const int32_t k = s.rank - 1;
        if (k >= 0 && s.x_strides[k] == b->x_strides[d] * b->dims[d] &&
            s.y_strides[k] == b->y_strides[d] * b->dims[d]) {
            s.dims[k] *= b->dims[d];
            s.x_strides[k] = b->x_strides[d];
            s.y_strides[k] = b->y_strides[d];
            continue;
        }
        s.dims[s.rank] = b->dims[d];
        s.x_strides[s.rank] = b->x_strides[d];
        s.y_strides[s.rank] = b->y_strides[d];
        s.rank++;
    }
    return s;
}

/* y[i] = x[i] over the box; x and y point at the box's first element. */
static void copy_box(const char* x, char* y, const box* whole, int32_t elem) {
    if (box_empty(whole)) {
        return;
    }
    const box simple = simplified(whole);
    const box* b = &simple;
    if (b->rank == 0) {
        memcpy(y, x, (size_t)elem);
        return;
    }
    /* The odometer walks the axes before the last two; each step copies a plane of rows. */
    const int32_t last = b->rank - 1, len = b->dims[last];
    const int32_t xs = b->x_strides[last], ys = b->y_strides[last];
    const int32_t outer = last - 1;
    const int32_t rows = outer >= 0 ? b->dims[outer] : 1;
    const ptrdiff_t xr = outer >= 0 ? (ptrdiff_t)b->x_strides[outer] * elem : 0;
    const ptrdiff_t yr = outer >= 0 ? (ptrdiff_t)b->y_strides[outer] * elem : 0;
    int32_t index[MF_MAX_RANK] = {0};
    for (;;) {
        ptrdiff_t xo = 0, yo = 0;
        for (int32_t d = 0; d < outer; d++) {
            xo += (ptrdiff_t)index[d] * b->x_strides[d];
            yo += (ptrdiff_t)index[d] * b->y_strides[d];
        }
        const char* src = x + xo * elem;
        char* dst = y + yo * elem;
        for (int32_t r = 0; r < rows; r++) {
            if (xs == 1 && ys == 1) {
                memcpy(dst + r * yr, src + r * xr, (size_t)len * (size_t)elem);
            } else {
                copy_row(src + r * xr, xs, dst + r * yr, ys, len, elem);
            }
        }
        int32_t d = outer - 1;
        while (d >= 0 && ++index[d] == b->dims[d]) {
            index[d--] = 0;
        }
        if (d < 0) {
            return;
        }
    }
}

static box box_of(const mf_nd* v) {
    box b;
    b.rank = v->rank;
    for (int32_t d = 0; d < v->rank; d++) {
        b.dims[d] = v->dims[d];
        b.x_strides[d] = v->strides[d];
        b.y_strides[d] = v->strides[d];
    }
    return b;
}

static void with_y_strides(box* b, const mf_nd* yv) {
    for (int32_t d = 0; d < b->rank; d++) {
        b->y_strides[d] = yv->strides[d];
    }
}

void mf_copy(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, int32_t elem_size) {
    box b = box_of(xv);
    with_y_strides(&b, yv);
    copy_box((const char*)x, (char*)y, &b, elem_size);
}

void mf_transpose(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, const int32_t* perm,
                  int32_t elem_size) {
    box b = box_of(yv);
    for (int32_t d = 0; d < yv->rank; d++) {
        b.x_strides[d] = xv->strides[perm[d]];
    }
    copy_box((const char*)x, (char*)y, &b, elem_size);
}

void mf_strided_slice(const void* x, const mf_nd* xv, void* y, const mf_nd* yv,
                      const int32_t* begin, const int32_t* step, int32_t elem_size) {
    box b = box_of(yv);
    ptrdiff_t start = 0;
    for (int32_t d = 0; d < xv->rank; d++) {
        start += (ptrdiff_t)begin[d] * xv->strides[d];
        b.x_strides[d] = xv->strides[d] * step[d];
    }
    copy_box((const char*)x + start * elem_size, (char*)y, &b, elem_size);
}

void mf_pad(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, const int32_t* before,
            const void* value, int32_t elem_size) {
    /* Fill the whole output (a 0-stride source of one element), then copy x inside it. */
    box fill = box_of(yv);
    for (int32_t d = 0; d < fill.rank; d++) {
        fill.x_strides[d] = 0;
    }
    copy_box((const char*)value, (char*)y, &fill, elem_size);
    box inner = box_of(xv);
    with_y_strides(&inner, yv);
    ptrdiff_t start = 0;
    for (int32_t d = 0; d < yv->rank; d++) {
        start += (ptrdiff_t)before[d] * yv->strides[d];
    }
    copy_box((const char*)x, (char*)y + start * elem_size, &inner, elem_size);
}

void mf_concat(const void* const* xs, const mf_nd* xvs, int32_t count, int32_t axis, void* y,
               const mf_nd* yv, int32_t elem_size) {
    ptrdiff_t start = 0;
    for (int32_t i = 0; i < count; i++) {
        box b = box_of(&xvs[i]);
        with_y_strides(&b, yv);
        copy_box((const char*)xs[i], (char*)y + start * yv->strides[axis] * elem_size, &b,
                 elem_size);
        start += xvs[i].dims[axis];
    }
}

/* Row-major flat index -> offset in a view. */
static ptrdiff_t flat_offset(const mf_nd* v, int32_t flat) {
    ptrdiff_t offset = 0;
    for (int32_t d = v->rank - 1; d >= 0; d--) {
        offset += (ptrdiff_t)(flat % v->dims[d]) * v->strides[d];
        flat /= v->dims[d];
    }
    return offset;
}

static int32_t is_contiguous(const mf_nd* v) {
    int32_t expected = 1;
    for (int32_t d = v->rank - 1; d >= 0; d--) {
        if (v->dims[d] != 1 && v->strides[d] != expected) {
            return 0;
        }
        expected *= v->dims[d];
    }
    return 1;
}

void mf_reshape(const void* x, const mf_nd* xv, void* y, const mf_nd* yv, int32_t elem_size) {
    int32_t total = 1;
    for (int32_t d = 0; d < yv->rank; d++) {
        total *= yv->dims[d];
    }
    if (is_contiguous(xv) && is_contiguous(yv)) {
        memcpy(y, x, (size_t)total * (size_t)elem_size);
        return;
    }
    for (int32_t i = 0; i < total; i++) {
        memcpy((char*)y + flat_offset(yv, i) * elem_size,
               (const char*)x + flat_offset(xv, i) * elem_size, (size_t)elem_size);
    }
}

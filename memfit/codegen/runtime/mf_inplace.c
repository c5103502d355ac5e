/* Channel-wise ops in place (pooling, depthwise convolution), row by row through a ring of
 * output rows in the planner's one-channel temporary.
 *
 * The planner lets output channel c overwrite input channel c (memfit.planning.storage):
 * storing output element (n, oh, ow, c) destroys an input element of channel c only. So a
 * block of channels can be computed and stored apart from the others, and within a block an
 * output row can be stored as soon as no input row still to be read lies at or after its
 * bytes. Rows are computed in order into a ring and stored, oldest first, when that holds;
 * the ring needs room for the most rows that ever wait at once (`waiting`), which fixes how
 * many channels a block can hold in the temporary's Ho*Wo elements. With every row stored at
 * the end of its batch, as the planner assumes, blocks of one channel are the channel-by-
 * channel order the planner proved safe; wider blocks read whole cache lines. Float depthwise
 * convolution in place comes here only when a block holds a vector of channels
 * (mf_inplace_block_channels), else (and int8 always) it runs its own channel-by-channel
 * kernels (mf_conv.c). */
#include <string.h>

#include "mf_internal.h"

/* Byte positions relative to y: output row r of batch n ends (all channels) at or before a
 * position below the first byte of input row `first` of batch n. */
static int32_t row_storable(const mf_inplace* op, ptrdiff_t x_minus_y, int32_t n, int32_t r,
                            int32_t first) {
    const mf_view* xv = op->xv;
    const mf_view* yv = op->yv;
    const ptrdiff_t size = op->element_size;
    const ptrdiff_t row_end = ((ptrdiff_t)mf_view_offset(yv, n, r, yv->w - 1) + yv->c) * size;
    const ptrdiff_t unread = x_minus_y + (ptrdiff_t)mf_view_offset(xv, n, first, 0) * size;
    return row_end <= unread;
}

/* First input row output row oh reads (rows above the image are padding). */
static int32_t first_row(const mf_inplace* op, int32_t oh) {
    return mf_max_i32(oh * op->stride_h - op->pad_top, 0);
}

/* Stores the rows of [*oldest, computed] that may be stored now, oldest first (all of them at
 * the end of a batch). */
static void store_rows(const mf_inplace* op, ptrdiff_t x_minus_y, int32_t n, int32_t computed,
                       int32_t* oldest, int32_t c0, int32_t len, int32_t slots,
                       const unsigned char* ring, unsigned char* y) {
    const mf_view* yv = op->yv;
    const size_t size = (size_t)op->element_size;
    const int32_t last = computed == yv->h - 1;
    while (*oldest <= computed &&
           (last || row_storable(op, x_minus_y, n, *oldest, first_row(op, computed + 1)))) {
        if (y != NULL) {
            const unsigned char* row = ring + (size_t)(*oldest % slots) * yv->w * len * size;
            for (int32_t ow = 0; ow < yv->w; ow++) {
                memcpy(y + ((size_t)mf_view_offset(yv, n, *oldest, ow) + c0) * size,
                       row + (size_t)ow * len * size, (size_t)len * size);
            }
        }
        (*oldest)++;
    }
}

/* Rows that wait in the ring at once: a dry run of the storing order (no ring, no stores). */
static int32_t waiting_rows(const mf_inplace* op, ptrdiff_t x_minus_y) {
    int32_t waiting = 1;
    for (int32_t n = 0; n < op->yv->n; n++) {
        int32_t oldest = 0;
        for (int32_t oh = 0; oh < op->yv->h; oh++) {
            waiting = mf_max_i32(waiting, oh - oldest + 1);
            store_rows(op, x_minus_y, n, oh, &oldest, 0, 0, 1, NULL, NULL);
        }
    }
    return waiting;
}

int32_t mf_inplace_block_channels(const mf_inplace* op, const void* x, const void* y) {
    const mf_view* yv = op->yv;
    if (yv->n <= 0 || yv->h <= 0 || yv->w <= 0 || yv->c <= 0) {
        return 0;
    }
    const int32_t waiting = waiting_rows(op, (const unsigned char*)x - (const unsigned char*)y);
    return mf_max_i32(1, mf_min_i32(yv->c, yv->h / waiting));
}

void mf_channelwise_inplace(const mf_inplace* op, const void* x, void* y, void* scratch) {
    const mf_view* yv = op->yv;
    const ptrdiff_t x_minus_y = (const unsigned char*)x - (unsigned char*)y;
    int32_t most = mf_inplace_block_channels(op, x, y);
    if (most == 0) {
        return;
    }
    const int32_t waiting = waiting_rows(op, x_minus_y);
    /* Channels per block: as many as the temporary holds for `waiting` rows, a multiple of
     * op->lanes when that many fit, else in equal blocks. */
    if (most < yv->c && most >= op->lanes) {
        most -= most % op->lanes;
    }
    const int32_t blocks = (yv->c + most - 1) / most;
    const int32_t width = most % op->lanes == 0 ? most : (yv->c + blocks - 1) / blocks;
    unsigned char* ring = (unsigned char*)scratch;
    const size_t size = (size_t)op->element_size;
    for (int32_t c0 = 0; c0 < yv->c; c0 += width) {
        const int32_t len = mf_min_i32(width, yv->c - c0);
        for (int32_t n = 0; n < yv->n; n++) {
            int32_t oldest = 0;
            for (int32_t oh = 0; oh < yv->h; oh++) {
                unsigned char* row = ring + (size_t)(oh % waiting) * yv->w * len * size;
                op->compute_row(op->context, n, oh, c0, len, row);
                store_rows(op, x_minus_y, n, oh, &oldest, c0, len, waiting, ring,
                           (unsigned char*)y);
            }
        }
    }
}

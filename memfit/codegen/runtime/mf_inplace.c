/* Channel-wise ops in place (pooling, depthwise convolution): output pixels computed in order,
 * straight into the output where that is safe, else through a ring of pixels in the planner's
 * one-channel temporary.
 *
 * The planner lets output channel c overwrite input channel c (memfit.planning.storage):
 * storing output element (n, oh, ow, c) destroys an input element of channel c only. So a
 * block of channels can be computed and stored apart from the others, and within a block an
 * output pixel can be stored as soon as its bytes (all channels) end at or before the first
 * input byte a pixel still to be computed reads. Pixels go in order (batch, row, column). While
 * none waits, a run of a row's pixels whose bytes already lie below that byte is computed
 * straight into the output: a strided op's pixels after its first few, so a strided pooling in
 * a tile (ResNet's stem) runs as out of place, all channels at once. The others are computed
 * into the ring and stored, oldest first, once that holds. The ring needs room for the most
 * pixels that ever wait at once (`waiting`) and one more, which fixes how many channels a block
 * can hold in the temporary's Ho*Wo elements: with "same" padding and stride 1 pixels wait about
 * a row, so a block holds about Ho channels. With every pixel stored at the end of its batch,
 * as the planner assumes, blocks of one channel are the channel-by-channel order the planner
 * proved safe. Depthwise convolution in place comes here only when a block holds enough
 * channels (mf_inplace_block_channels), else it runs its own channel-by-channel kernels
 * (mf_conv.c). */
#include <stdint.h>
#include <string.h>

#include "mf_internal.h"

/* Byte positions are relative to y. */

/* The end of output pixel (oh, ow) of batch n, all channels. */
static ptrdiff_t pixel_end(const mf_inplace* op, int32_t n, int32_t oh, int32_t ow) {
    return ((ptrdiff_t)mf_view_offset(op->yv, n, oh, ow) + op->yv->c) * op->element_size;
}

/* The first input byte that output pixel (oh, ow) of batch n and the pixels after it read: the
 * least of their windows' first pixels (rows above the image and columns left of it are
 * padding); the next row's windows may start lower than this row's last ones. Past the last
 * row, none: every pixel of a batch may be stored at its end. */
static ptrdiff_t unread(const mf_inplace* op, ptrdiff_t x_minus_y, int32_t n, int32_t oh,
                        int32_t ow) {
    if (oh >= op->yv->h) {
        return PTRDIFF_MAX;
    }
    const int32_t ih = mf_max_i32(oh * op->stride_h - op->pad_top, 0);
    const int32_t iw = mf_max_i32(ow * op->stride_w - op->pad_left, 0);
    ptrdiff_t first = mf_view_offset(op->xv, n, ih, iw);
    if (oh + 1 < op->yv->h) {
        const int32_t next = mf_max_i32((oh + 1) * op->stride_h - op->pad_top, 0);
        const ptrdiff_t below = mf_view_offset(op->xv, n, next, 0);
        first = below < first ? below : first;
    }
    return x_minus_y + first * op->element_size;
}

/* The most pixels that wait at once, before the next pixel is computed: a dry run of the storing
 * order (pixels computed one by one, stored as soon as they may be). */
static int32_t waiting_pixels(const mf_inplace* op, ptrdiff_t x_minus_y) {
    const mf_view* yv = op->yv;
    int32_t waiting = 0;
    for (int32_t n = 0; n < yv->n; n++) {
        int32_t oldest = 0, old_h = 0, old_w = 0, q = 0;
        for (int32_t oh = 0; oh < yv->h; oh++) {
            for (int32_t ow = 0; ow < yv->w; ow++, q++) {
                const ptrdiff_t front = unread(op, x_minus_y, n, oh, ow);
                while (oldest < q && pixel_end(op, n, old_h, old_w) <= front) {
                    oldest++;
                    if (++old_w == yv->w) {
                        old_w = 0;
                        old_h++;
                    }
                }
                waiting = mf_max_i32(waiting, q - oldest);
            }
        }
    }
    return waiting;
}

int32_t mf_inplace_block_channels(const mf_inplace* op, const void* x, const void* y) {
    const mf_view* yv = op->yv;
    if (yv->n <= 0 || yv->h <= 0 || yv->w <= 0 || yv->c <= 0) {
        return 0;
    }
    const int32_t waiting = waiting_pixels(op, (const unsigned char*)x - (const unsigned char*)y);
    return mf_max_i32(1, mf_min_i32(yv->c, yv->h * yv->w / (waiting + 1)));
}

/* The ring: pixel q of the block in slot (q - base) % slots, of len channels each. */
typedef struct {
    unsigned char* slots_start;
    int32_t slots, base, c0, len;
} ring;

/* Stores the waiting pixels [*oldest, computed) of batch n whose bytes end at or before `front`,
 * oldest first. */
static void store_pixels(const mf_inplace* op, const ring* r, int32_t n, ptrdiff_t front,
                         int32_t computed, int32_t* oldest, unsigned char* y) {
    const mf_view* yv = op->yv;
    const size_t size = (size_t)op->element_size, bytes = (size_t)r->len * size;
    while (*oldest < computed) {
        const int32_t oh = *oldest / yv->w, ow = *oldest % yv->w;
        if (pixel_end(op, n, oh, ow) > front) {
            return;
        }
        memcpy(y + ((size_t)mf_view_offset(yv, n, oh, ow) + r->c0) * size,
               r->slots_start + (size_t)((*oldest - r->base) % r->slots) * bytes, bytes);
        (*oldest)++;
    }
}

/* Batch n of the block's channels: runs of pixels straight into y or into the ring. */
static void block_batch(const mf_inplace* op, ptrdiff_t x_minus_y, ring* r, int32_t n,
                        unsigned char* y) {
    const mf_view* yv = op->yv;
    const size_t size = (size_t)op->element_size;
    const int32_t pixels = yv->h * yv->w;
    int32_t q = 0, oldest = 0;
    while (q < pixels) {
        const int32_t oh = q / yv->w, ow = q % yv->w, row_end = (oh + 1) * yv->w;
        int32_t end = q;
        if (oldest == q) { /* none waits */
            const ptrdiff_t front = unread(op, x_minus_y, n, oh, ow);
            while (end < row_end && pixel_end(op, n, oh, ow + end - q) <= front) {
                end++;
            }
            r->base = q;
        }
        if (end > q) {
            op->compute_pixels(op->context, n, oh, ow, ow + end - q, r->c0, r->len,
                               y + ((size_t)mf_view_offset(yv, n, oh, ow) + r->c0) * size,
                               yv->sw);
            q = oldest = end;
            continue;
        }
        const int32_t slot = (q - r->base) % r->slots;
        end = q + mf_min_i32(row_end - q,
                             mf_min_i32(r->slots - (q - oldest), r->slots - slot));
        op->compute_pixels(op->context, n, oh, ow, ow + end - q, r->c0, r->len,
                           r->slots_start + (size_t)slot * r->len * size, r->len);
        q = end;
        store_pixels(op, r, n, unread(op, x_minus_y, n, q / yv->w, q % yv->w), q, &oldest, y);
    }
}

void mf_channelwise_inplace(const mf_inplace* op, int32_t most, const void* x, void* y,
                            void* scratch) {
    const mf_view* yv = op->yv;
    if (most == 0) {
        return;
    }
    /* Channels per block: as many as the temporary holds for the waiting pixels and one more,
     * a multiple of op->lanes when that many fit, else in equal blocks. */
    if (most < yv->c && most >= op->lanes) {
        most -= most % op->lanes;
    }
    const int32_t blocks = (yv->c + most - 1) / most;
    const int32_t width = most % op->lanes == 0 ? most : (yv->c + blocks - 1) / blocks;
    const ptrdiff_t x_minus_y = (const unsigned char*)x - (unsigned char*)y;
    for (int32_t c0 = 0; c0 < yv->c; c0 += width) {
        const int32_t len = mf_min_i32(width, yv->c - c0);
        ring r = {(unsigned char*)scratch, yv->h * yv->w / len, 0, c0, len};
        for (int32_t n = 0; n < yv->n; n++) {
            block_batch(op, x_minus_y, &r, n, (unsigned char*)y);
        }
    }
}

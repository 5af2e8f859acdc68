/* Carving one workspace arena into named buffers.
 *
 * A module that needs activations or scratch describes its buffers once, in a function that
 * takes an FmLayout. The model runs every module's description twice: first with no base
 * (base == NULL) to add up the bytes, then over the one arena it allocated, to hand out the
 * pointers. So the whole workspace is one allocation, sized once for a maximum batch shape, and
 * the two passes can never disagree about the layout. Every buffer starts on a 64-byte boundary. */
#ifndef FM_LAYOUT_H
#define FM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *base;  /* NULL while sizing */
    size_t used; /* bytes handed out so far */
} FmLayout;

/* Reserves `bytes` (a count of 0 still advances to the next boundary) and returns the buffer,
 * or NULL while sizing. */
static inline void *fm_layout_bytes(FmLayout *l, size_t bytes) {
    size_t off = (l->used + 63) / 64 * 64;
    l->used = off + bytes;
    return l->base ? l->base + off : NULL;
}

static inline float *fm_layout_floats(FmLayout *l, size_t n) {
    return (float *)fm_layout_bytes(l, n * sizeof(float));
}

static inline int *fm_layout_ints(FmLayout *l, size_t n) {
    return (int *)fm_layout_bytes(l, n * sizeof(int));
}

static inline uint8_t *fm_layout_u8(FmLayout *l, size_t n) {
    return (uint8_t *)fm_layout_bytes(l, n);
}

#endif

/* A hash index from 64-bit stay ids to row numbers (open addressing, linear probing).
 *
 * Used wherever rows from one file are matched to stays from another (outcomes to records,
 * labels to observations, note embeddings to stays). Insertion order is not kept: callers keep
 * their own arrays and store row numbers here. */
#ifndef FM_ID_INDEX_H
#define FM_ID_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

typedef struct {
    size_t cap;    /* slots, a power of two (0 before the first insert) */
    size_t n;      /* ids stored */
    int64_t *keys; /* (cap) */
    int32_t *rows; /* (cap); -1 = empty slot */
} FmIdIndex;

/* An empty index (no allocation). */
void fm_id_index_init(FmIdIndex *ix);
/* Frees the slots; the index is empty again. NULL is accepted. */
void fm_id_index_free(FmIdIndex *ix);

/* Inserts id -> row. If the id is already present nothing changes and *existing (may be NULL)
 * receives the stored row; returns FM_OK in both cases (the caller decides whether a repeat is
 * an error): *existing is -1 when the id was new. FM_ERR_NOMEM when growing fails (the index
 * is left as it was). */
FmStatus fm_id_index_put(FmIdIndex *ix, int64_t id, int32_t row, int32_t *existing, FmError *err);

/* The row stored for id, or -1. */
int32_t fm_id_index_get(const FmIdIndex *ix, int64_t id);

#endif

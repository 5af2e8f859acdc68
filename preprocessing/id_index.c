#include "preprocessing/id_index.h"

#include <string.h>

#include "src/alloc.h"

void fm_id_index_init(FmIdIndex *ix) {
    memset(ix, 0, sizeof *ix);
}

void fm_id_index_free(FmIdIndex *ix) {
    if (!ix) return;
    fm_free(ix->keys);
    fm_free(ix->rows);
    memset(ix, 0, sizeof *ix);
}

/* SplitMix64's finaliser: stay ids are often consecutive, so they must be mixed. */
static size_t slot_of(int64_t id, size_t cap) {
    uint64_t z = (uint64_t)id + UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return (size_t)(z & (cap - 1));
}

static FmStatus grow(FmIdIndex *ix, FmError *err) {
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    int64_t *keys = fm_malloc_array(cap, sizeof *keys);
    int32_t *rows = fm_malloc_array(cap, sizeof *rows);
    if (!keys || !rows) {
        fm_free(keys);
        fm_free(rows);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the stay index");
    }
    for (size_t i = 0; i < cap; i++)
        rows[i] = -1;
    for (size_t i = 0; i < ix->cap; i++) {
        if (ix->rows[i] < 0) continue;
        size_t s = slot_of(ix->keys[i], cap);
        while (rows[s] >= 0)
            s = (s + 1) & (cap - 1);
        keys[s] = ix->keys[i];
        rows[s] = ix->rows[i];
    }
    fm_free(ix->keys);
    fm_free(ix->rows);
    ix->keys = keys;
    ix->rows = rows;
    ix->cap = cap;
    return FM_OK;
}

FmStatus fm_id_index_put(FmIdIndex *ix, int64_t id, int32_t row, int32_t *existing, FmError *err) {
    FM_ASSERT(row >= 0);
    if (existing) *existing = -1;
    if (ix->cap) {
        int32_t found = fm_id_index_get(ix, id);
        if (found >= 0) {
            if (existing) *existing = found;
            return FM_OK;
        }
    }
    if ((ix->n + 1) * 2 > ix->cap) { /* load factor at most 1/2 */
        FmStatus st = grow(ix, err);
        if (st != FM_OK) return st;
    }
    size_t s = slot_of(id, ix->cap);
    while (ix->rows[s] >= 0)
        s = (s + 1) & (ix->cap - 1);
    ix->keys[s] = id;
    ix->rows[s] = row;
    ix->n++;
    return FM_OK;
}

int32_t fm_id_index_get(const FmIdIndex *ix, int64_t id) {
    if (!ix->cap) return -1;
    size_t s = slot_of(id, ix->cap);
    while (ix->rows[s] >= 0) {
        if (ix->keys[s] == id) return ix->rows[s];
        s = (s + 1) & (ix->cap - 1);
    }
    return -1;
}

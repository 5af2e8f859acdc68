/* A table of vector-valued events: note embeddings, image feature vectors, decoded images.
 * Row i is one item of stay stay_id[i] at time_h[i] (hours since ICU admission) with `dim`
 * values values[i * dim .. i * dim + dim). Rows are in file order. */
#ifndef FM_EVENT_TABLE_H
#define FM_EVENT_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;         /* rows */
    int dim;          /* values per row */
    int64_t *stay_id; /* (n) */
    float *time_h;    /* (n) */
    float *values;    /* (n, dim) */
} FmEventTable;

/* Frees the arrays (fm_free) and zeroes the table. NULL is accepted. */
void fm_event_table_free(FmEventTable *t);

#endif

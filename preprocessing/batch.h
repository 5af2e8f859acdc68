/* A mini-batch as the model consumes it: per modality, padded arrays with masks.
 *
 * Built from a prepared cohort by the batch gatherer (see preprocessing/cohort.h); also built by
 * hand in model tests. Times are already scaled to [0, 1] by the observation window (hours /
 * window_h); values are already standardised with the training split's statistics. All arrays
 * are owned by whoever built the batch. */
#ifndef FM_BATCH_H
#define FM_BATCH_H

#include <stdint.h>

typedef enum {
    FM_MODALITY_SERIES, /* irregular multivariate series (vitals, labs): per-channel masks */
    FM_MODALITY_EVENTS, /* irregular vectors (note embeddings, image features): per-item masks */
    FM_MODALITY_IMAGES, /* irregular images (pixels, S x S grayscale in [0, 1]): per-item masks */
    FM_MODALITY_STATIC  /* one vector per stay (age, sex, ...): per-channel masks */
} FmModalityKind;

typedef struct {
    FmModalityKind kind;
    int C;      /* channels (SERIES, STATIC), feature width (EVENTS), pixels S*S (IMAGES) */
    int max_L;  /* padded observations per stay in this batch (1 for STATIC) */
    float *time;      /* (B, max_L) in [0, 1]; padding 0; unused (NULL) for STATIC */
    float *value;     /* (B, max_L, C); padding and unobserved entries 0 */
    uint8_t *mask;    /* SERIES, STATIC: (B, max_L, C), 1 = observed;
                         EVENTS, IMAGES: (B, max_L), 1 = a real item (not padding) */
    int *count;       /* (B) observations (SERIES: time points; EVENTS/IMAGES: items) */
    uint8_t *present; /* (B) 1 = the stay has this modality; 0 = missing modality */
    int cap_L;        /* observations per stay the buffers can hold (set by the allocator;
                         0 in hand-built batches) */
} FmBatchModality;

typedef struct {
    int B;                /* stays in the batch */
    int M;                /* modalities, in the cohort's (and model's) order */
    FmBatchModality *mod; /* (M) */
    int n_labels;
    float *label;         /* (B, n_labels) targets: 0/1 for binary labels, a value for regression */
    uint8_t *label_mask;  /* (B, n_labels) 1 = target known */
    int64_t *stay_id;     /* (B) */
    int cap_B;            /* stays the buffers can hold (set by the allocator; 0 if hand-built) */
} FmBatch;

#endif

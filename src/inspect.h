/* Looking inside a trained model: its parameter counts by part, and how its experts are used.
 *
 * Parts group the parameter tensors by name:
 *   time2vec            the shared time embedding
 *   encoder.<modality>  a modality's encoder (mTAND, imputation branch, patches, static map)
 *   embedding           type, missing and position embeddings
 *   fusion.<l>.attention  layer l's self-attention with its two LayerNorms
 *   fusion.<l>.router   layer l's router centres (or weights) and noise weights
 *   fusion.<l>.experts  layer l's expert feed-forward networks
 *   fusion.norm         the final LayerNorm
 *   head                the residual MLP and the task heads */
#ifndef FM_INSPECT_H
#define FM_INSPECT_H

#include <stddef.h>

#include "models/model.h"
#include "src/error.h"

#define FM_INSPECT_PART_MAX 80

typedef struct {
    char name[FM_INSPECT_PART_MAX];
    int tensors;
    size_t count; /* parameters (without the arena's padding) */
} FmParamPart;

/* The part of a tensor name (above), written into buf. */
void fm_inspect_part_of(const char *tensor, char *buf, size_t cap);

/* The model's parts in the order their first tensor was declared. *parts is fm_malloc'd
 * (fm_free). */
FmStatus fm_inspect_parts(const FmModel *model, FmParamPart **parts, int *n, FmError *err);

#endif

/* One modality's encoder: from a batch modality to Q tokens of width D per present stay
 * (BRIEF section 2).
 *
 *   SERIES  mTAND over [values | masks] (2C channels), and with imputation on the UTDE branch
 *           and its gate (models/utde.h)
 *   EVENTS  mTAND over the item vectors (per-item mask)
 *   IMAGES  the patch encoder (models/patch.h) per image, then mTAND over the image vectors
 *   STATIC  z = W [v * m ; m] + b, one D-vector per stay (v the values, m the 0/1 mask)
 *
 * Only present stays are encoded, and of those only the real observations (SERIES: time
 * points l < count; EVENTS/IMAGES: items l < count with mask 1; unobserved SERIES entries count
 * as 0 whatever the array holds) are packed, so nothing else in the batch arrays can reach the
 * output. The time embedding phi (Time2Vec, src/time2vec.h) is shared by all modalities: its
 * parameters are the model's, passed in by id, and the embedding of the reference times is
 * computed once by the model. */
#ifndef FM_ENCODER_H
#define FM_ENCODER_H

#include "models/layout.h"
#include "models/mtand.h"
#include "models/patch.h"
#include "models/utde.h"
#include "preprocessing/batch.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

typedef struct {
    FmModalityKind kind;
    int C;          /* as FmBatchModality.C */
    int Q, D, H, DT;
    int imputation; /* SERIES: 1 = UTDE branch and gate */
    int patch;      /* IMAGES: patch side */
    int patch_dim;  /* IMAGES: patch embedding width (mTAND's item width) */
    int patch_gelu; /* IMAGES: GELU after the patch projection */
} FmEncoderConfig;

typedef struct {
    FmEncoderConfig cfg;
    FmMtand mtand; /* SERIES, EVENTS, IMAGES */
    FmUtde utde;   /* SERIES with imputation */
    FmPatch patch; /* IMAGES */
    int w_static, b_static; /* STATIC: "<prefix>.static.weight" (D, 2C), ".static.bias" (D) */
} FmEncoder;

typedef struct {
    int max_B, max_L;
    int S;          /* present stays in the last forward */
    int *slot_stay; /* (max_B) the stay of each slot (present stays in batch order) */
    int *offset;    /* (max_B + 1) packed observations of each slot */
    float *t;       /* (N) packed times */
    float *x;       /* (N, Cin) mTAND input: SERIES [v | m], EVENTS items, IMAGES patch vectors */
    float *pix;     /* IMAGES (N, C) packed pixels */
    float *phi;     /* (N, DT) time embeddings */
    float *zm;      /* SERIES with imputation: (max_B, Q, D) the mTAND branch */
    float *z;       /* (max_B, Q, D) the output (STATIC: (max_B, D)) */
    float *sx;      /* STATIC (max_B, 2C) */
    /* scratch */
    float *dphi; /* (N, DT) */
    float *dx;   /* IMAGES (N, patch_dim) */
    float *dzm;  /* SERIES with imputation (max_B, Q, D) */
    FmMtandBuffers mt;
    FmUtdeBuffers ut;
    FmPatchBuffers pt;
} FmEncoderBuffers;

/* Checks the configuration (FM_ERR_CONFIG) and declares the encoder's tensors under `prefix`
 * (e.g. "encoder.vitals"): ".mtand.*", ".utde.*", ".patch.*", ".static.*" as the kind needs. */
FmStatus fm_encoder_declare(FmEncoder *enc, const FmEncoderConfig *cfg, FmParams *params, const char *prefix,
                            FmError *err);
void fm_encoder_init(const FmEncoder *enc, FmParams *params, FmRng *rng);

/* Buffers for batches of up to max_B stays with up to max_L observations each. */
void fm_encoder_layout(FmEncoderBuffers *buf, FmLayout *l, const FmEncoder *enc, int max_B, int max_L);

/* Packs the present stays' real observations of `bm` (B stays) into buf. Fails (FM_ERR_ARG,
 * message naming `name`, the stay and the observation) on a batch that does not fit the
 * encoder or the buffers: other kind or C, max_L above the buffers', a count outside
 * [0, max_L], a missing array, a non-finite time or observed value. */
FmStatus fm_encoder_pack(const FmEncoder *enc, FmEncoderBuffers *buf, const FmBatchModality *bm, int B,
                         const char *name, FmError *err);

/* Encodes the packed stays into buf->z: (S, Q, D), or (S, D) for STATIC. phi_ref (Q, DT) is the
 * embedding of the reference times; t2v_w, t2v_b the Time2Vec tensors. */
void fm_encoder_forward(const FmEncoder *enc, const FmParams *params, FmEncoderBuffers *buf,
                        const float *phi_ref, int t2v_w, int t2v_b);

/* Accumulates params->grad (the Time2Vec tensors included) and dphi_ref (Q, DT) from dz, the
 * gradient of buf->z (same shape), for the last forward (phi_ref as there). */
void fm_encoder_backward(const FmEncoder *enc, FmParams *params, FmEncoderBuffers *buf, const float *dz,
                         const float *phi_ref, float *dphi_ref, int t2v_w, int t2v_b);

#endif

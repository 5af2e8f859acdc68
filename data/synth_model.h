/* The generative model of the synthetic multimodal ICU cohort (one stay at a time, no I/O).
 *
 * Each stay has six independent standard-normal latent factors. Outcomes depend on all of
 * them; each modality shows only some of them, so that fusing modalities beats any single
 * one and losing a modality loses information:
 *
 *   factor   meaning (story)                 visible in
 *   cardio   haemodynamic instability        vitals dynamics only: MAP falls and HR rises over
 *                                            the window, both vary more; (lactate ordering)
 *   renal    renal/metabolic dysfunction     labs only: creatinine (rising), BUN, lactate up,
 *                                            HCO3 down
 *   resp     pulmonary involvement           images only: an opacity blob in a lung (pixels),
 *                                            a planted direction (image features)
 *   neuro    neurological status             notes only: a planted embedding direction
 *   infect   infection                       vitals levels (HR, RespRate, Temp), labs (WBC)
 *                                            and, weakly, a second note direction
 *   age      age/frailty                     static descriptors only (Age)
 *
 *   mortality      ~ Bernoulli(sigmoid(-2.75 + 0.9 cardio + 0.8 renal + 0.8 resp + 0.8 neuro
 *                                      + 0.5 infect + 0.6 age))                (about 14%)
 *   los_days       = 2 + exp(log 5.5 + 0.1 cardio + 0.2 renal + 0.25 resp + 0.15 neuro
 *                            + 0.25 infect + 0.5 N(0,1))             (LOS > 7 d: about 55%)
 *   phe_shock      ~ Bernoulli(sigmoid(-1.6 + 2.2 cardio))
 *   phe_aki        ~ Bernoulli(sigmoid(-1.4 + 2.2 renal))
 *   phe_pneumonia  ~ Bernoulli(sigmoid(-1.5 + 2.2 resp))
 *   phe_sepsis     ~ Bernoulli(sigmoid(-1.3 + 2.0 infect))
 *   phe_delirium   ~ Bernoulli(sigmoid(-1.8 + 2.2 neuro))
 *
 * The per-variable formulas, sampling and missingness are in synth_model.c and in the README
 * section "Notes, images and the synthetic cohort". Times are hours since ICU admission, in
 * [0, window_h). Every random draw of stay i comes from its own streams of the root generator
 * (fm_rng_split), so stay i is the same whatever the number of stays. */
#ifndef FM_SYNTH_MODEL_H
#define FM_SYNTH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"
#include "src/rng.h"

typedef struct {
    int stays;             /* number of stays (default 2000) */
    uint64_t seed;         /* root seed (default 1) */
    int note_dim;          /* note embedding width F (default 64, >= 2) */
    int image_feature_dim; /* image feature width (default 32) */
    int image_size;        /* PNG side in pixels (default 32, >= 8) */
    double missing_notes;  /* fraction of stays without any note (default 0.3) */
    double missing_images; /* fraction of stays without any image (default 0.5) */
    double missing_labs;   /* fraction of stays without any lab (default 0.1) */
    double window_h;       /* observation window in hours (default 48) */
} FmSynthConfig;

/* The defaults above. */
FmSynthConfig fm_synth_default(void);

/* Checks ranges (stays 1..10^7, note_dim 2..8192, image_feature_dim 1..8192, image_size
 * 8..1024, fractions in [0, 1], window_h in (0, 10000]); FM_ERR_ARG naming the field. */
FmStatus fm_synth_config_check(const FmSynthConfig *cfg, FmError *err);

enum {
    FM_SYNTH_Z_CARDIO,
    FM_SYNTH_Z_RENAL,
    FM_SYNTH_Z_RESP,
    FM_SYNTH_Z_NEURO,
    FM_SYNTH_Z_INFECT,
    FM_SYNTH_Z_AGE,
    FM_SYNTH_N_FACTORS
};
extern const char *const FM_SYNTH_FACTOR_NAMES[FM_SYNTH_N_FACTORS]; /* "cardio", ... */

enum {
    FM_SYNTH_PHE_SHOCK,
    FM_SYNTH_PHE_AKI,
    FM_SYNTH_PHE_PNEUMONIA,
    FM_SYNTH_PHE_SEPSIS,
    FM_SYNTH_PHE_DELIRIUM,
    FM_SYNTH_N_PHENOTYPES
};
extern const char *const FM_SYNTH_PHENOTYPE_NAMES[FM_SYNTH_N_PHENOTYPES]; /* "phe_shock", ... */

/* The time-series and static variables, in output order, with their modality, plausible range
 * (written to the mapping CSV) and the decimals they are recorded with. */
typedef struct {
    const char *name;
    const char *modality; /* "vitals", "labs" or "static" */
    double min, max;
    int decimals;
} FmSynthVariable;

enum {
    FM_SYNTH_HR,
    FM_SYNTH_MAP,
    FM_SYNTH_RESPRATE,
    FM_SYNTH_TEMP,
    FM_SYNTH_SPO2,
    FM_SYNTH_CREATININE,
    FM_SYNTH_BUN,
    FM_SYNTH_HCO3,
    FM_SYNTH_LACTATE,
    FM_SYNTH_WBC,
    FM_SYNTH_PLATELETS,
    FM_SYNTH_GLUCOSE,
    FM_SYNTH_AGE,
    FM_SYNTH_GENDER,
    FM_SYNTH_HEIGHT,
    FM_SYNTH_WEIGHT,
    FM_SYNTH_N_VARIABLES
};
extern const FmSynthVariable FM_SYNTH_VARIABLES[FM_SYNTH_N_VARIABLES];

/* A recording artifact: about 0.2% of vital-sign values are replaced by this value, which lies
 * outside every variable's range, so the mapping's ranges must remove them. */
#define FM_SYNTH_ARTIFACT 9999.0

/* Planted unit directions in the embedding spaces. */
enum {
    FM_SYNTH_DIR_NOTE_NEURO,  /* note_dim: carries the neuro factor */
    FM_SYNTH_DIR_NOTE_INFECT, /* note_dim, orthogonal to the first: carries infect (weakly) */
    FM_SYNTH_DIR_IMAGE_RESP,  /* image_feature_dim: carries the resp factor */
    FM_SYNTH_N_DIRECTIONS
};

/* The model: configuration, root generator and planted directions. */
typedef struct {
    FmSynthConfig cfg;
    FmRng root;
    float *dir[FM_SYNTH_N_DIRECTIONS]; /* unit vectors, owned */
} FmSynthModel;

/* One observation of a time-series or static variable. */
typedef struct {
    float time_h;
    int var; /* index into FM_SYNTH_VARIABLES */
    double value;
} FmSynthObs;

/* Everything generated for one stay. Buffers are sized once for the configuration by
 * fm_synth_stay_alloc and reused for every stay. */
typedef struct {
    int64_t stay_id;
    double z[FM_SYNTH_N_FACTORS];
    int mortality;
    double los_days; /* NaN: unknown (about 1% of stays) */
    int phenotype[FM_SYNTH_N_PHENOTYPES];
    int has_labs, has_notes, has_images;
    FmSynthObs *obs; /* (n_obs) sorted by time, then variable */
    size_t n_obs, cap_obs;
    int n_notes;
    float *note_time; /* (n_notes) sorted */
    float *note_vec;  /* (n_notes, note_dim) */
    int n_images;
    float *image_time; /* (n_images) sorted */
    float *image_feat; /* (n_images, image_feature_dim) */
    float *pixels;     /* (n_images, image_size, image_size) in [0, 1], row-major */
    float *scratch;    /* (max(note_dim, image_feature_dim)) working space */
} FmSynthStay;

/* Most notes and images one stay can have. */
#define FM_SYNTH_MAX_NOTES 5
#define FM_SYNTH_MAX_IMAGES 3

/* Builds the model for `cfg` (checked with fm_synth_config_check). Free with
 * fm_synth_model_free (also safe after a failed init). */
FmStatus fm_synth_model_init(FmSynthModel *m, const FmSynthConfig *cfg, FmError *err);
void fm_synth_model_free(FmSynthModel *m);

/* Allocates a stay's buffers for model m. Free with fm_synth_stay_free (NULL-safe, also after
 * a failed alloc). */
FmStatus fm_synth_stay_alloc(FmSynthStay *s, const FmSynthModel *m, FmError *err);
void fm_synth_stay_free(FmSynthStay *s);

/* Generates stay number `index` (0-based) into s. Deterministic in (seed, index, cfg); never
 * fails. The stay id is FM_SYNTH_FIRST_STAY_ID + index. */
#define FM_SYNTH_FIRST_STAY_ID 200001
void fm_synth_stay_generate(const FmSynthModel *m, uint64_t index, FmSynthStay *s);

#endif

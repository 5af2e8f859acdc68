/* The synthetic multimodal ICU cohort on disk (`fusemoe synth`).
 *
 * fm_synth_write generates cfg->stays stays with the model of data/synth_model.h and writes
 * them into a folder in the same formats as real data (see FORMATS in the README):
 *   observations.csv     long CSV stay_id,time_h,variable,value (vitals, labs, static at 0 h)
 *   labels.csv           stay_id,mortality,los_days,phe_shock,phe_aki,phe_pneumonia,
 *                        phe_sepsis,phe_delirium (los_days empty = unknown)
 *   modalities.csv       variable,modality,min,max
 *   notes.h5             /stay_id, /time_h, /embedding (N, note_dim)
 *   image_features.h5    /stay_id, /time_h, /features (N, image_feature_dim)
 *   images/index.csv     stay_id,time_h,path (paths relative to images/)
 *   images/<stay>_<k>.png  8-bit grayscale, image_size x image_size
 *   latent.csv           the ground truth: each stay's latent factors and which modalities it
 *                        has (for analysis; not an input of `fusemoe prepare`)
 * Every file is written atomically (temporary file, then rename). The bytes depend only on the
 * configuration: the same seed gives the same files. */
#ifndef FM_SYNTH_H
#define FM_SYNTH_H

#include <stddef.h>

#include "data/synth_model.h"
#include "src/error.h"

#define FM_SYNTH_OBSERVATIONS_CSV "observations.csv"
#define FM_SYNTH_LABELS_CSV "labels.csv"
#define FM_SYNTH_MAPPING_CSV "modalities.csv"
#define FM_SYNTH_NOTES_H5 "notes.h5"
#define FM_SYNTH_IMAGE_FEATURES_H5 "image_features.h5"
#define FM_SYNTH_IMAGES_DIR "images"
#define FM_SYNTH_IMAGE_INDEX_CSV "images/index.csv"
#define FM_SYNTH_LATENT_CSV "latent.csv"
#define FM_SYNTH_COHORT_H5 "cohort.h5" /* the output the printed prepare command names */
#define FM_SYNTH_PHENOTYPE_PREFIX "phe_"

/* What was written, for the command's report and for tests. */
typedef struct {
    int stays;
    size_t observations; /* data rows of observations.csv */
    size_t artifacts;    /* of which out-of-range recording artifacts */
    size_t notes, images;
    int stays_with_labs, stays_with_notes, stays_with_images;
    int deaths, los_over_7d, los_unknown;
    int phenotype[FM_SYNTH_N_PHENOTYPES]; /* positives per phenotype */
} FmSynthSummary;

/* Generates the cohort of `cfg` into folder `dir` (created if missing, with its images/
 * subfolder; existing files of the same names are replaced). On success fills *summary (may
 * be NULL). On failure nothing half-written is left: files not yet published keep their old
 * contents (or stay absent); images already written are complete files. Status: FM_ERR_ARG
 * (bad configuration, naming the option), FM_ERR_IO, FM_ERR_NOMEM. */
FmStatus fm_synth_write(const FmSynthConfig *cfg, const char *dir, FmSynthSummary *summary, FmError *err);

/* Writes into buf (capacity cap, always NUL-terminated when cap > 0) the `fusemoe prepare`
 * command that turns `dir` into a cohort file dir/cohort.h5, with paths shell-quoted when
 * needed. Returns the length the full command needs (as snprintf). This is the one place that
 * knows prepare's options. */
size_t fm_synth_prepare_command(const FmSynthConfig *cfg, const char *dir, char *buf, size_t cap);

#endif

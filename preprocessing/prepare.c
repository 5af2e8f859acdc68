#include "preprocessing/prepare.h"

#include <math.h>
#include <string.h>

#include "preprocessing/cohort_build.h"
#include "preprocessing/image_features_h5.h"
#include "preprocessing/image_index.h"
#include "preprocessing/notes_h5.h"
#include "preprocessing/p12.h"
#include "src/alloc.h"

FmPrepareOptions fm_prepare_defaults(void) {
    FmPrepareOptions o;
    memset(&o, 0, sizeof o);
    o.mapping = "data/p12_modalities.csv";
    o.long_opt = fm_long_csv_defaults();
    o.label_opt = fm_label_csv_defaults();
    o.image_size = 64;
    o.window_h = 48.0;
    o.los_threshold_days = 7.0;
    o.splits.kind = FM_SPLITS_REPEATED;
    o.splits.n = 5;
    o.splits.frac[0] = 0.8;
    o.splits.frac[1] = 0.1;
    o.splits.frac[2] = 0.1;
    o.splits.id_col = "stay_id";
    o.seed = 1;
    return o;
}

static FmStatus check_options(const FmPrepareOptions *o, FmError *err) {
    int p12 = o->n_p12_dirs > 0, lng = o->long_csv != NULL;
    if (p12 && lng)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "give either PhysioNet 2012 folders or a long CSV, not both");
    if (!p12 && !lng)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "no observations given (PhysioNet 2012 folders or a long CSV)");
    if (p12 && o->n_outcome_files == 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "PhysioNet 2012 folders need outcome files");
    if (p12 && o->n_label_files > 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL,
                       "labels files go with a long CSV; PhysioNet 2012 takes outcome files");
    if (lng && o->n_label_files == 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "a long CSV needs a labels file");
    if (lng && o->n_outcome_files > 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL,
                       "outcome files go with PhysioNet 2012 folders; a long CSV takes a labels file");
    if (!(o->window_h > 0 && isfinite(o->window_h)))
        return FM_FAIL(err, FM_ERR_ARG, NULL,
                       "the observation window must be a positive number of hours, got %g", o->window_h);
    if (!(o->los_threshold_days >= 0 && isfinite(o->los_threshold_days)))
        return FM_FAIL(err, FM_ERR_ARG, NULL,
                       "the LOS threshold must be a non-negative number of days, got %g",
                       o->los_threshold_days);
    if (o->image_index && (o->image_size < 1 || o->image_size > 1024))
        return FM_FAIL(err, FM_ERR_ARG, NULL, "the image size must be 1..1024, got %d", o->image_size);
    if (!o->mapping) return FM_FAIL(err, FM_ERR_ARG, NULL, "no mapping file");
    return FM_OK;
}

/* Appends "key: value\n" to a growing string. */
static FmStatus add_source(char **s, const char *key, const char *value, FmError *err) {
    size_t old = *s ? strlen(*s) : 0, add = strlen(key) + strlen(value) + 3;
    char *p = fm_realloc(*s, old + add + 1);
    if (!p) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    snprintf(p + old, add + 1, "%s: %s\n", key, value);
    *s = p;
    return FM_OK;
}

static FmStatus describe_sources(const FmPrepareOptions *o, FmCohortSettings *s, FmError *err) {
    FmStatus st = FM_OK;
    for (int i = 0; i < o->n_p12_dirs && st == FM_OK; i++)
        st = add_source(&s->sources, "p12", o->p12_dirs[i], err);
    for (int i = 0; i < o->n_outcome_files && st == FM_OK; i++)
        st = add_source(&s->sources, "outcomes", o->outcome_files[i], err);
    if (o->long_csv && st == FM_OK) st = add_source(&s->sources, "long_csv", o->long_csv, err);
    for (int i = 0; i < o->n_label_files && st == FM_OK; i++)
        st = add_source(&s->sources, "labels", o->label_files[i], err);
    if (st == FM_OK) st = add_source(&s->sources, "mapping", o->mapping, err);
    if (o->notes_h5 && st == FM_OK) st = add_source(&s->sources, "notes", o->notes_h5, err);
    if (o->image_features_h5 && st == FM_OK)
        st = add_source(&s->sources, "image_features", o->image_features_h5, err);
    if (o->image_index && st == FM_OK) st = add_source(&s->sources, "images", o->image_index, err);
    return st;
}

/* The label columns: mortality, los_log_days, los_gt_<t>d, then the labels CSV's further
 * columns (phenotype-prefixed ones form the "phenotype" task). With has_scores (the outcomes
 * came from P12 outcome files) the SAPS-I and SOFA admission scores are kept too. */
static FmStatus build_labels(FmCohort *c, const FmLabelTable *t, const int32_t *rows, double threshold,
                             int has_scores, FmError *err) {
    int L = 3 + t->n_extra;
    c->label_info = fm_calloc((size_t)L, sizeof *c->label_info);
    c->label = fm_malloc_array((size_t)(c->N ? c->N : 1) * (size_t)L, sizeof *c->label);
    c->label_mask = fm_malloc((size_t)(c->N ? c->N : 1) * (size_t)L);
    if (!c->label_info || !c->label || !c->label_mask)
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for labels");
    c->n_labels = L;
    char los_bin[64];
    snprintf(los_bin, sizeof los_bin, "los_gt_%gd", threshold);
    const char *names[3] = {"mortality", "los_log_days", los_bin};
    const FmLabelKind kinds[3] = {FM_LABEL_BINARY, FM_LABEL_REGRESSION, FM_LABEL_BINARY};
    for (int l = 0; l < L; l++) {
        const char *name = l < 3 ? names[l] : t->extra_name[l - 3];
        const char *task = l < 3 ? names[l] : t->extra_phenotype[l - 3] ? "phenotype" : name;
        c->label_info[l].kind = l < 3 ? kinds[l] : FM_LABEL_BINARY;
        c->label_info[l].name = fm_strdup(name);
        c->label_info[l].task = fm_strdup(task);
        if (!c->label_info[l].name || !c->label_info[l].task)
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for labels");
        for (int k = 0; k < l; k++)
            if (strcmp(c->label_info[k].name, name) == 0)
                return FM_FAIL(err, FM_ERR_CONFIG, t->files[0], "label column '%s' would appear twice", name);
    }
    if (has_scores) {
        c->saps_i = fm_malloc_array((size_t)(c->N ? c->N : 1), sizeof *c->saps_i);
        c->sofa = fm_malloc_array((size_t)(c->N ? c->N : 1), sizeof *c->sofa);
        if (!c->saps_i || !c->sofa) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for scores");
    }
    for (int64_t i = 0; i < c->N; i++) {
        size_t r = (size_t)rows[i];
        if (c->saps_i) {
            c->saps_i[i] = t->saps_i[r];
            c->sofa[i] = t->sofa[r];
        }
        float *y = c->label + (size_t)i * (size_t)L;
        uint8_t *k = c->label_mask + (size_t)i * (size_t)L;
        float mort = t->mortality[r], los = t->los_days[r];
        y[0] = mort;
        y[1] = isnan(los) ? NAN : (float)log((double)los + FM_LOS_LOG_OFFSET_DAYS);
        y[2] = isnan(los) ? NAN : (float)((double)los > threshold);
        for (int e = 0; e < t->n_extra; e++)
            y[3 + e] = t->extra[r * (size_t)t->n_extra + (size_t)e];
        for (int l = 0; l < L; l++)
            k[l] = !isnan(y[l]);
    }
    return FM_OK;
}

static FmStatus make_splits(FmCohort *c, const FmPrepareOptions *o, FmPrepareReport *rep, FmError *err) {
    FmStatus st;
    if (o->splits.kind == FM_SPLITS_FILE) {
        st = fm_splits_read_file(o->splits.path, o->splits.id_col ? o->splits.id_col : "stay_id", c->stay_id,
                                 c->N, &c->split, &c->n_splits, &rep->split_rows_without_stay, err);
    } else {
        uint8_t *stratum = fm_malloc((size_t)(c->N ? c->N : 1));
        if (!stratum) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for splits");
        int ml = 0; /* the mortality column */
        for (int64_t i = 0; i < c->N; i++) {
            size_t k = (size_t)i * (size_t)c->n_labels + (size_t)ml;
            stratum[i] = !c->label_mask[k] ? 2 : c->label[k] > 0.5f ? 1 : 0;
        }
        st = fm_splits_make(&o->splits, o->seed, c->N, stratum, &c->split, &c->n_splits, err);
        fm_free(stratum);
    }
    for (int s = 0; st == FM_OK && s < c->n_splits; s++)
        st = fm_cohort_fit_norm(c, c->split[s].part, &c->split[s].norm, err);
    return st;
}

FmStatus fm_prepare_run(const FmPrepareOptions *o, FmCohort *c, FmVarMap *map, FmPrepareReport *rep,
                        FmError *err) {
    memset(c, 0, sizeof *c);
    memset(map, 0, sizeof *map);
    memset(rep, 0, sizeof *rep);
    FmStatus st = check_options(o, err);
    if (st != FM_OK) return st;
    if ((st = fm_var_map_read(o->mapping, map, err)) != FM_OK) return st;
    if ((st = fm_report_init(rep, map->n_entries, err)) != FM_OK) {
        fm_var_map_free(map);
        return st;
    }
    int p12 = o->n_p12_dirs > 0;
    FmLabelTable labels;
    fm_labels_init(&labels);
    FmCohortBuilder b;
    memset(&b, 0, sizeof b);
    uint8_t *used = NULL;
    int32_t *rows = NULL;

    for (int i = 0; st == FM_OK && i < o->n_outcome_files; i++)
        st = fm_labels_read_p12_outcomes(&labels, o->outcome_files[i], err);
    for (int i = 0; st == FM_OK && i < o->n_label_files; i++)
        st = fm_labels_read_csv(&labels, o->label_files[i], &o->label_opt, err);
    if (st == FM_OK) {
        rep->outcome_rows = (int64_t)labels.n;
        for (size_t r = 0; r < labels.n; r++)
            rep->outcome_deaths += labels.mortality[r] == 1.0f;
        used = fm_calloc(labels.n ? labels.n : 1, 1);
        if (!used) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    if (st == FM_OK) {
        FmBuildOptions bo = {o->window_h, p12 ? 1 : o->has_sentinel, p12 ? -1.0 : o->sentinel, p12};
        st = fm_cohort_builder_init(&b, map, &bo, rep, err);
    }
    /* Event inputs become modalities after the mapping's, in this order. */
    if (st == FM_OK && o->notes_h5) {
        FmEventTable t;
        st = fm_notes_read_h5(o->notes_h5, &t, err);
        if (st == FM_OK)
            st = fm_cohort_builder_add_events(&b, FM_MODALITY_NAME_NOTES, FM_MODALITY_EVENTS, 0, &t,
                                              o->notes_h5, err);
    }
    if (st == FM_OK && o->image_features_h5) {
        FmEventTable t;
        st = fm_image_features_read_h5(o->image_features_h5, &t, err);
        if (st == FM_OK)
            st = fm_cohort_builder_add_events(&b, FM_MODALITY_NAME_IMAGE_FEATURES, FM_MODALITY_EVENTS, 0, &t,
                                              o->image_features_h5, err);
    }
    if (st == FM_OK && o->image_index) {
        FmEventTable t;
        st = fm_image_index_read(o->image_index, o->image_size, &t, err);
        if (st == FM_OK)
            st = fm_cohort_builder_add_events(&b, FM_MODALITY_NAME_IMAGES, FM_MODALITY_IMAGES, o->image_size,
                                              &t, o->image_index, err);
    }
    for (int i = 0; st == FM_OK && i < o->n_p12_dirs; i++)
        st = fm_p12_read_dir(o->p12_dirs[i], &b, &labels, used, err);
    if (st == FM_OK && o->long_csv) st = fm_long_csv_read(o->long_csv, &o->long_opt, &b, &labels, used, err);
    if (st == FM_OK) st = fm_cohort_builder_finish(&b, c, &rows, err);
    if (st == FM_OK && c->N == 0)
        st = FM_FAIL(err, FM_ERR_CONFIG, NULL,
                     "no stay remains: all %lld were dropped (%lld without time series, %lld without a valid "
                     "observation; check the mapping and the window)",
                     (long long)rep->records_read, (long long)rep->stays_no_time_series,
                     (long long)rep->stays_no_valid_obs);
    if (st == FM_OK) {
        for (size_t r = 0; r < labels.n; r++)
            rep->outcomes_without_stay += !used[r];
        st = build_labels(c, &labels, rows, o->los_threshold_days, o->n_outcome_files > 0, err);
    }
    if (st == FM_OK) {
        FmCohortSettings *s = &c->settings;
        s->window_h = o->window_h;
        s->los_threshold_days = o->los_threshold_days;
        s->los_log_offset_days = FM_LOS_LOG_OFFSET_DAYS;
        s->std_floor = FM_NORM_STD_FLOOR;
        s->has_sentinel = p12 ? 1 : o->has_sentinel;
        s->sentinel = p12 ? -1.0 : o->has_sentinel ? o->sentinel : 0.0;
        s->seed = o->seed;
        char spec[4200];
        fm_splits_describe(&o->splits, spec, sizeof spec);
        s->split_spec = fm_strdup(spec);
        s->duplicate_rule = fm_strdup("mean");
        if (!s->split_spec || !s->duplicate_rule) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        if (st == FM_OK) st = describe_sources(o, s, err);
    }
    if (st == FM_OK) st = make_splits(c, o, rep, err);
    fm_cohort_builder_free(&b);
    fm_labels_free(&labels);
    fm_free(used);
    fm_free(rows);
    if (st != FM_OK) {
        fm_cohort_free(c);
        fm_var_map_free(map);
        fm_report_free(rep);
    }
    return st;
}

/* The model file of a training run (src/train_model_file.h). */
#include "src/train_model_file.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/h5io.h"

void fm_train_info_free(FmTrainInfo *info) {
    if (!info) return;
    fm_free(info->config_text);
    info->config_text = NULL;
}

void fm_train_info_bind(FmTrainInfo *info) {
    for (int j = 0; j < FM_TRAIN_MAX_LABELS; j++) info->label_ptr[j] = info->label_name[j];
}

static FmStatus write_study(const char *tmp, const char *path, const FmTrainInfo *info, FmError *err) {
    fm_h5_quiet();
    hid_t file = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) return FM_FAIL(err, FM_ERR_IO, path, "cannot reopen the model file to add the study record");
    hid_t g = -1;
    FmStatus st = fm_h5_group_create(file, "study", &g, err);
    char *joined = NULL;
    if (st == FM_OK) {
        size_t len = 1;
        for (int j = 0; j < info->n_labels; j++) len += strlen(info->label_name[j]) + 1;
        if (!(joined = fm_malloc(len))) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory writing label names");
    }
    if (st == FM_OK) {
        char *p = joined;
        *p = '\0';
        for (int j = 0; j < info->n_labels; j++) p += sprintf(p, j ? "\n%s" : "%s", info->label_name[j]);
        st = fm_h5_attr_write_str(g, "label_names", joined, err);
    }
    if (st == FM_OK)
        st = fm_h5_attr_write_f64_array(g, "thresholds", info->threshold, (size_t)info->n_labels, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(g, "los_log_offset_days", info->los_log_offset_days, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "split", info->split, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "seed", info->seed, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "best_epoch", info->best_epoch, err);
    if (st == FM_OK) st = fm_h5_attr_write_str(g, "config", info->config_text ? info->config_text : "", err);
    fm_free(joined);
    if (g >= 0) H5Gclose(g);
    if (H5Fclose(file) < 0 && st == FM_OK) st = FM_FAIL(err, FM_ERR_IO, path, "cannot finish the model file");
    return st;
}

FmStatus fm_train_model_save(const char *path, const FmModel *model, const FmCohort *c, int split,
                             const FmTrainSpec *spec, const FmTrainInfo *info, FmError *err) {
    const FmModelConfig *mc = &model->cfg;
    FmNorm all, sub;
    memset(&sub, 0, sizeof sub);
    FmStatus st = fm_cohort_get_norm(c, split, &all, err);
    if (st != FM_OK) return st;
    /* The model's modalities, in its order. */
    const char *names[FM_MODEL_MAX_MODALITIES];
    FmModalityKind kinds[FM_MODEL_MAX_MODALITIES];
    int C[FM_MODEL_MAX_MODALITIES], stdz[FM_MODEL_MAX_MODALITIES];
    const char *const *channel[FM_MODEL_MAX_MODALITIES];
    for (int m = 0; m < mc->M; m++) {
        const FmNormModality *nm = &all.mod[spec->cohort_mod[m]];
        names[m] = nm->name;
        kinds[m] = nm->kind;
        C[m] = nm->C;
        stdz[m] = nm->standardise;
        channel[m] = (const char *const *)nm->channel;
    }
    st = fm_norm_alloc(&sub, mc->M, names, kinds, C, channel, stdz, err);
    for (int m = 0; m < mc->M && st == FM_OK; m++) {
        const FmNormModality *nm = &all.mod[spec->cohort_mod[m]];
        memcpy(sub.mod[m].mean, nm->mean, (size_t)nm->C * sizeof *nm->mean);
        memcpy(sub.mod[m].std, nm->std, (size_t)nm->C * sizeof *nm->std);
    }
    char tmp[FM_PATH_MAX];
    if (st == FM_OK) st = fm_atomic_temp_path(path, tmp, sizeof tmp, err);
    if (st == FM_OK) {
        st = fm_model_file_save(tmp, model, &sub, err);
        if (st == FM_OK) st = write_study(tmp, path, info, err);
        if (st == FM_OK)
            st = fm_atomic_commit(tmp, path, err);
        else
            fm_atomic_abort(tmp);
    }
    fm_norm_free(&sub);
    fm_norm_free(&all);
    return st;
}

static FmStatus read_study(const char *path, FmTrainInfo *info, int n_labels, FmError *err) {
    hid_t file;
    FmStatus st = fm_h5_open_read(path, &file, err);
    if (st != FM_OK) return st;
    char where[FM_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:/study", path);
    if (!fm_h5_exists(file, "study")) {
        H5Fclose(file);
        return FM_FAIL(err, FM_ERR_FORMAT, path, "no /study group: not a model written by fusemoe train");
    }
    hid_t g;
    st = fm_h5_group_open(file, path, "study", &g, err);
    if (st != FM_OK) {
        H5Fclose(file);
        return st;
    }
    char *joined = NULL;
    double *thr = NULL;
    size_t n_thr = 0;
    st = fm_h5_attr_read_str(g, where, "label_names", &joined, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64_array(g, where, "thresholds", &thr, &n_thr, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64(g, where, "los_log_offset_days", &info->los_log_offset_days, err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(g, where, "split", &info->split, err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(g, where, "seed", &info->seed, err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(g, where, "best_epoch", &info->best_epoch, err);
    if (st == FM_OK) st = fm_h5_attr_read_str(g, where, "config", &info->config_text, err);
    if (st == FM_OK && (n_labels > FM_TRAIN_MAX_LABELS || n_thr != (size_t)n_labels))
        st = FM_FAIL(err, FM_ERR_FORMAT, where, "%zu thresholds for %d label columns", n_thr, n_labels);
    info->n_labels = n_labels;
    const char *p = joined;
    for (int j = 0; st == FM_OK && j < n_labels; j++) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= FM_TRAIN_LABEL_NAME_MAX || (!end) != (j == n_labels - 1)) {
            st = FM_FAIL(err, FM_ERR_FORMAT, where, "attribute 'label_names': expected %d names", n_labels);
            break;
        }
        memcpy(info->label_name[j], p, len);
        info->label_name[j][len] = '\0';
        info->threshold[j] = thr[j];
        p = end ? end + 1 : p + len;
    }
    fm_free(joined);
    fm_free(thr);
    H5Gclose(g);
    H5Fclose(file);
    return st;
}

FmStatus fm_train_model_read_info(const char *path, int n_labels, FmTrainInfo *info, FmError *err) {
    memset(info, 0, sizeof *info);
    FmStatus st = read_study(path, info, n_labels, err);
    if (st != FM_OK) {
        fm_train_info_free(info);
        return st;
    }
    fm_train_info_bind(info);
    return FM_OK;
}

FmStatus fm_train_model_load(const char *path, FmModel **model, FmNorm *norm, FmTrainInfo *info, FmError *err) {
    memset(info, 0, sizeof *info);
    int has_norm = 0;
    FmStatus st = fm_model_file_load(path, model, 0, norm, &has_norm, err);
    if (st != FM_OK) return st;
    if (!has_norm) st = FM_FAIL(err, FM_ERR_FORMAT, path, "no standardisation statistics: not a model written by fusemoe train");
    if (st == FM_OK) st = read_study(path, info, (*model)->cfg.n_labels, err);
    if (st != FM_OK) {
        fm_model_free(*model);
        *model = NULL;
        fm_norm_free(norm);
        fm_train_info_free(info);
        return st;
    }
    fm_train_info_bind(info);
    return FM_OK;
}

FmStatus fm_train_model_use_norm(FmCohort *c, const char *cohort_name, const FmModelConfig *mc,
                                 const FmNorm *model_norm, FmError *err) {
    FmNorm norm;
    FmStatus st = fm_cohort_layout_norm(c, &norm, err);
    if (st != FM_OK) return st;
    for (int m = 0; m < mc->M && st == FM_OK; m++) {
        const char *name = mc->mod[m].name;
        const FmNormModality *s = NULL;
        for (int i = 0; i < model_norm->M; i++)
            if (strcmp(model_norm->mod[i].name, name) == 0) s = &model_norm->mod[i];
        int cm = fm_cohort_find_modality(c, name);
        if (cm < 0) {
            st = FM_FAIL(err, FM_ERR_MISMATCH, cohort_name, "no modality \"%s\", which the model reads", name);
            break;
        }
        FmNormModality *nm = &norm.mod[cm];
        if (!nm->standardise) continue;
        if (!s) {
            st = FM_FAIL(err, FM_ERR_MISMATCH, cohort_name, "the model has no statistics for \"%s\"", name);
            break;
        }
        if (s->C != nm->C) {
            st = FM_FAIL(err, FM_ERR_MISMATCH, cohort_name, "modality \"%s\" has %d channels here, %d in the model", name,
                         nm->C, s->C);
            break;
        }
        for (int k = 0; k < nm->C && nm->channel && s->channel; k++)
            if (strcmp(nm->channel[k], s->channel[k]) != 0) {
                st = FM_FAIL(err, FM_ERR_MISMATCH, cohort_name,
                             "modality \"%s\": channel %d is \"%s\" here but \"%s\" in the model", name, k,
                             nm->channel[k], s->channel[k]);
                break;
            }
        if (st != FM_OK) break;
        memcpy(nm->mean, s->mean, (size_t)nm->C * sizeof *nm->mean);
        memcpy(nm->std, s->std, (size_t)nm->C * sizeof *nm->std);
    }
    if (st == FM_OK) st = fm_cohort_use_norm(c, &norm, "the model", err);
    fm_norm_free(&norm);
    return st;
}

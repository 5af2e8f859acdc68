#include "preprocessing/norm.h"

#include <math.h>
#include <string.h>

#include "preprocessing/h5_strings.h"
#include "preprocessing/modality.h"
#include "src/alloc.h"
#include "src/h5io.h"

void fm_norm_free(FmNorm *norm) {
    if (!norm) return;
    for (int m = 0; m < norm->M && norm->mod; m++) {
        FmNormModality *nm = &norm->mod[m];
        fm_free(nm->name);
        if (nm->channel) fm_h5_strings_free(nm->channel, (size_t)nm->C);
        fm_free(nm->mean);
        fm_free(nm->std);
    }
    fm_free(norm->mod);
    memset(norm, 0, sizeof *norm);
}

FmStatus fm_norm_alloc(FmNorm *norm, int M, const char *const *names, const FmModalityKind *kinds,
                       const int *C, const char *const *const *channel, const int *standardise,
                       FmError *err) {
    memset(norm, 0, sizeof *norm);
    norm->mod = fm_calloc(M > 0 ? (size_t)M : 1, sizeof *norm->mod);
    if (!norm->mod) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for normalisation statistics");
    norm->M = M;
    for (int m = 0; m < M; m++) {
        FmNormModality *nm = &norm->mod[m];
        nm->kind = kinds[m];
        nm->C = C[m];
        nm->standardise = standardise ? standardise[m] : 1;
        nm->name = fm_strdup(names[m]);
        nm->mean = fm_malloc_array((size_t)C[m], sizeof *nm->mean);
        nm->std = fm_malloc_array((size_t)C[m], sizeof *nm->std);
        if (!nm->name || !nm->mean || !nm->std) goto nomem;
        for (int c = 0; c < C[m]; c++) {
            nm->mean[c] = 0.0;
            nm->std[c] = 1.0;
        }
        if (channel && channel[m]) {
            nm->channel = fm_calloc((size_t)C[m] ? (size_t)C[m] : 1, sizeof *nm->channel);
            if (!nm->channel) goto nomem;
            for (int c = 0; c < C[m]; c++)
                if (!(nm->channel[c] = fm_strdup(channel[m][c]))) goto nomem;
        }
    }
    return FM_OK;
nomem:
    fm_norm_free(norm);
    return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for normalisation statistics");
}

FmStatus fm_norm_copy(FmNorm *dst, const FmNorm *src, FmError *err) {
    memset(dst, 0, sizeof *dst);
    int M = src->M;
    const char **names = fm_calloc(M ? (size_t)M : 1, sizeof *names);
    FmModalityKind *kinds = fm_calloc(M ? (size_t)M : 1, sizeof *kinds);
    int *C = fm_calloc(M ? (size_t)M : 1, sizeof *C), *stdz = fm_calloc(M ? (size_t)M : 1, sizeof *stdz);
    const char *const **ch = fm_calloc(M ? (size_t)M : 1, sizeof *ch);
    FmStatus st = FM_OK;
    if (!names || !kinds || !C || !stdz || !ch) {
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory copying normalisation statistics");
    } else {
        for (int m = 0; m < M; m++) {
            names[m] = src->mod[m].name;
            kinds[m] = src->mod[m].kind;
            C[m] = src->mod[m].C;
            stdz[m] = src->mod[m].standardise;
            ch[m] = (const char *const *)src->mod[m].channel;
        }
        st = fm_norm_alloc(dst, M, names, kinds, C, ch, stdz, err);
        for (int m = 0; st == FM_OK && m < M; m++) {
            memcpy(dst->mod[m].mean, src->mod[m].mean, (size_t)C[m] * sizeof(double));
            memcpy(dst->mod[m].std, src->mod[m].std, (size_t)C[m] * sizeof(double));
        }
    }
    fm_free(names);
    fm_free(kinds);
    fm_free(C);
    fm_free(stdz);
    fm_free(ch);
    return st;
}

FmStatus fm_norm_check_match(const FmNorm *have, const FmNorm *want, const char *what, FmError *err) {
    if (have->M != want->M) {
        char list[512] = "";
        for (int m = 0; m < want->M; m++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", m ? "," : "", want->mod[m].name);
        }
        return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "%d modalities here but %d in %s (%s)", have->M, want->M,
                       what, list);
    }
    for (int m = 0; m < have->M; m++) {
        const FmNormModality *a = &have->mod[m], *b = &want->mod[m];
        if (strcmp(a->name, b->name) != 0)
            return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "modality %d is '%s' here but '%s' in %s", m, a->name,
                           b->name, what);
        if (a->kind != b->kind)
            return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "modality '%s' is %s here but %s in %s", a->name,
                           fm_modality_kind_name(a->kind), fm_modality_kind_name(b->kind), what);
        if (a->C != b->C)
            return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "modality '%s' has %d channels here but %d in %s",
                           a->name, a->C, b->C, what);
        if ((a->channel == NULL) != (b->channel == NULL))
            return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "modality '%s': channel names %s here but %s in %s",
                           a->name, a->channel ? "present" : "absent", b->channel ? "present" : "absent",
                           what);
        for (int c = 0; a->channel && c < a->C; c++)
            if (strcmp(a->channel[c], b->channel[c]) != 0)
                return FM_FAIL(err, FM_ERR_MISMATCH, NULL,
                               "modality '%s': channel %d is '%s' here but '%s' in %s", a->name, c,
                               a->channel[c], b->channel[c], what);
    }
    return FM_OK;
}

FmStatus fm_norm_write_h5(hid_t file, const char *group, const FmNorm *norm, FmError *err) {
    char order[4096] = "";
    for (int m = 0; m < norm->M; m++) {
        size_t used = strlen(order);
        snprintf(order + used, sizeof order - used, "%s%s", m ? "," : "", norm->mod[m].name);
    }
    hid_t top;
    FmStatus st = fm_h5_group_create(file, group, &top, err);
    if (st != FM_OK) return st;
    st = fm_h5_attr_write_str(top, "modalities", order, err);
    for (int m = 0; st == FM_OK && m < norm->M; m++) {
        const FmNormModality *nm = &norm->mod[m];
        hid_t g;
        st = fm_h5_group_create(top, nm->name, &g, err);
        if (st != FM_OK) break;
        hsize_t dims[1] = {(hsize_t)nm->C};
        st = fm_h5_attr_write_str(g, "kind", fm_modality_kind_name(nm->kind), err);
        if (st == FM_OK) st = fm_h5_attr_write_i64(g, "standardise", nm->standardise, err);
        if (st == FM_OK) st = fm_h5_write(g, "mean", FM_H5_F64, 1, dims, nm->mean, 0, err);
        if (st == FM_OK) st = fm_h5_write(g, "std", FM_H5_F64, 1, dims, nm->std, 0, err);
        if (st == FM_OK && nm->channel)
            st = fm_h5_strings_write(g, "channel", (const char *const *)nm->channel, (size_t)nm->C, err);
        H5Gclose(g);
    }
    H5Gclose(top);
    return st;
}

/* Splits "a,b,c" into names; *out holds n fm_malloc'd strings. */
static FmStatus split_list(const char *s, char ***out, int *n, const char *where, FmError *err) {
    *out = NULL;
    *n = 0;
    if (!*s) return FM_OK;
    int count = 1;
    for (const char *p = s; *p; p++)
        count += *p == ',';
    char **names = fm_calloc((size_t)count, sizeof *names);
    if (!names) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory");
    const char *p = s;
    for (int i = 0; i < count; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        names[i] = fm_malloc(len + 1);
        if (!names[i]) {
            fm_h5_strings_free(names, (size_t)count);
            return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory");
        }
        memcpy(names[i], p, len);
        names[i][len] = '\0';
        p = e ? e + 1 : p + len;
    }
    *out = names;
    *n = count;
    return FM_OK;
}

FmStatus fm_norm_read_h5(hid_t file, const char *label, const char *group, FmNorm *norm, FmError *err) {
    memset(norm, 0, sizeof *norm);
    char gpath[1200];
    snprintf(gpath, sizeof gpath, "%s:/%s", label, group);
    hid_t top;
    FmStatus st = fm_h5_group_open(file, label, group, &top, err);
    if (st != FM_OK) return st;
    char *order = NULL;
    char **names = NULL;
    int M = 0;
    st = fm_h5_attr_read_str(top, gpath, "modalities", &order, err);
    if (st == FM_OK) st = split_list(order, &names, &M, gpath, err);
    fm_free(order);
    H5Gclose(top);
    if (st != FM_OK) return st;
    norm->mod = fm_calloc(M ? (size_t)M : 1, sizeof *norm->mod);
    if (!norm->mod)
        st = FM_FAIL(err, FM_ERR_NOMEM, gpath, "out of memory");
    else
        norm->M = M;
    for (int m = 0; st == FM_OK && m < M; m++) {
        FmNormModality *nm = &norm->mod[m];
        nm->name = names[m];
        names[m] = NULL;
        char rel[1200], where[1300], ds[1300];
        snprintf(rel, sizeof rel, "%s/%s", group, nm->name);
        snprintf(where, sizeof where, "%s:/%s", label, rel);
        hid_t g;
        st = fm_h5_group_open(file, label, rel, &g, err);
        if (st != FM_OK) break;
        char *kind = NULL;
        int64_t stdz = 1;
        st = fm_h5_attr_read_str(g, where, "kind", &kind, err);
        if (st == FM_OK && fm_modality_kind_parse(kind, &nm->kind) != 0)
            st = FM_FAIL(err, FM_ERR_FORMAT, where, "unknown modality kind '%s'", kind);
        fm_free(kind);
        if (st == FM_OK) st = fm_h5_attr_read_i64(g, where, "standardise", &stdz, err);
        H5Gclose(g);
        nm->standardise = stdz != 0;
        hsize_t dims[1] = {0};
        snprintf(ds, sizeof ds, "%s/mean", rel);
        if (st == FM_OK) st = fm_h5_read(file, label, ds, FM_H5_F64, 1, dims, (void **)&nm->mean, err);
        if (st == FM_OK) {
            nm->C = (int)dims[0];
            snprintf(ds, sizeof ds, "%s/std", rel);
            st = fm_h5_read(file, label, ds, FM_H5_F64, 1, dims, (void **)&nm->std, err);
        }
        snprintf(ds, sizeof ds, "%s/channel", rel);
        if (st == FM_OK && fm_h5_exists(file, ds)) {
            size_t n;
            st = fm_h5_strings_read(file, label, ds, (size_t)nm->C, &nm->channel, &n, err);
        }
        for (int c = 0; st == FM_OK && c < nm->C; c++) {
            if (!isfinite(nm->mean[c]) || !isfinite(nm->std[c]) || nm->std[c] < FM_NORM_STD_FLOOR * 0.999)
                st = FM_FAIL(err, FM_ERR_FORMAT, where, "channel %d: invalid statistics (mean %g, std %g)", c,
                             nm->mean[c], nm->std[c]);
        }
    }
    fm_h5_strings_free(names, (size_t)M);
    if (st != FM_OK) fm_norm_free(norm);
    return st;
}

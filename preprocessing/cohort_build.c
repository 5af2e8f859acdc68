#include "preprocessing/cohort_build.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

#define NOUT FM_OBS_N_OUTCOMES

/* Static candidates of the current stay, per static channel. */
struct FmStaticBest {
    float t;
    float v;
    int32_t n_valid;
};
typedef struct FmStaticBest StaticBest;

static FmStatus nomem(FmError *err) {
    return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory building the cohort");
}

static void free_modality(FmBuildModality *m) {
    fm_free(m->name);
    fm_free(m->time);
    fm_free(m->value);
    fm_free(m->mask);
    fm_free(m->offset);
    fm_free(m->present);
    fm_event_table_free(&m->table);
    fm_free(m->source);
    fm_id_index_free(&m->groups);
    fm_free(m->group_start);
    fm_free(m->group_rows);
    fm_free(m->group_used);
    memset(m, 0, sizeof *m);
}

void fm_cohort_builder_free(FmCohortBuilder *b) {
    if (!b) return;
    for (int m = 0; m < b->M && b->mod; m++)
        free_modality(&b->mod[m]);
    fm_free(b->mod);
    fm_free(b->stay_id);
    fm_free(b->label_row);
    fm_id_index_free(&b->seen);
    fm_free(b->twin_static);
    fm_free(b->items);
    fm_free(b->items_tmp);
    fm_free(b->stay_counts);
    fm_free(b->acc_sum);
    fm_free(b->acc_n);
    fm_free(b->T0);
    fm_free(b->static_best);
    memset(b, 0, sizeof *b);
}

/* Makes room for stay N (stay arrays of N+1 entries, offsets of N+2). */
static FmStatus ensure_stays(FmCohortBuilder *b, FmError *err) {
    if (b->N + 1 < b->cap_N) return FM_OK;
    int64_t cap = b->cap_N ? b->cap_N * 2 : 1024;
    int64_t *ids = fm_realloc(b->stay_id, (size_t)cap * sizeof *ids);
    if (!ids) return nomem(err);
    b->stay_id = ids;
    int32_t *rows = fm_realloc(b->label_row, (size_t)cap * sizeof *rows);
    if (!rows) return nomem(err);
    b->label_row = rows;
    for (int m = 0; m < b->M; m++) {
        FmBuildModality *md = &b->mod[m];
        int64_t *off = fm_realloc(md->offset, (size_t)(cap + 1) * sizeof *off);
        if (!off) return nomem(err);
        md->offset = off;
        uint8_t *pr = fm_realloc(md->present, (size_t)cap);
        if (!pr) return nomem(err);
        md->present = pr;
        md->cap_N = cap;
    }
    b->cap_N = cap;
    return FM_OK;
}

/* Makes room for `extra` more rows in modality md. */
static FmStatus ensure_rows(FmBuildModality *md, int64_t extra, FmError *err) {
    if (md->T + extra <= md->cap_T) return FM_OK;
    int64_t cap = md->cap_T ? md->cap_T : 256;
    while (cap < md->T + extra)
        cap *= 2;
    float *t = fm_realloc(md->time, (size_t)cap * sizeof *t);
    if (!t) return nomem(err);
    md->time = t;
    float *v = fm_realloc(md->value, (size_t)cap * (size_t)md->C * sizeof *v);
    if (!v) return nomem(err);
    md->value = v;
    if (md->kind == FM_MODALITY_SERIES || md->kind == FM_MODALITY_STATIC) {
        uint8_t *k = fm_realloc(md->mask, (size_t)cap * (size_t)md->C);
        if (!k) return nomem(err);
        md->mask = k;
    }
    md->cap_T = cap;
    return FM_OK;
}

static FmStatus ensure_items(FmCohortBuilder *b, size_t n, FmError *err) {
    if (n <= b->cap_items) return FM_OK;
    size_t cap = b->cap_items ? b->cap_items : 1024;
    while (cap < n)
        cap *= 2;
    FmBuildItem *a = fm_realloc(b->items, cap * sizeof *a);
    if (!a) return nomem(err);
    b->items = a;
    FmBuildItem *t = fm_realloc(b->items_tmp, cap * sizeof *t);
    if (!t) return nomem(err);
    b->items_tmp = t;
    b->cap_items = cap;
    return FM_OK;
}

FmStatus fm_cohort_builder_init(FmCohortBuilder *b, const FmVarMap *map, const FmBuildOptions *opt,
                                FmPrepareReport *rep, FmError *err) {
    memset(b, 0, sizeof *b);
    FM_ASSERT(rep->n_entries == map->n_entries);
    b->map = map;
    b->opt = *opt;
    b->rep = rep;
    b->mod = fm_calloc((size_t)map->n_mods + FM_REPORT_MAX_EVENT_MODS, sizeof *b->mod);
    if (!b->mod) return nomem(err);
    b->M = map->n_mods;
    for (int m = 0; m < map->n_mods; m++) {
        FmBuildModality *md = &b->mod[m];
        md->kind = map->mods[m].kind;
        md->C = map->mods[m].C;
        if (md->C > b->max_C) b->max_C = md->C;
        if (!(md->name = fm_strdup(map->mods[m].name))) goto fail;
    }
    b->twin_static = fm_malloc_array((size_t)map->n_entries, sizeof *b->twin_static);
    b->stay_counts = fm_calloc((size_t)map->n_entries * NOUT, sizeof *b->stay_counts);
    b->acc_sum = fm_calloc((size_t)b->max_C + 1, sizeof *b->acc_sum);
    b->acc_n = fm_calloc((size_t)b->max_C + 1, sizeof *b->acc_n);
    b->T0 = fm_calloc((size_t)map->n_mods + FM_REPORT_MAX_EVENT_MODS, sizeof *b->T0);
    b->static_best = fm_calloc((size_t)b->max_C + 1, sizeof *b->static_best);
    if (!b->twin_static || !b->stay_counts || !b->acc_sum || !b->acc_n || !b->T0 || !b->static_best)
        goto fail;
    for (int e = 0; e < map->n_entries; e++) {
        const FmVarEntry *E = &map->entries[e];
        int st = -1;
        if (map->mods[E->modality].kind == FM_MODALITY_SERIES)
            fm_var_map_lookup(map, E->name, strlen(E->name), NULL, &st);
        b->twin_static[e] = st;
    }
    if (ensure_stays(b, err) != FM_OK) goto fail;
    for (int m = 0; m < b->M; m++)
        b->mod[m].offset[0] = 0;
    return FM_OK;
fail:
    fm_cohort_builder_free(b);
    return nomem(err);
}

FmStatus fm_cohort_builder_add_events(FmCohortBuilder *b, const char *name, FmModalityKind kind,
                                      int image_size, FmEventTable *table, const char *source, FmError *err) {
    FmEventTable t = *table;
    memset(table, 0, sizeof *table);
    FM_ASSERT(b->N == 0 && (kind == FM_MODALITY_EVENTS || kind == FM_MODALITY_IMAGES));
    FM_ASSERT(b->rep->n_event_mods < FM_REPORT_MAX_EVENT_MODS);
    FmStatus st = FM_OK;
    if (t.dim <= 0) st = FM_FAIL(err, FM_ERR_FORMAT, source, "items have no values (width %d)", t.dim);
    if (st == FM_OK && kind == FM_MODALITY_IMAGES && t.dim != image_size * image_size)
        st = FM_FAIL(err, FM_ERR_FORMAT, source, "images have %d pixels, expected %d x %d", t.dim, image_size,
                     image_size);
    for (size_t i = 0; st == FM_OK && i < t.n; i++)
        if (!isfinite(t.time_h[i]))
            st = FM_FAIL(err, FM_ERR_FORMAT, source, "row %zu (stay %lld): time is not a finite number", i,
                         (long long)t.stay_id[i]);
    if (st != FM_OK) {
        fm_event_table_free(&t);
        return st;
    }
    FmBuildModality *md = &b->mod[b->M];
    memset(md, 0, sizeof *md);
    md->table = t;
    md->kind = kind;
    md->C = t.dim;
    md->image_size = kind == FM_MODALITY_IMAGES ? image_size : 0;
    b->M++; /* from here on freed with the builder */
    md->name = fm_strdup(name);
    md->source = fm_strdup(source);
    if (!md->name || !md->source) return nomem(err);
    /* Group rows by stay (counting sort on first-appearance order; file order within a stay). */
    int32_t *group_of = fm_malloc_array(t.n ? t.n : 1, sizeof *group_of);
    if (!group_of) return nomem(err);
    for (size_t i = 0; i < t.n && st == FM_OK; i++) {
        int32_t existing;
        st = fm_id_index_put(&md->groups, t.stay_id[i], md->n_groups, &existing, err);
        if (st != FM_OK) break;
        group_of[i] = existing >= 0 ? existing : md->n_groups++;
    }
    if (st == FM_OK) {
        md->group_start = fm_calloc((size_t)md->n_groups + 1, sizeof *md->group_start);
        md->group_rows = fm_malloc_array(t.n ? t.n : 1, sizeof *md->group_rows);
        md->group_used = fm_calloc((size_t)md->n_groups + 1, 1);
        if (!md->group_start || !md->group_rows || !md->group_used) st = nomem(err);
    }
    if (st == FM_OK) {
        for (size_t i = 0; i < t.n; i++)
            md->group_start[group_of[i] + 1]++;
        for (int g = 0; g < md->n_groups; g++)
            md->group_start[g + 1] += md->group_start[g];
        /* Place the rows with a moving cursor per group (a copy of the group starts). */
        int64_t *cursor = fm_malloc_array((size_t)md->n_groups + 1, sizeof *cursor);
        if (!cursor) {
            st = nomem(err);
        } else {
            memcpy(cursor, md->group_start, ((size_t)md->n_groups + 1) * sizeof *cursor);
            for (size_t i = 0; i < t.n; i++)
                md->group_rows[cursor[group_of[i]]++] = (int32_t)i;
            fm_free(cursor);
        }
    }
    fm_free(group_of);
    if (st != FM_OK) return st;
    /* Offsets for the stays so far (none: add_events comes first) and the report slot. */
    md->offset = fm_malloc_array((size_t)b->cap_N + 1, sizeof *md->offset);
    md->present = fm_malloc((size_t)b->cap_N);
    if (!md->offset || !md->present) return nomem(err);
    md->offset[0] = 0;
    md->cap_N = b->cap_N;
    FmPrepareReport *rep = b->rep;
    md->report_slot = rep->n_event_mods++;
    snprintf(rep->event_name[md->report_slot], sizeof rep->event_name[0], "%s", name);
    rep->events_read[md->report_slot] = (int64_t)t.n;
    return FM_OK;
}

/* Classifies a value/time against entry E (rules 1-4); FM_OBS_KEPT means valid. */
static FmObsOutcome classify(const FmCohortBuilder *b, const FmVarEntry *E, double t, double v) {
    if (isnan(v)) return FM_OBS_MISSING;
    if (b->opt.has_sentinel && v == b->opt.sentinel) return FM_OBS_SENTINEL;
    if (t < 0) return FM_OBS_BEFORE_WINDOW;
    if (t > b->opt.window_h) return FM_OBS_AFTER_WINDOW;
    if (v < E->min) return FM_OBS_BELOW_RANGE;
    if (v > E->max) return FM_OBS_ABOVE_RANGE;
    return FM_OBS_KEPT;
}

/* A valid value as stored: log(1 + v) for a log1p variable (the mapping's transform column). */
static double stored_value(const FmVarEntry *E, double v) { return E->log1p ? log1p(v) : v; }

/* Stable sort of items by time; input is usually already in order. */
static void sort_items(FmBuildItem *a, FmBuildItem *tmp, size_t n) {
    size_t i = 1;
    while (i < n && a[i - 1].t <= a[i].t)
        i++;
    if (i >= n) return;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t p = lo, q = mid, k = lo;
            while (p < mid && q < hi)
                tmp[k++] = a[q].t < a[p].t ? a[q++] : a[p++];
            while (p < mid)
                tmp[k++] = a[p++];
            while (q < hi)
                tmp[k++] = a[q++];
        }
        memcpy(a, tmp, n * sizeof *a);
    }
}

FmStatus fm_cohort_builder_add_stay(FmCohortBuilder *b, int64_t stay_id, int32_t label_row,
                                    const FmRawObs *obs, size_t n, size_t n_raw_series, const char *where,
                                    int *kept, FmError *err) {
    *kept = 0;
    const FmVarMap *map = b->map;
    int32_t existing;
    FmStatus st = fm_id_index_put(&b->seen, stay_id, (int32_t)b->seen.n, &existing, err);
    if (st != FM_OK) return st;
    if (existing >= 0)
        return FM_FAIL(err, FM_ERR_FORMAT, where, "stay %lld was already read", (long long)stay_id);
    if ((st = ensure_stays(b, err)) != FM_OK) return st;
    if ((st = ensure_items(b, n + 1, err)) != FM_OK) return st;
    memset(b->stay_counts, 0, (size_t)map->n_entries * NOUT * sizeof *b->stay_counts);
    int64_t *cnt = b->stay_counts;

    /* Static candidates, one per static channel (the builder's buffer holds max_C). */
    int ms = fm_var_map_modality(map, "static");
    StaticBest *best = b->static_best;
    int Cs = ms >= 0 ? map->mods[ms].C : 0;
    for (int c = 0; c < Cs; c++)
        best[c] = (StaticBest){INFINITY, 0, 0};

    /* Rules 1-5 and collection of valid series observations. */
    size_t n_items = 0;
    for (size_t i = 0; i < n; i++) {
        const FmRawObs *o = &obs[i];
        const FmVarEntry *E = &map->entries[o->entry];
        int to_static = map->mods[E->modality].kind == FM_MODALITY_STATIC;
        FmObsOutcome out = classify(b, E, o->time_h, o->value);
        if (to_static) {
            if (out == FM_OBS_KEPT && b->opt.marked_descriptors && !o->descriptor)
                out = FM_OBS_EXTRA_DESCRIPTOR;
            if (out != FM_OBS_KEPT) {
                cnt[o->entry * NOUT + out]++;
                continue;
            }
            StaticBest *sb = &best[E->channel];
            sb->n_valid++;
            if (o->time_h < sb->t) sb->t = o->time_h, sb->v = stored_value(E, o->value);
            continue;
        }
        if (out != FM_OBS_KEPT)
            cnt[o->entry * NOUT + out]++;
        else
            b->items[n_items++] = (FmBuildItem){o->time_h, o->entry, stored_value(E, o->value), (int32_t)i};
        /* Sources without descriptor lines: a series variable also named in static gives the
         * static channel its first valid value. */
        int twin = b->twin_static[o->entry];
        if (twin >= 0 && !b->opt.marked_descriptors) {
            const FmVarEntry *S = &map->entries[twin];
            FmObsOutcome so = classify(b, S, o->time_h, o->value);
            if (so != FM_OBS_KEPT) {
                cnt[twin * NOUT + so]++;
            } else {
                StaticBest *sb = &best[S->channel];
                sb->n_valid++;
                if (o->time_h < sb->t) sb->t = o->time_h, sb->v = stored_value(S, o->value);
            }
        }
    }
    sort_items(b->items, b->items_tmp, n_items);

    int64_t *T0 = b->T0;
    for (int m = 0; m < b->M; m++)
        T0[m] = b->mod[m].T;
    int64_t valid_nonstatic = 0, raw_events = 0;

    /* Rule 6: rows of each series modality, duplicates merged by their mean. */
    for (int m = 0; m < map->n_mods; m++) {
        FmBuildModality *md = &b->mod[m];
        if (md->kind != FM_MODALITY_SERIES) continue;
        size_t i = 0;
        while (i < n_items) {
            size_t j = i;
            int any = 0;
            while (j < n_items && b->items[j].t == b->items[i].t) {
                const FmVarEntry *E = &map->entries[b->items[j].ch];
                if (E->modality == m) {
                    b->acc_sum[E->channel] += b->items[j].v;
                    b->acc_n[E->channel]++;
                    any = 1;
                }
                j++;
            }
            if (any) {
                if ((st = ensure_rows(md, 1, err)) != FM_OK) return st;
                float *val = md->value + md->T * md->C;
                uint8_t *msk = md->mask + md->T * md->C;
                for (int c = 0; c < md->C; c++) {
                    int32_t k = b->acc_n[c];
                    val[c] = k ? (float)(b->acc_sum[c] / k) : 0.0f;
                    msk[c] = k > 0;
                    if (k) {
                        int e = map->mods[m].entry[c];
                        cnt[e * NOUT + FM_OBS_KEPT]++;
                        cnt[e * NOUT + FM_OBS_DUPLICATE] += k - 1;
                    }
                    b->acc_sum[c] = 0;
                    b->acc_n[c] = 0;
                }
                md->time[md->T++] = b->items[i].t;
                valid_nonstatic++;
            }
            i = j;
        }
    }

    /* Static row: the first valid value of each descriptor. */
    if (ms >= 0) {
        FmBuildModality *md = &b->mod[ms];
        int any = 0;
        for (int c = 0; c < Cs; c++)
            any |= best[c].n_valid > 0;
        if (any) {
            if ((st = ensure_rows(md, 1, err)) != FM_OK) return st;
            float *val = md->value + md->T * md->C;
            uint8_t *msk = md->mask + md->T * md->C;
            for (int c = 0; c < Cs; c++) {
                int e = map->mods[ms].entry[c];
                val[c] = best[c].n_valid ? best[c].v : 0.0f;
                msk[c] = best[c].n_valid > 0;
                if (best[c].n_valid) {
                    cnt[e * NOUT + FM_OBS_KEPT]++;
                    cnt[e * NOUT + FM_OBS_EXTRA_DESCRIPTOR] += best[c].n_valid - 1;
                }
            }
            md->time[md->T++] = 0.0f;
        }
    }

    /* Events of this stay. */
    int64_t ev_cnt[FM_REPORT_MAX_EVENT_MODS][FM_EVENT_N_OUTCOMES];
    memset(ev_cnt, 0, sizeof ev_cnt);
    for (int m = map->n_mods; m < b->M; m++) {
        FmBuildModality *md = &b->mod[m];
        int32_t g = fm_id_index_get(&md->groups, stay_id);
        if (g < 0) continue;
        md->group_used[g] = 1;
        int64_t r0 = md->group_start[g], r1 = md->group_start[g + 1];
        raw_events += r1 - r0;
        if ((st = ensure_items(b, (size_t)(r1 - r0) + 1, err)) != FM_OK) return st;
        size_t k = 0;
        for (int64_t r = r0; r < r1; r++) {
            int32_t row = md->group_rows[r];
            double t = md->table.time_h[row];
            const float *v = md->table.values + (size_t)row * (size_t)md->C;
            FmEventOutcome out = FM_EVENT_KEPT;
            if (t < 0)
                out = FM_EVENT_BEFORE_WINDOW;
            else if (t > b->opt.window_h)
                out = FM_EVENT_AFTER_WINDOW;
            else
                for (int c = 0; c < md->C; c++)
                    if (!isfinite(v[c])) {
                        out = FM_EVENT_NONFINITE;
                        break;
                    }
            ev_cnt[md->report_slot][out]++;
            if (out == FM_EVENT_KEPT) b->items[k++] = (FmBuildItem){(float)t, 0, 0, row};
        }
        sort_items(b->items, b->items_tmp, k);
        if ((st = ensure_rows(md, (int64_t)k, err)) != FM_OK) return st;
        for (size_t i = 0; i < k; i++) {
            int32_t row = b->items[i].seq;
            md->time[md->T] = b->items[i].t;
            memcpy(md->value + md->T * md->C, md->table.values + (size_t)row * (size_t)md->C,
                   (size_t)md->C * sizeof(float));
            md->T++;
        }
        valid_nonstatic += (int64_t)k;
    }

    /* Rule 7. */
    FmPrepareReport *rep = b->rep;
    int drop = 0;
    if (n_raw_series + (size_t)raw_events == 0) {
        drop = 1;
        rep->stays_no_time_series++;
    } else if (valid_nonstatic == 0) {
        drop = 1;
        rep->stays_no_valid_obs++;
    }
    if (drop) {
        for (int m = 0; m < b->M; m++)
            b->mod[m].T = T0[m];
        for (int e = 0; e < map->n_entries; e++) {
            cnt[e * NOUT + FM_OBS_STAY_DROPPED] +=
                cnt[e * NOUT + FM_OBS_KEPT] + cnt[e * NOUT + FM_OBS_DUPLICATE];
            cnt[e * NOUT + FM_OBS_KEPT] = cnt[e * NOUT + FM_OBS_DUPLICATE] = 0;
        }
        for (int s = 0; s < rep->n_event_mods; s++) {
            ev_cnt[s][FM_EVENT_STAY_DROPPED] += ev_cnt[s][FM_EVENT_KEPT];
            ev_cnt[s][FM_EVENT_KEPT] = 0;
        }
    } else {
        for (int m = 0; m < b->M; m++) {
            FmBuildModality *md = &b->mod[m];
            int64_t L = md->T - T0[m];
            md->offset[b->N + 1] = md->T;
            md->present[b->N] = L > 0;
            if (L > md->max_L) md->max_L = (int)L;
        }
        b->stay_id[b->N] = stay_id;
        b->label_row[b->N] = label_row;
        b->N++;
        rep->stays_kept++;
        for (int e = 0; e < map->n_entries; e++)
            rep->stays_with_var[e] += cnt[e * NOUT + FM_OBS_KEPT] > 0;
        *kept = 1;
    }
    for (size_t i = 0; i < (size_t)map->n_entries * NOUT; i++)
        rep->obs[i] += cnt[i];
    for (int s = 0; s < rep->n_event_mods; s++)
        for (int o = 0; o < FM_EVENT_N_OUTCOMES; o++)
            rep->events[s][o] += ev_cnt[s][o];
    return FM_OK;
}

FmStatus fm_cohort_builder_finish(FmCohortBuilder *b, FmCohort *c, int32_t **label_rows, FmError *err) {
    const FmVarMap *map = b->map;
    *label_rows = NULL;
    /* Every data array exists, even for a modality no stay has. */
    for (int m = 0; m < b->M; m++) {
        FmStatus st0 = ensure_rows(&b->mod[m], 1, err);
        if (st0 != FM_OK) return st0;
    }
    FmCohortModality *mods = fm_calloc((size_t)b->M, sizeof *mods);
    if (!mods) return nomem(err);
    FmStatus st = FM_OK;
    for (int m = 0; m < b->M && st == FM_OK; m++) {
        FmBuildModality *md = &b->mod[m];
        FmCohortModality *cm = &mods[m];
        cm->kind = md->kind;
        cm->C = md->C;
        cm->image_size = md->image_size;
        cm->standardise = md->kind != FM_MODALITY_IMAGES;
        cm->count = fm_malloc_array((size_t)b->N + 1, sizeof *cm->count);
        if (!cm->count) {
            st = nomem(err);
            break;
        }
        if (m < map->n_mods) {
            const FmVarModality *vm = &map->mods[m];
            cm->channel = fm_calloc((size_t)vm->C, sizeof *cm->channel);
            cm->range_min = fm_malloc_array((size_t)vm->C, sizeof(double));
            cm->range_max = fm_malloc_array((size_t)vm->C, sizeof(double));
            if (!cm->channel || !cm->range_min || !cm->range_max) {
                st = nomem(err);
                break;
            }
            for (int k = 0; k < vm->C; k++) {
                const FmVarEntry *E = &map->entries[vm->entry[k]];
                cm->range_min[k] = E->min;
                cm->range_max[k] = E->max;
                char name[300];
                snprintf(name, sizeof name, E->log1p ? "log1p(%s)" : "%s", E->name);
                if (!(cm->channel[k] = fm_strdup(name))) {
                    st = nomem(err);
                    break;
                }
            }
        }
    }
    if (st == FM_OK) {
        *label_rows = b->label_row;
        b->label_row = NULL;
        if (!*label_rows) st = nomem(err);
    }
    if (st != FM_OK) {
        /* Free what was built here; the builder still owns the data arrays. */
        for (int m = 0; m < b->M; m++) {
            if (mods[m].channel)
                for (int k = 0; k < mods[m].C; k++)
                    fm_free(mods[m].channel[k]);
            fm_free(mods[m].channel);
            fm_free(mods[m].range_min);
            fm_free(mods[m].range_max);
            fm_free(mods[m].count);
        }
        fm_free(mods);
        return st;
    }
    /* Event rows whose stay never appeared. */
    for (int m = map->n_mods; m < b->M; m++) {
        FmBuildModality *md = &b->mod[m];
        for (int g = 0; g < md->n_groups; g++)
            if (!md->group_used[g])
                b->rep->events[md->report_slot][FM_EVENT_UNKNOWN_STAY] +=
                    md->group_start[g + 1] - md->group_start[g];
    }
    /* Move the arrays. */
    for (int m = 0; m < b->M; m++) {
        FmBuildModality *md = &b->mod[m];
        FmCohortModality *cm = &mods[m];
        cm->name = md->name;
        md->name = NULL;
        cm->T = md->T;
        cm->offset = md->offset;
        cm->present = md->present;
        cm->time = md->time;
        cm->value = md->value;
        cm->mask = md->mask;
        cm->max_L = md->max_L;
        md->offset = NULL;
        md->present = NULL;
        md->time = NULL;
        md->value = NULL;
        md->mask = NULL;
        for (int64_t i = 0; i < b->N; i++)
            cm->count[i] = (int32_t)(cm->offset[i + 1] - cm->offset[i]);
    }
    c->N = b->N;
    c->stay_id = b->stay_id;
    b->stay_id = NULL;
    c->M = b->M;
    c->mod = mods;
    fm_cohort_builder_free(b);
    return FM_OK;
}

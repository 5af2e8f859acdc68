#include "preprocessing/report.h"

#include <math.h>
#include <string.h>

#include "preprocessing/modality.h"
#include "src/alloc.h"

static const char *const OBS_NAMES[FM_OBS_N_OUTCOMES] = {
    "kept",        "missing",     "sentinel",  "before_window",    "after_window",
    "below_range", "above_range", "duplicate", "extra_descriptor", "stay_dropped"};
/* Column heads of the observation table (the legend under it spells them out). */
static const char *const OBS_HEADS[FM_OBS_N_OUTCOMES] = {"kept", "missing", "sentinel", "<0h",   ">window",
                                                         "<min", ">max",    "dup",      "extra", "stay_drop"};
static const char *const EVENT_NAMES[FM_EVENT_N_OUTCOMES] = {"kept",      "before_window", "after_window",
                                                             "nonfinite", "unknown_stay",  "stay_dropped"};

const char *fm_obs_outcome_name(FmObsOutcome o) {
    FM_ASSERT(o >= 0 && o < FM_OBS_N_OUTCOMES);
    return OBS_NAMES[o];
}

const char *fm_event_outcome_name(FmEventOutcome o) {
    FM_ASSERT(o >= 0 && o < FM_EVENT_N_OUTCOMES);
    return EVENT_NAMES[o];
}

FmStatus fm_report_init(FmPrepareReport *rep, int n_entries, FmError *err) {
    memset(rep, 0, sizeof *rep);
    rep->obs = fm_calloc((size_t)(n_entries ? n_entries : 1) * FM_OBS_N_OUTCOMES, sizeof *rep->obs);
    rep->stays_with_var = fm_calloc((size_t)(n_entries ? n_entries : 1), sizeof *rep->stays_with_var);
    if (!rep->obs || !rep->stays_with_var) {
        fm_report_free(rep);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the report");
    }
    rep->n_entries = n_entries;
    return FM_OK;
}

void fm_report_free(FmPrepareReport *rep) {
    if (!rep) return;
    fm_free(rep->obs);
    fm_free(rep->stays_with_var);
    for (int i = 0; i < rep->n_unmapped; i++)
        fm_free(rep->unmapped[i].name);
    fm_free(rep->unmapped);
    fm_free(rep->unmapped_slot);
    memset(rep, 0, sizeof *rep);
}

static size_t name_hash(const char *s, size_t len) {
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

/* Slot of `name` in the hash of unmapped names: its index there, or the empty slot to use. */
static size_t unmapped_find(const FmPrepareReport *rep, const char *name, size_t len) {
    size_t mask = (size_t)rep->unmapped_slots - 1, s = name_hash(name, len) & mask;
    for (;;) {
        int k = rep->unmapped_slot[s];
        if (k < 0) return s;
        const char *e = rep->unmapped[k].name;
        if (strncmp(e, name, len) == 0 && e[len] == '\0') return s;
        s = (s + 1) & mask;
    }
}

FmStatus fm_report_unmapped(FmPrepareReport *rep, const char *name, size_t len, FmError *err) {
    if (rep->unmapped_slots) {
        size_t s = unmapped_find(rep, name, len);
        if (rep->unmapped_slot[s] >= 0) {
            rep->unmapped[rep->unmapped_slot[s]].count++;
            rep->obs_unmapped++;
            return FM_OK;
        }
    }
    /* A new name: keep the table at most half full. */
    if ((rep->n_unmapped + 1) * 2 > rep->unmapped_slots) {
        int slots = rep->unmapped_slots ? rep->unmapped_slots * 2 : 64;
        int *table = fm_malloc_array((size_t)slots, sizeof *table);
        if (!table) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the report");
        for (int i = 0; i < slots; i++)
            table[i] = -1;
        fm_free(rep->unmapped_slot);
        rep->unmapped_slot = table;
        rep->unmapped_slots = slots;
        for (int k = 0; k < rep->n_unmapped; k++) {
            const char *e = rep->unmapped[k].name;
            rep->unmapped_slot[unmapped_find(rep, e, strlen(e))] = k;
        }
    }
    FmNamedCount *p = fm_realloc(rep->unmapped, (size_t)(rep->n_unmapped + 1) * sizeof *p);
    if (!p) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the report");
    rep->unmapped = p;
    char *copy = fm_malloc(len + 1);
    if (!copy) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the report");
    memcpy(copy, name, len);
    copy[len] = '\0';
    rep->unmapped_slot[unmapped_find(rep, copy, len)] = rep->n_unmapped;
    rep->unmapped[rep->n_unmapped++] = (FmNamedCount){copy, 1};
    rep->obs_unmapped++;
    return FM_OK;
}

static double pct(int64_t a, int64_t b) {
    return b ? 100.0 * (double)a / (double)b : 0.0;
}

void fm_report_write_text(const FmPrepareReport *rep, const FmVarMap *map, const FmCohort *c, FILE *out) {
    fprintf(out, "== inputs\n");
    fprintf(out, "observation lines read        %12lld\n", (long long)rep->lines_read);
    fprintf(out, "stays read                    %12lld\n", (long long)rep->records_read);
    fprintf(out, "outcome rows read             %12lld  (deaths %lld)\n", (long long)rep->outcome_rows,
            (long long)rep->outcome_deaths);
    fprintf(out, "outcome rows without a stay   %12lld  (ignored)\n", (long long)rep->outcomes_without_stay);
    if (rep->split_rows_without_stay)
        fprintf(out, "split rows without a stay     %12lld  (ignored)\n",
                (long long)rep->split_rows_without_stay);

    fprintf(out, "\n== stays\n");
    fprintf(out, "dropped: no time series       %12lld\n", (long long)rep->stays_no_time_series);
    fprintf(out, "dropped: no valid observation %12lld\n", (long long)rep->stays_no_valid_obs);
    fprintf(out, "kept                          %12lld\n", (long long)c->N);

    fprintf(out, "\n== labels (kept stays)\n");
    fprintf(out, "%-24s %-10s %8s %8s %10s\n", "label", "kind", "known", "positive", "mean");
    for (int l = 0; l < c->n_labels; l++) {
        int64_t known = 0, pos = 0;
        double sum = 0;
        for (int64_t i = 0; i < c->N; i++) {
            size_t k = (size_t)i * (size_t)c->n_labels + (size_t)l;
            if (!c->label_mask[k]) continue;
            known++;
            sum += c->label[k];
            pos += c->label[k] > 0.5f;
        }
        if (c->label_info[l].kind == FM_LABEL_BINARY)
            fprintf(out, "%-24s %-10s %8lld %8lld %9.2f%%\n", c->label_info[l].name, "binary",
                    (long long)known, (long long)pos, pct(pos, known));
        else
            fprintf(out, "%-24s %-10s %8lld %8s %10.4f\n", c->label_info[l].name, "regression",
                    (long long)known, "", known ? sum / (double)known : 0.0);
    }

    fprintf(out, "\n== observations by variable and outcome (stays%%: kept stays with any kept value)\n");
    fprintf(out, "%-12s %-8s %9s", "variable", "modality", "read");
    for (int o = 0; o < FM_OBS_N_OUTCOMES; o++)
        fprintf(out, " %9s", OBS_HEADS[o]);
    fprintf(out, " %7s\n", "stays%");
    int64_t total[FM_OBS_N_OUTCOMES] = {0}, total_read = 0;
    for (int e = 0; e < map->n_entries; e++) {
        const int64_t *row = rep->obs + (size_t)e * FM_OBS_N_OUTCOMES;
        int64_t read = 0;
        for (int o = 0; o < FM_OBS_N_OUTCOMES; o++)
            read += row[o], total[o] += row[o];
        total_read += read;
        fprintf(out, "%-12s %-8s %9lld", map->entries[e].name, map->mods[map->entries[e].modality].name,
                (long long)read);
        for (int o = 0; o < FM_OBS_N_OUTCOMES; o++)
            fprintf(out, " %9lld", (long long)row[o]);
        fprintf(out, " %6.1f%%\n", pct(rep->stays_with_var[e], c->N));
    }
    fprintf(out, "%-12s %-8s %9lld", "total", "", (long long)total_read);
    for (int o = 0; o < FM_OBS_N_OUTCOMES; o++)
        fprintf(out, " %9lld", (long long)total[o]);
    fprintf(out, "\n");
    fprintf(
        out,
        "read = kept + the rest. missing: empty/NaN value. sentinel: the not-recorded code. <0h, >window:\n"
        "time before admission or after the window. <min, >max: outside the mapping's plausible range.\n"
        "dup: merged into the mean of its (time, variable) group. extra: a later value of a static\n"
        "variable (the first valid one is kept). stay_drop: valid, but its stay was dropped.\n");

    fprintf(out, "\n== variables not in the mapping (dropped)   %lld observations\n",
            (long long)rep->obs_unmapped);
    for (int i = 0; i < rep->n_unmapped; i++)
        fprintf(out, "%-24s %12lld\n", rep->unmapped[i].name, (long long)rep->unmapped[i].count);

    if (rep->n_event_mods) {
        fprintf(out, "\n== events (notes, images)\n");
        fprintf(out, "%-16s %9s", "modality", "read");
        for (int o = 0; o < FM_EVENT_N_OUTCOMES; o++)
            fprintf(out, " %13s", EVENT_NAMES[o]);
        fprintf(out, "\n");
        for (int s = 0; s < rep->n_event_mods; s++) {
            fprintf(out, "%-16s %9lld", rep->event_name[s], (long long)rep->events_read[s]);
            for (int o = 0; o < FM_EVENT_N_OUTCOMES; o++)
                fprintf(out, " %13lld", (long long)rep->events[s][o]);
            fprintf(out, "\n");
        }
    }

    fprintf(out, "\n== missingness per modality (kept stays)\n");
    fprintf(out, "%-16s %-8s %8s %9s %9s %8s %8s\n", "modality", "kind", "channels", "present", "missing",
            "rows", "max rows");
    for (int m = 0; m < c->M; m++) {
        const FmCohortModality *md = &c->mod[m];
        int64_t present = 0;
        for (int64_t i = 0; i < c->N; i++)
            present += md->present[i];
        fprintf(out, "%-16s %-8s %8d %8.2f%% %8.2f%% %8lld %8d\n", md->name, fm_modality_kind_name(md->kind),
                md->C, pct(present, c->N), 100.0 - pct(present, c->N), (long long)md->T, md->max_L);
    }
    if (c->n_splits) {
        fprintf(out, "\n== splits (stays in train / val / test)\n");
        for (int s = 0; s < c->n_splits; s++) {
            int64_t n[4] = {0};
            for (int64_t i = 0; i < c->N; i++)
                n[c->split[s].part[i]]++;
            fprintf(out, "%-16s %8lld %8lld %8lld", c->split[s].name, (long long)n[0], (long long)n[1],
                    (long long)n[2]);
            if (n[3]) fprintf(out, "   (%lld in no part)", (long long)n[3]);
            fprintf(out, "\n");
        }
    }
}

/* predictions.csv (src/evaluate_csv.h). */
#include "src/evaluate_csv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/atomic_file.h"

/* The shortest "%.{1..9}g" text that reads back (strtof) as exactly x: predictions are
 * float32, and 9 significant digits always suffice for one. */
static void format_float(char *buf, size_t cap, float x) {
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, cap, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) return;
    }
}

FmStatus fm_evaluate_write_predictions(const char *path, const FmPredictions *p, const char *const *label_names,
                                       int with_labels, FmError *err) {
    FmAtomicFile af;
    FmStatus st = fm_atomic_open(&af, path, err);
    if (st != FM_OK) return st;
    fputs(with_labels ? "stay_id,task,y_true,y_score\n" : "stay_id,task,y_score\n", af.f);
    for (int64_t i = 0; i < p->n; i++)
        for (int j = 0; j < p->n_labels; j++) {
            size_t at = (size_t)i * p->n_labels + j;
            if (with_labels && !p->mask[at]) continue;
            char y[40], s[40];
            format_float(s, sizeof s, p->score[at]);
            if (with_labels) {
                format_float(y, sizeof y, p->label[at]);
                fprintf(af.f, "%" PRId64 ",%s,%s,%s\n", p->stay_id[i], label_names[j], y, s);
            } else {
                fprintf(af.f, "%" PRId64 ",%s,%s\n", p->stay_id[i], label_names[j], s);
            }
        }
    return fm_atomic_close(&af, err);
}

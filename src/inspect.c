/* Looking inside a trained model (src/inspect.h). */
#include "src/inspect.h"

#include <stdio.h>
#include <string.h>

#include "src/alloc.h"

void fm_inspect_part_of(const char *tensor, char *buf, size_t cap) {
    /* The first n dot-separated fields of the name. */
    const char *p = tensor;
    int fields = 1;
    if (strncmp(tensor, "encoder.", 8) == 0) fields = 2;
    if (strncmp(tensor, "fusion.", 7) == 0) {
        const char *rest = tensor + 7;
        if (strncmp(rest, "norm.", 5) == 0) {
            snprintf(buf, cap, "fusion.norm");
            return;
        }
        size_t l = strcspn(rest, ".");
        const char *what = strstr(rest, ".moe.router") == rest + l   ? "router"
                           : strstr(rest, ".moe.experts") == rest + l ? "experts"
                           : strstr(rest, ".moe.") == rest + l        ? "router"
                                                                     : "attention";
        snprintf(buf, cap, "fusion.%.*s.%s", (int)l, rest, what);
        return;
    }
    for (int f = 0; f < fields && *p; f++) {
        p += strcspn(p, ".");
        if (f + 1 < fields && *p) p++;
    }
    snprintf(buf, cap, "%.*s", (int)(p - tensor), tensor);
}

FmStatus fm_inspect_parts(const FmModel *model, FmParamPart **parts, int *n, FmError *err) {
    const FmParams *p = &model->params;
    *parts = fm_calloc((size_t)(p->n_tensors ? p->n_tensors : 1), sizeof **parts);
    *n = 0;
    if (!*parts) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int t = 0; t < p->n_tensors; t++) {
        char name[FM_INSPECT_PART_MAX];
        fm_inspect_part_of(p->tensors[t].name, name, sizeof name);
        int k = 0;
        while (k < *n && strcmp((*parts)[k].name, name) != 0) k++;
        if (k == *n) {
            snprintf((*parts)[k].name, sizeof (*parts)[k].name, "%s", name);
            (*n)++;
        }
        (*parts)[k].tensors++;
        (*parts)[k].count += p->tensors[t].count;
    }
    return FM_OK;
}

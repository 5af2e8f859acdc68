#include "preprocessing/event_table.h"

#include <string.h>

#include "src/alloc.h"

void fm_event_table_free(FmEventTable *t) {
    if (!t) return;
    fm_free(t->stay_id);
    fm_free(t->time_h);
    fm_free(t->values);
    memset(t, 0, sizeof *t);
}

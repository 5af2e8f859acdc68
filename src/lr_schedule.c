#include "src/lr_schedule.h"

#include <math.h>

float fm_lr_at(const FmLrSchedule *s, long step) {
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return s->base_lr * (float)(step + 1) / (float)s->warmup_steps;
    if (s->kind == FM_SCHEDULE_CONSTANT) return s->base_lr;
    long span = s->total_steps - s->warmup_steps;
    double progress = span > 1 ? (double)(step - s->warmup_steps) / (double)(span - 1) : 1.0;
    if (progress > 1.0) progress = 1.0;
    double f = s->final_fraction;
    return (float)(s->base_lr * (f + (1.0 - f) * 0.5 * (1.0 + cos(M_PI * progress))));
}

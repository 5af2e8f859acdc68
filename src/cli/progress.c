#include "src/cli/progress.h"

#include <time.h>
#include <unistd.h>

double fm_progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fm_progress_begin(FmProgress *p, FILE *out, long total) {
    p->out = out;
    p->tty = isatty(fileno(out));
    p->start_s = fm_progress_now();
    p->last_draw_s = -1e9;
    p->plain_every_s = 30.0;
    p->total = total > 0 ? total : 1;
}

static void format_duration(char *buf, size_t cap, double s) {
    if (s < 0 || s != s) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

void fm_progress_update(FmProgress *p, long done, int epoch, int epochs, double loss,
                        double stays_per_s, int force) {
    double now = fm_progress_now();
    double interval = p->tty ? 0.2 : p->plain_every_s;
    if (!force && now - p->last_draw_s < interval) return;
    p->last_draw_s = now;
    double frac = (double)done / (double)p->total;
    if (frac > 1) frac = 1;
    double elapsed = now - p->start_s;
    char left[32], spent[32];
    format_duration(left, sizeof left, frac > 0 ? elapsed * (1 - frac) / frac : 0);
    format_duration(spent, sizeof spent, elapsed);
    if (p->tty) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int filled = (int)(frac * WIDTH);
        for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(p->out, "\r[%s] %3.0f%% epoch %d/%d loss %.4f %.0f stays/s %s left ", bar, 100 * frac, epoch,
                epochs, loss, stays_per_s, left);
    } else {
        fprintf(p->out, "progress %.0f%% epoch %d/%d loss %.4f %.0f stays/s elapsed %s left %s\n", 100 * frac,
                epoch, epochs, loss, stays_per_s, spent, left);
    }
    fflush(p->out);
}

void fm_progress_end(FmProgress *p) {
    if (p->tty) fputc('\n', p->out);
    fflush(p->out);
}

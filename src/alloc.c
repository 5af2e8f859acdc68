#include "src/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long g_calls;
static atomic_long g_fail_at; /* 0: never fail */

/* Counts the call and says whether it must fail under the current injection setting. */
static int injected_failure(void) {
    long n = atomic_fetch_add(&g_calls, 1) + 1;
    long at = atomic_load(&g_fail_at);
    return at > 0 && n >= at;
}

void *fm_malloc(size_t size) {
    if (injected_failure()) return NULL;
    return malloc(size ? size : 1);
}

void *fm_malloc_array(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    return fm_malloc(count * size);
}

void *fm_calloc(size_t count, size_t size) {
    if (injected_failure()) return NULL;
    if (!count || !size) return calloc(1, 1);
    return calloc(count, size);
}

void *fm_realloc(void *ptr, size_t size) {
    if (injected_failure()) return NULL;
    return realloc(ptr, size ? size : 1);
}

void fm_free(void *ptr) { free(ptr); }

char *fm_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = fm_malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

void fm_alloc_fail_after(long n) {
    atomic_store(&g_calls, 0);
    atomic_store(&g_fail_at, n);
}

void fm_alloc_fail_reset(void) { fm_alloc_fail_after(0); }

long fm_alloc_calls(void) { return atomic_load(&g_calls); }

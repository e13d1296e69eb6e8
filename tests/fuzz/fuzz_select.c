/*
 * fuzz_select.c - libFuzzer target for message selectors (issue 13,
 * src/select): compile whatever text a SUBSCRIBE may carry, match it
 * against whatever header block a message may have, free it. Never a
 * crash, a leak, an out-of-bounds read or undefined behaviour.
 *
 * The input is split at its first NUL: the bytes before are the selector
 * text, the bytes after the header block (none when there is no NUL). For
 * each input it also checks that
 *   - a failed compile is STP_EINVAL with a one-line "at N: ..." message
 *     whose N is a position inside the text (or just after it);
 *   - NOT (X) never matches when X does (when NOT (X) is within bounds);
 *   - a lookup whose pointers die at its next call (every value copied to
 *     one buffer, which is scribbled over first) gives the same answer as
 *     stp_selector_header_lookup itself.
 *
 *   meson compile -C build-fuzz fuzz_select && mkdir -p /tmp/select && \
 *       build-fuzz/tests/fuzz/fuzz_select /tmp/select tests/fuzz/corpus/select \
 *       -dict=tests/fuzz/select.dict -max_total_time=120
 */
#include "select/select.h"
#include "stampede/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_select: %s\n", #cond);                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct hostile {
    struct stp_selector_headers h;
    char buf[1 << 16];
};

static const char *hostile_lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    struct hostile *x = ctx;
    memset(x->buf, 0xa5, 64); /* what the last call returned is gone */
    const char *v = stp_selector_header_lookup(&x->h, name, name_len, value_len);
    if (!v || *value_len > sizeof(x->buf))
        return v; /* (longer than the buffer: left as it is) */
    memmove(x->buf, v, *value_len);
    memset(x->h.scratch, 0x5a, sizeof(x->h.scratch));
    return x->buf;
}

static void check_error(int rc, const struct stp_selector *s, const char *err, size_t len)
{
    CHECK(rc == STP_EINVAL && s == NULL);
    CHECK(strncmp(err, "at ", 3) == 0 && strchr(err, '\n') == NULL);
    char *end;
    unsigned long pos = strtoul(err + 3, &end, 10);
    CHECK(end != err + 3 && end[0] == ':' && end[1] == ' ' && end[2] != '\0');
    size_t limit = len > STP_SELECTOR_MAX_TEXT ? STP_SELECTOR_MAX_TEXT : len;
    CHECK(pos >= 1 && pos <= limit + 1); /* characters are never more than bytes */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - text) : size;
    const char *block = nul ? nul + 1 : "";
    size_t blen = nul ? size - tlen - 1 : 0;

    char err[128];
    struct stp_selector *s = NULL;
    int rc = stp_selector_compile(&s, text, tlen, err, sizeof(err));
    if (rc != 0) {
        check_error(rc, s, err, tlen);
        return 0;
    }
    CHECK(s != NULL);

    static struct hostile x;
    x.h = (struct stp_selector_headers){.block = block, .len = blen};
    struct stp_selector_headers h = {.block = block, .len = blen};
    bool m = stp_selector_match(s, stp_selector_header_lookup, &h);
    CHECK(stp_selector_match(s, hostile_lookup, &x) == m);

    char *neg = malloc(tlen + 8);
    if (neg) {
        memcpy(neg, "NOT (", 5);
        memcpy(neg + 5, text, tlen);
        neg[tlen + 5] = ')';
        struct stp_selector *n = NULL;
        if (stp_selector_compile(&n, neg, tlen + 6, err, sizeof(err)) == 0) {
            CHECK(!(m && stp_selector_match(n, stp_selector_header_lookup, &h)));
            stp_selector_free(n);
        }
        free(neg);
    }
    stp_selector_free(s);
    return 0;
}

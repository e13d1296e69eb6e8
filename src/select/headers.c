/*
 * headers.c - stp_selector_header_lookup: the selector's lookup over a
 * serialized STOMP header block ("name:value" lines up to a blank line).
 *
 * Names are compared while they are decoded, so only a value with escapes
 * is ever copied (into the caller's scratch). Undefined escapes are kept as
 * they are (the broker's parser has rejected them before a block is kept).
 */
#include "select_internal.h"

#include <string.h>

/* The byte the escape at s[0, n) (s[0] is a backslash) stands for, in *out,
 * and how many bytes it takes: 2, or 1 for a backslash that starts none of
 * STOMP 1.2's escapes and stands for itself. */
static size_t unescape(const char *s, size_t n, char *out)
{
    static const char from[] = "nrc\\", to[] = "\n\r:\\";
    const char *p = n >= 2 && s[1] ? strchr(from, s[1]) : NULL;
    *out = p ? to[p - from] : '\\';
    return p ? 2 : 1;
}

/* Does the escaped name raw[0, rn) decode to name[0, n)? */
static bool name_is(const char *raw, size_t rn, const char *name, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < rn; j++) {
        char c = raw[i];
        i += c == '\\' ? unescape(raw + i, rn - i, &c) : 1;
        if (j == n || name[j] != c)
            return false;
    }
    return j == n;
}

/* The escaped value raw[0, rn): in place when it has no escapes, else
 * decoded into h->scratch; NULL when that does not fit. */
static const char *value_of(struct stp_selector_headers *h, const char *raw, size_t rn, size_t *n)
{
    *n = 0;
    if (!memchr(raw, '\\', rn)) {
        *n = rn;
        return raw;
    }
    size_t j = 0;
    for (size_t i = 0; i < rn; j++) {
        char c = raw[i];
        i += c == '\\' ? unescape(raw + i, rn - i, &c) : 1;
        if (j == sizeof(h->scratch))
            return NULL;
        h->scratch[j] = c;
    }
    *n = j;
    return h->scratch;
}

const char *stp_selector_header_lookup(void *ctx, const char *name, size_t name_len,
                                       size_t *value_len)
{
    struct stp_selector_headers *h = ctx;
    size_t pos = 0;
    *value_len = 0;
    while (pos < h->len) {
        const char *line = h->block + pos;
        const char *lf = memchr(line, '\n', h->len - pos);
        size_t n = lf ? (size_t)(lf - line) : h->len - pos;
        pos += n + (lf ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            return NULL; /* the blank line: the end of the headers */
        const char *colon = memchr(line, ':', n);
        if (!colon || !name_is(line, (size_t)(colon - line), name, name_len))
            continue;
        size_t vn = n - (size_t)(colon + 1 - line);
        return value_of(h, colon + 1, vn, value_len);
    }
    return NULL;
}

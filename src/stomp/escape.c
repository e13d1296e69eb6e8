/*
 * escape.c - STOMP header escaping (1.1: \\ \n \c; 1.2 adds \r).
 *
 * Owns the escape rules for both directions. 1.0 has no escaping at all. For
 * STP_V_NONE (before CONNECT) the 1.2 rules apply. In 1.1 a CR cannot be
 * escaped, so the writer leaves it raw. Pure functions over caller memory,
 * callable from any thread.
 */
#include "stampede/stomp.h"

#include "stampede/buf.h"
#include "stampede/error.h"
#include "stomp_internal.h"

#include <stdint.h>
#include <string.h>

/* Bytes that some version escapes: backslash, LF, colon, CR. */
static const unsigned char special[256] = {
    ['\\'] = 1,
    ['\n'] = 1,
    [':'] = 1,
    ['\r'] = 1,
};

bool stp_needs_escape(struct stp_slice s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    for (size_t i = 0; i < s.len; i++)
        if (special[p[i]])
            return true;
    return false;
}

int stp_escape_append(struct stp_buf *b, struct stp_slice s, enum stp_version v)
{
    if (v == STP_V10 || !stp_needs_escape(s))
        return stp_buf_append(b, s.p, s.len);
    if (s.len > SIZE_MAX / 2)
        return STP_ENOMEM;
    int rc = stp_buf_reserve(b, 2 * s.len);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        switch (c) {
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case ':':
            *o++ = '\\';
            *o++ = 'c';
            break;
        case '\r':
            if (v != STP_V11)
                *o++ = '\\';
            *o++ = v != STP_V11 ? 'r' : '\r';
            break;
        default:
            *o++ = c;
        }
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

ssize_t stp_stomp_unescape(char *p, size_t len, enum stp_version v, size_t *bad)
{
    if (v == STP_V10)
        return (ssize_t)len;
    char *bs = memchr(p, '\\', len);
    if (!bs)
        return (ssize_t)len;
    size_t r = (size_t)(bs - p), w = r;
    while (r < len) {
        char c = p[r];
        if (c != '\\') {
            p[w++] = c;
            r++;
            continue;
        }
        char e = r + 1 < len ? p[r + 1] : '\0';
        if (e == '\\')
            c = '\\';
        else if (e == 'n')
            c = '\n';
        else if (e == 'c')
            c = ':';
        else if (e == 'r' && v != STP_V11)
            c = '\r';
        else {
            *bad = r;
            return STP_EBAD_ESCAPE;
        }
        p[w++] = c;
        r += 2;
    }
    return (ssize_t)w;
}

ssize_t stp_unescape_inplace(char *p, size_t len, enum stp_version v)
{
    size_t bad;
    return stp_stomp_unescape(p, len, v, &bad);
}

/*
 * subject.c - destination names <-> NATS subjects (subject.h).
 */
#include "subject.h"

#include "stampede/error.h"

#include <string.h>

#define TOPIC "/topic/"
#define QUEUE "/queue/"
#define TLEN (sizeof(TOPIC) - 1)
#define QLEN (sizeof(QUEUE) - 1)
#define REPLY "/reply-queue/"
#define RLEN (sizeof(REPLY) - 1)

static bool plain(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* One token: w[0, n) escaped; an empty word is "~". */
static int put_token(struct stp_buf *out, const char *w, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n == 0)
        return stp_buf_append(out, "~", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c < 0x20 || c == 0x7f)
            return STP_EINVAL;
        if (plain(c)) {
            if (stp_buf_append(out, (const char *)&c, 1) < 0)
                return STP_ENOMEM;
            continue;
        }
        char e[3] = {'~', hex[c >> 4], hex[c & 15]};
        if (stp_buf_append(out, e, 3) < 0)
            return STP_ENOMEM;
    }
    return 0;
}

static int put_prefix(struct stp_buf *out, const char *prefix, char kind)
{
    char k[3] = {'.', kind, '.'};
    if (stp_buf_append(out, prefix, strlen(prefix)) < 0 || stp_buf_append(out, k, 3) < 0)
        return STP_ENOMEM;
    return 0;
}

/* Topic words name[0, len) as dot-separated tokens; with patterns, `*`
 * words as NATS's `*` and (when last) `#` as `>`. */
static int put_words(struct stp_buf *out, const char *name, size_t len, bool pattern, bool *exact)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        const char *w = name + start;
        size_t n = i - start;
        int rc;
        if (start > 0 && stp_buf_append(out, ".", 1) < 0)
            return STP_ENOMEM;
        if (pattern && n == 1 && w[0] == '*') {
            rc = stp_buf_append(out, "*", 1) < 0 ? STP_ENOMEM : 0;
        } else if (pattern && n == 1 && w[0] == '#') {
            /* NATS's `>` is one or more tokens, only at the end. */
            if (i == len && start > 0) {
                *exact = false; /* `a.#` also matches `a`: filtered locally */
                rc = stp_buf_append(out, ">", 1) < 0 ? STP_ENOMEM : 0;
            } else {
                /* `#` first or in the middle: everything from here. */
                *exact = false;
                return stp_buf_append(out, ">", 1) < 0 ? STP_ENOMEM : 0;
            }
        } else {
            rc = put_token(out, w, n);
        }
        if (rc < 0)
            return rc;
        start = i + 1;
    }
    return 0;
}

int stp_subject_of(struct stp_buf *out, const char *prefix, const char *name, size_t len)
{
    size_t mark = out->len;
    int rc;
    if (len > TLEN && memcmp(name, TOPIC, TLEN) == 0) {
        rc = put_prefix(out, prefix, 't');
        if (rc == 0)
            rc = put_words(out, name + TLEN, len - TLEN, false, NULL);
    } else if (len > QLEN && memcmp(name, QUEUE, QLEN) == 0) {
        rc = put_prefix(out, prefix, 'q');
        if (rc == 0)
            rc = put_token(out, name + QLEN, len - QLEN);
    } else if (len > RLEN && memcmp(name, REPLY, RLEN) == 0) {
        rc = put_prefix(out, prefix, 'r');
        if (rc == 0)
            rc = put_token(out, name + RLEN, len - RLEN);
    } else {
        rc = STP_EINVAL;
    }
    if (rc < 0)
        out->len = mark;
    return rc;
}

int stp_subject_of_pattern(struct stp_buf *out, const char *prefix, const char *name, size_t len,
                           bool *exact)
{
    size_t mark = out->len;
    *exact = true;
    if (len <= TLEN || memcmp(name, TOPIC, TLEN) != 0)
        return STP_EINVAL;
    int rc = put_prefix(out, prefix, 't');
    if (rc == 0)
        rc = put_words(out, name + TLEN, len - TLEN, true, exact);
    if (rc < 0)
        out->len = mark;
    return rc;
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode token t[0, n) into out. */
static int get_token(struct stp_buf *out, const char *t, size_t n)
{
    if (n == 1 && t[0] == '~')
        return 0; /* the empty word */
    if (n == 0)
        return STP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (plain(c)) {
            if (stp_buf_append(out, (const char *)&c, 1) < 0)
                return STP_ENOMEM;
            continue;
        }
        if (c != '~' || n - i < 3)
            return STP_EINVAL;
        int hi = unhex(t[i + 1]), lo = unhex(t[i + 2]);
        if (hi < 0 || lo < 0)
            return STP_EINVAL;
        char b = (char)(hi << 4 | lo);
        /* Only what put_token escapes: anything else has one spelling. */
        if (plain((unsigned char)b) || (unsigned char)b < 0x20 || (unsigned char)b == 0x7f)
            return STP_EINVAL;
        if (stp_buf_append(out, &b, 1) < 0)
            return STP_ENOMEM;
        i += 2;
    }
    return 0;
}

int stp_subject_to_dest(struct stp_buf *out, const char *prefix, const char *s, size_t len)
{
    size_t plen = strlen(prefix), mark = out->len;
    if (len < plen + 4 || memcmp(s, prefix, plen) != 0 || s[plen] != '.' || s[plen + 2] != '.')
        return STP_EINVAL;
    char kind = s[plen + 1];
    const char *p = s + plen + 3, *end = s + len;
    int rc;
    if (kind == 'q' || kind == 'r') {
        rc = kind == 'q' ? stp_buf_append(out, QUEUE, QLEN) : stp_buf_append(out, REPLY, RLEN);
        rc = rc < 0 ? STP_ENOMEM : 0;
        if (rc == 0 && memchr(p, '.', (size_t)(end - p)))
            rc = STP_EINVAL; /* a queue's name is one token */
        if (rc == 0)
            rc = get_token(out, p, (size_t)(end - p));
    } else if (kind == 't') {
        rc = stp_buf_append(out, TOPIC, TLEN) < 0 ? STP_ENOMEM : 0;
        while (rc == 0) {
            const char *dot = memchr(p, '.', (size_t)(end - p));
            const char *te = dot ? dot : end;
            rc = get_token(out, p, (size_t)(te - p));
            if (rc < 0 || !dot)
                break;
            rc = stp_buf_append(out, ".", 1) < 0 ? STP_ENOMEM : 0;
            p = dot + 1;
        }
    } else {
        rc = STP_EINVAL;
    }
    /* A destination is never just its prefix (stp_subject_of refuses one). */
    if (rc == 0 && out->len - mark <= (kind == 'q' ? QLEN : kind == 'r' ? RLEN : TLEN))
        rc = STP_EINVAL;
    if (rc < 0)
        out->len = mark;
    return rc;
}

/* buf.c - growable byte buffer (see buf.h). */
#include "stampede/buf.h"

#include "stampede/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stp_buf_reserve(struct stp_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t need = b->len + extra;
    if (need < b->len)
        return STP_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return STP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int stp_buf_append(struct stp_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = stp_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int stp_buf_append_str(struct stp_buf *b, const char *s)
{
    return stp_buf_append(b, s, strlen(s));
}

int stp_buf_append_u64(struct stp_buf *b, unsigned long long v)
{
    char tmp[STP_U64_DIGITS];
    return stp_buf_append(b, tmp, stp_fmt_u64(tmp, v));
}

void stp_buf_consume(struct stp_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void stp_buf_reset(struct stp_buf *b)
{
    b->len = 0;
}

void stp_buf_free(struct stp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

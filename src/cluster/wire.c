/*
 * wire.c - the cluster's message format (see wire.h).
 */
#include "wire.h"

#include "stampede/error.h"

#include <string.h>

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int stp_wire_encode(struct stp_buf *out, const struct stp_wire_msg *w)
{
    unsigned char h[STP_WIRE_HEADER];
    memcpy(h, "STP1", 4);
    put_u64(h + 4, w->origin);
    put_u64(h + 12, w->seq);
    put_u64(h + 20, w->expires_ms);
    h[28] = w->persistent ? 1 : 0;
    if (stp_buf_append(out, h, sizeof(h)) < 0 || stp_buf_append(out, w->tail, w->tail_len) < 0)
        return STP_ENOMEM;
    return 0;
}

int stp_wire_decode(const void *data, size_t len, struct stp_wire_msg *w)
{
    const unsigned char *p = data;
    if (len < STP_WIRE_HEADER + 1 || memcmp(p, "STP1", 4) != 0 || (p[28] & ~1u) != 0)
        return STP_EINVAL;
    if (p[len - 1] != '\0')
        return STP_EINVAL;
    w->origin = get_u64(p + 4);
    w->seq = get_u64(p + 12);
    w->expires_ms = get_u64(p + 20);
    w->persistent = p[28] & 1;
    w->tail = (const char *)p + STP_WIRE_HEADER;
    w->tail_len = len - STP_WIRE_HEADER;
    return 0;
}

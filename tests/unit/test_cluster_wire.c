/* The cluster's message format (src/cluster/wire.c): round trip and refusals. */
#include "cluster/wire.h"
#include "stampede/buf.h"
#include "stampede/error.h"

#include <criterion/criterion.h>
#include <string.h>

static const char tail[] = "destination:/topic/a\ncontent-length:2\n\nhi";

static struct stp_buf encoded(uint64_t origin, uint64_t seq, uint64_t exp, bool persistent)
{
    struct stp_buf b = {0};
    struct stp_wire_msg w = {.origin = origin,
                             .seq = seq,
                             .expires_ms = exp,
                             .persistent = persistent,
                             .tail = tail,
                             .tail_len = sizeof(tail)}; /* with its NUL */
    cr_assert_eq(stp_wire_encode(&b, &w), 0);
    return b;
}

Test(cluster_wire, round_trip)
{
    struct stp_buf b = encoded(0x0102030405060708ull, UINT64_MAX, 1700000000123ull, true);
    cr_assert_eq(b.len, STP_WIRE_HEADER + sizeof(tail));
    cr_assert(memcmp(b.data, "STP1", 4) == 0);
    struct stp_wire_msg w;
    cr_assert_eq(stp_wire_decode(b.data, b.len, &w), 0);
    cr_assert_eq(w.origin, 0x0102030405060708ull);
    cr_assert_eq(w.seq, UINT64_MAX);
    cr_assert_eq(w.expires_ms, 1700000000123ull);
    cr_assert(w.persistent);
    cr_assert_eq(w.tail_len, sizeof(tail));
    cr_assert(memcmp(w.tail, tail, sizeof(tail)) == 0);
    stp_buf_free(&b);
    b = encoded(1, 2, 0, false);
    cr_assert_eq(stp_wire_decode(b.data, b.len, &w), 0);
    cr_assert(!w.persistent);
    cr_assert_eq(w.expires_ms, 0);
    stp_buf_free(&b);
}

Test(cluster_wire, refusals)
{
    struct stp_buf b = encoded(1, 2, 3, false);
    struct stp_wire_msg w;
    unsigned char *p = (unsigned char *)b.data;
    /* Every length short of a header plus one byte of tail. */
    for (size_t n = 0; n <= STP_WIRE_HEADER; n++)
        cr_assert_eq(stp_wire_decode(b.data, n, &w), STP_EINVAL, "length %zu", n);
    p[0] = 'X'; /* another format */
    cr_assert_eq(stp_wire_decode(b.data, b.len, &w), STP_EINVAL);
    p[0] = 'S';
    p[28] = 2; /* unknown flag */
    cr_assert_eq(stp_wire_decode(b.data, b.len, &w), STP_EINVAL);
    p[28] = 0;
    p[b.len - 1] = 'x'; /* tail without its NUL */
    cr_assert_eq(stp_wire_decode(b.data, b.len, &w), STP_EINVAL);
    p[b.len - 1] = '\0';
    cr_assert_eq(stp_wire_decode(b.data, b.len, &w), 0);
    stp_buf_free(&b);
}

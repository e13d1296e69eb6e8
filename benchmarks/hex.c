/*
 * hex.c - fixed-width hex fields of the stampede-bench header. Pure functions;
 * stp_bench_unhex() reads untrusted bytes and rejects anything but [0-9a-f].
 *
 * Decoding runs on every delivered message, so it works on 8 characters at a
 * time (SWAR): one unaligned load, a range check of all 8 bytes with a few
 * additions, and three shift-and-mask steps that pack the nibbles.
 */
#include "bench.h"

#include "stampede/error.h"

#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hex.c assumes a little-endian machine"
#endif

#define ONES UINT64_C(0x0101010101010101)
#define HIGH UINT64_C(0x8080808080808080)

void stp_bench_hex(char *dst, uint64_t v, unsigned digits)
{
    static const char digit[] = "0123456789abcdef";
    for (unsigned i = digits; i-- > 0;) {
        dst[i] = digit[v & 15];
        v >>= 4;
    }
}

/* 8 hex characters -> 32-bit value; false when one is not [0-9a-f]. */
static bool unhex8(const char *p, uint64_t *out)
{
    uint64_t x;
    memcpy(&x, p, 8);
    if (x & HIGH)
        return false;
    /* for bytes below 0x80, b + (0x80 - lo) has its top bit set iff b >= lo,
     * and no byte carries into the next */
    uint64_t ge_0 = (x + ONES * (0x80 - '0')) & HIGH;
    uint64_t gt_9 = (x + ONES * (0x80 - '9' - 1)) & HIGH;
    uint64_t ge_a = (x + ONES * (0x80 - 'a')) & HIGH;
    uint64_t gt_f = (x + ONES * (0x80 - 'f' - 1)) & HIGH;
    uint64_t digit = ge_0 & ~gt_9, letter = ge_a & ~gt_f;
    if ((digit | letter) != HIGH)
        return false;
    /* nibble values, first character in the lowest byte */
    uint64_t n = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    n = ((n & UINT64_C(0x000f000f000f000f)) << 4) | ((n & UINT64_C(0x0f000f000f000f00)) >> 8);
    n = ((n & UINT64_C(0x000000ff000000ff)) << 8) | ((n & UINT64_C(0x00ff000000ff0000)) >> 16);
    n = ((n & UINT64_C(0x000000000000ffff)) << 16) | ((n & UINT64_C(0x0000ffff00000000)) >> 32);
    *out = n;
    return true;
}

int stp_bench_unhex(const char *p, unsigned digits, uint64_t *out)
{
    uint64_t v = 0, part;
    if (digits % 8 != 0 || digits > 16)
        return STP_EINVAL;
    for (unsigned i = 0; i < digits; i += 8) {
        if (!unhex8(p + i, &part))
            return STP_EINVAL;
        v = (v << 32) | part;
    }
    *out = v;
    return 0;
}

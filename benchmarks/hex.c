/*
 * hex.c - fixed-width hex fields of the stampede-bench header. Pure functions;
 * stp_bench_unhex() reads untrusted bytes and rejects anything but [0-9a-f].
 */
#include "bench.h"

#include "stampede/error.h"

void stp_bench_hex(char *dst, uint64_t v, unsigned digits)
{
    static const char digit[] = "0123456789abcdef";
    for (unsigned i = digits; i-- > 0;) {
        dst[i] = digit[v & 15];
        v >>= 4;
    }
}

/* digit value + 1 for [0-9a-f], 0 for anything else */
static const unsigned char unhex_table[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

int stp_bench_unhex(const char *p, unsigned digits, uint64_t *out)
{
    uint64_t v = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < digits; i++) {
        unsigned d = unhex_table[(unsigned char)p[i]];
        bad |= d == 0;
        v = (v << 4) | ((d - 1) & 15);
    }
    if (bad)
        return STP_EINVAL;
    *out = v;
    return 0;
}

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

int stp_bench_unhex(const char *p, unsigned digits, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < digits; i++) {
        unsigned char ch = (unsigned char)p[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else
            return STP_EINVAL;
        v = (v << 4) | d;
    }
    *out = v;
    return 0;
}

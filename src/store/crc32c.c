/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Two implementations with one contract: the SSE4.2 crc32 instruction (8
 * bytes per step) where the CPU has it, chosen once at first use, and a
 * table-driven slicing-by-8 fallback. The tables are built once (pthread
 * once), then only read, so any thread may checksum.
 */
#include "store_internal.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_X86 1
#endif

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static bool use_hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
    }
}

static void init(void)
{
    build_tables();
    use_hw = stp_crc32c_hw_available();
}

bool stp_crc32c_hw_available(void)
{
#ifdef HAVE_X86
    return __builtin_cpu_supports("sse4.2");
#else
    return false;
#endif
}

/* The inverted running value c over p[0, n), eight bytes at a time. */
static uint32_t sw_run(uint32_t c, const uint8_t *p, size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo = stp_rd32(p) ^ c, hi = stp_rd32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

uint32_t stp_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&once, init);
    return ~sw_run(~crc, p, n);
}

#ifdef HAVE_X86
__attribute__((target("sse4.2"))) static uint32_t hw_run(uint32_t c, const uint8_t *p, size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
#ifdef __x86_64__
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
#endif
    while (n >= 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        c = _mm_crc32_u32(c, v);
        p += 4;
        n -= 4;
    }
    while (n-- > 0)
        c = _mm_crc32_u8(c, *p++);
    return c;
}

uint32_t stp_crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    return ~hw_run(~crc, p, n);
}
#else
uint32_t stp_crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    return stp_crc32c_sw(crc, p, n);
}
#endif

uint32_t stp_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&once, init);
    return use_hw ? stp_crc32c_hw(crc, p, n) : ~sw_run(~crc, p, n);
}

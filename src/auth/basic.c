/*
 * basic.c - HTTP Basic credentials (RFC 7617) from an Authorization header.
 *
 * Only what /metrics needs: "Basic" (any case), blanks, the base64 (RFC 4648
 * standard alphabet, padding optional) of LOGIN:PASSWORD. The login ends at
 * the first ':' (RFC 7617 forbids ':' in user-ids); neither part may hold a
 * control byte. Bounded: nothing beyond STP_BASIC_MAX decoded bytes.
 */
#include "auth_internal.h"

#include "stampede/error.h"

#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* Decode s[0..n) into out (cap bytes): the length, or -1. */
static ssize_t b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t k = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = stp_auth_b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k == cap)
                return -1;
            out[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? (ssize_t)k : -1; /* leftover bits must be zero */
}

static bool printable(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

int stp_basic_auth_parse(const char *hdr, size_t len, char *login, size_t lcap, char *pass,
                         size_t pcap)
{
    while (len > 0 && (*hdr == ' ' || *hdr == '\t'))
        hdr++, len--;
    while (len > 0 && (hdr[len - 1] == ' ' || hdr[len - 1] == '\t'))
        len--;
    if (len < 6 || strncasecmp(hdr, "basic", 5) != 0 || (hdr[5] != ' ' && hdr[5] != '\t'))
        return STP_EINVAL;
    hdr += 5, len -= 5;
    while (len > 0 && (*hdr == ' ' || *hdr == '\t'))
        hdr++, len--;
    unsigned char buf[STP_BASIC_MAX];
    ssize_t n = b64_decode(hdr, len, buf, sizeof(buf));
    if (n < 0)
        return STP_EINVAL;
    const unsigned char *colon = memchr(buf, ':', (size_t)n);
    if (!colon || !printable(buf, (size_t)n))
        return STP_EINVAL;
    size_t llen = (size_t)(colon - buf), plen = (size_t)n - llen - 1;
    if (llen == 0 || llen >= lcap || plen >= pcap)
        return STP_EINVAL;
    memcpy(login, buf, llen);
    login[llen] = '\0';
    memcpy(pass, colon + 1, plen);
    pass[plen] = '\0';
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

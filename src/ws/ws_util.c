/*
 * ws_util.c - the engine's pure helpers: Sec-WebSocket-Accept (SHA-1 and
 * base64 from mbedTLS), subprotocol choice, frame headers, masking and UTF-8
 * validation. No state: callable from any thread.
 */
#include "stampede/ws.h"

#include "stampede/error.h"

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#include <assert.h>
#include <string.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* A key is 24 base64 characters ending in "==" that decode to 16 bytes. */
static bool key_well_formed(const char *key, size_t n)
{
    if (n != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64_char(key[i]))
            return false;
    unsigned char raw[18];
    size_t olen = 0;
    return mbedtls_base64_decode(raw, sizeof(raw), &olen, (const unsigned char *)key, n) == 0 &&
           olen == 16;
}

int stp_ws_accept_key(const char *key, size_t keylen, char out[29])
{
    if (!key_well_formed(key, keylen))
        return STP_EINVAL;
    unsigned char text[24 + sizeof(ws_guid) - 1];
    memcpy(text, key, keylen);
    memcpy(text + keylen, ws_guid, sizeof(ws_guid) - 1);
    unsigned char digest[20];
    if (mbedtls_sha1_ret(text, sizeof(text), digest) != 0)
        return STP_EINVAL;
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)out, 29, &olen, digest, sizeof(digest)) != 0 ||
        olen != 28)
        return STP_EINVAL;
    out[28] = '\0';
    return 0;
}

/* Best first. */
static const char *const subprotocols[] = {"v12.stomp", "v11.stomp", "v10.stomp", "stomp"};

const char *stp_ws_choose_subprotocol(const char *offer, size_t n)
{
    size_t best = sizeof(subprotocols) / sizeof(subprotocols[0]);
    if (!offer)
        return NULL;
    const char *s = offer, *end = offer + n;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        while (s < stop && (*s == ' ' || *s == '\t'))
            s++;
        const char *e = stop;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        for (size_t i = 0; i < best; i++) {
            size_t len = strlen(subprotocols[i]);
            if ((size_t)(e - s) == len && memcmp(s, subprotocols[i], len) == 0) {
                best = i;
                break;
            }
        }
        s = stop + 1;
    }
    return best < sizeof(subprotocols) / sizeof(subprotocols[0]) ? subprotocols[best] : NULL;
}

/* Length field of a frame header after byte 0: 1, 3 or 9 bytes. */
static size_t put_length(uint8_t *out, uint8_t mask_bit, uint64_t len)
{
    if (len < 126) {
        out[0] = mask_bit | (uint8_t)len;
        return 1;
    }
    if (len <= 0xffff) {
        out[0] = mask_bit | 126;
        out[1] = (uint8_t)(len >> 8);
        out[2] = (uint8_t)len;
        return 3;
    }
    assert(len < (1ULL << 63));
    out[0] = mask_bit | 127;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 9;
}

size_t stp_ws_frame_header(uint8_t out[10], int opcode, uint64_t payload_len)
{
    assert(opcode >= 0 && opcode <= 0xf);
    out[0] = 0x80 | (uint8_t)opcode;
    return 1 + put_length(out + 1, 0, payload_len);
}

size_t stp_ws_client_frame_header(uint8_t out[14], int opcode, bool fin, uint64_t payload_len,
                                  const uint8_t mask[4])
{
    assert(opcode >= 0 && opcode <= 0xf);
    out[0] = (fin ? 0x80 : 0) | (uint8_t)opcode;
    size_t n = 1 + put_length(out + 1, 0x80, payload_len);
    memcpy(out + n, mask, 4);
    return n + 4;
}

void stp_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(off + i) & 3];
}

/* --- UTF-8 ----------------------------------------------------------------- */

static bool is_cont(uint8_t c)
{
    return (c & 0xc0) == 0x80;
}

/* Length of the well-formed multi-byte sequence at p (p[0] >= 0x80), or 0.
 * The second byte's range depends on the lead byte (RFC 3629 section 4). */
static size_t sequence_len(const uint8_t *p, size_t avail)
{
    uint8_t c = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlongs */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* no overlongs */
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (!is_cont(p[i]))
            return 0;
    return len;
}

bool stp_ws_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path: eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = sequence_len(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

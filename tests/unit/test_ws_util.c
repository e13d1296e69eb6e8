/*
 * Unit tests of the WebSocket engine's pure helpers: Sec-WebSocket-Accept,
 * subprotocol choice, server and client frame headers, masking, and the
 * UTF-8 validator (checked against an independent decoder over every 1-, 2-
 * and 3-byte sequence and many 4-byte ones).
 */
#include "stampede/error.h"
#include "stampede/ws.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(ws_util, accept_key_rfc6455_example)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    cr_assert_eq(stp_ws_accept_key(key, strlen(key), out), 0);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws_util, accept_key_second_vector)
{
    /* RFC 6455 section 1.2's client handshake example key. */
    char out[29];
    const char *key = "x3JJHMbDL1EzLkh9GBhXDw==";
    cr_assert_eq(stp_ws_accept_key(key, strlen(key), out), 0);
    cr_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

Test(ws_util, accept_key_rejects_malformed_keys)
{
    const char *bad[] = {"",
                         "dGhlIHNhbXBsZSBub25jZQ=",
                         "dGhlIHNhbXBsZSBub25jZQ===",
                         "dGhlIHNhbXBsZSBub25jZSE=",
                         "dGhlIHNhbXBs ZSBub25jZQ=",
                         "dGhlIHNhbXBsZSBub25jZQ-=",
                         "AAAAAAAAAAAAAAAAAAAAAAAA"};
    char out[29];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(stp_ws_accept_key(bad[i], strlen(bad[i]), out), STP_EINVAL, "%s", bad[i]);
}

static const char *choose(const char *offer)
{
    return stp_ws_choose_subprotocol(offer, strlen(offer));
}

static void expect_choice(const char *offer, const char *want)
{
    const char *got = choose(offer);
    if (want)
        cr_assert(got && strcmp(got, want) == 0, "offer '%s' gave %s", offer, got);
    else
        cr_assert_null(got, "offer '%s' gave %s", offer, got);
}

Test(ws_util, subprotocol_highest_offered_wins)
{
    expect_choice("v12.stomp", "v12.stomp");
    expect_choice("v11.stomp", "v11.stomp");
    expect_choice("v10.stomp", "v10.stomp");
    expect_choice("stomp", "stomp");
    expect_choice("stomp, v10.stomp", "v10.stomp");
    expect_choice("v10.stomp, v11.stomp", "v11.stomp");
    expect_choice("v11.stomp, v12.stomp, v10.stomp", "v12.stomp");
    expect_choice("v12.stomp,v10.stomp", "v12.stomp");
    expect_choice("  v11.stomp\t,\tstomp  ", "v11.stomp");
    expect_choice("mqtt, v10.stomp", "v10.stomp");
    expect_choice(",,v10.stomp,,", "v10.stomp");
    expect_choice("", NULL);
    expect_choice("mqtt", NULL);
    expect_choice("V12.STOMP", NULL);
    expect_choice("v12.stompx", NULL);
    expect_choice("xv12.stomp", NULL);
    expect_choice("v12 .stomp", NULL);
    /* The length bounds the list: the rest of the string is not read. */
    cr_assert_null(stp_ws_choose_subprotocol("stompv12.stomp", 4));
    cr_assert_str_eq(stp_ws_choose_subprotocol("stomp,v12.stomp", 5), "stomp");
}

static void expect_header(int opcode, uint64_t len, const uint8_t *want, size_t wlen)
{
    uint8_t out[10];
    memset(out, 0xee, sizeof(out));
    size_t n = stp_ws_frame_header(out, opcode, len);
    cr_assert_eq(n, wlen, "length %llu", (unsigned long long)len);
    cr_assert_eq(memcmp(out, want, wlen), 0, "length %llu", (unsigned long long)len);
}

Test(ws_util, server_frame_header_lengths)
{
    expect_header(STP_WS_OP_TEXT, 0, (const uint8_t *)"\x81\x00", 2);
    expect_header(STP_WS_OP_TEXT, 125, (const uint8_t *)"\x81\x7d", 2);
    expect_header(STP_WS_OP_BINARY, 126, (const uint8_t *)"\x82\x7e\x00\x7e", 4);
    expect_header(STP_WS_OP_BINARY, 65535, (const uint8_t *)"\x82\x7e\xff\xff", 4);
    expect_header(STP_WS_OP_TEXT, 65536,
                  (const uint8_t *)"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    expect_header(STP_WS_OP_BINARY, 1ULL << 32,
                  (const uint8_t *)"\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10);
    expect_header(STP_WS_OP_CLOSE, 2, (const uint8_t *)"\x88\x02", 2);
    expect_header(STP_WS_OP_PONG, 5, (const uint8_t *)"\x8a\x05", 2);
    /* RFC 6455 section 5.7: 256 bytes and 64 KiB binary messages. */
    expect_header(STP_WS_OP_BINARY, 256, (const uint8_t *)"\x82\x7e\x01\x00", 4);
    expect_header(STP_WS_OP_BINARY, 65536,
                  (const uint8_t *)"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

Test(ws_util, client_header_and_mask_rfc_example)
{
    static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t frame[20];
    size_t n = stp_ws_client_frame_header(frame, STP_WS_OP_TEXT, true, 5, mask);
    cr_assert_eq(n, 6);
    memcpy(frame + n, "Hello", 5);
    stp_ws_mask(frame + n, 5, mask, 0);
    cr_assert_eq(memcmp(frame, want, sizeof(want)), 0);
    /* Masking in two pieces with the offset gives the same bytes. */
    uint8_t two[5];
    memcpy(two, "Hello", 5);
    stp_ws_mask(two, 2, mask, 0);
    stp_ws_mask(two + 2, 3, mask, 2);
    cr_assert_eq(memcmp(two, want + 6, 5), 0);
    /* Not FIN, 16-bit length. */
    n = stp_ws_client_frame_header(frame, STP_WS_OP_CONT, false, 300, mask);
    cr_assert_eq(n, 8);
    cr_assert_eq(memcmp(frame, "\x00\xfe\x01\x2c\x37\xfa\x21\x3d", 8), 0);
}

/* --- UTF-8 ----------------------------------------------------------------- */

static bool valid(const char *s, size_t n)
{
    return stp_ws_utf8_valid((const uint8_t *)s, n);
}

Test(ws_util, utf8_known_cases)
{
    cr_assert(valid("", 0));
    cr_assert(valid("plain ASCII, long enough for the word path", 43));
    cr_assert(valid("\0\0\0", 3));
    cr_assert(valid("caf\xc3\xa9", 5));       /* U+00E9 */
    cr_assert(valid("\xe2\x82\xac", 3));      /* U+20AC */
    cr_assert(valid("\xef\xbf\xbf", 3));      /* U+FFFF */
    cr_assert(valid("\xf0\x9f\x98\x80", 4));  /* U+1F600 */
    cr_assert(valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    cr_assert(valid("\xed\x9f\xbf", 3));      /* U+D7FF */
    cr_assert(valid("\xee\x80\x80", 3));      /* U+E000 */
    cr_assert(!valid("\x80", 1));             /* lone continuation */
    cr_assert(!valid("\xc0\x80", 2));         /* overlong NUL */
    cr_assert(!valid("\xc1\xbf", 2));         /* overlong */
    cr_assert(!valid("\xe0\x80\x80", 3));     /* overlong */
    cr_assert(!valid("\xe0\x9f\xbf", 3));     /* overlong */
    cr_assert(!valid("\xf0\x8f\xbf\xbf", 4)); /* overlong */
    cr_assert(!valid("\xed\xa0\x80", 3));     /* U+D800 */
    cr_assert(!valid("\xed\xbf\xbf", 3));     /* U+DFFF */
    cr_assert(!valid("\xf4\x90\x80\x80", 4)); /* U+110000 */
    cr_assert(!valid("\xf5\x80\x80\x80", 4));
    cr_assert(!valid("\xfe", 1));
    cr_assert(!valid("\xff", 1));
    cr_assert(!valid("\xe2\x82", 2));     /* truncated */
    cr_assert(!valid("\xf0\x9f\x98", 3)); /* truncated */
    cr_assert(!valid("\xc3\x28", 2));     /* bad continuation */
    cr_assert(!valid("\xe2\x28\xa1", 3));
    cr_assert(!valid("\xf0\x9f\x28\x80", 4));
}

Test(ws_util, utf8_bad_byte_at_every_position_of_ascii_run)
{
    char buf[100];
    for (size_t len = 1; len <= sizeof(buf); len++) {
        memset(buf, 'a', len);
        cr_assert(valid(buf, len));
        for (size_t at = 0; at < len; at++) {
            buf[at] = (char)0xff;
            cr_assert(!valid(buf, len), "len %zu at %zu", len, at);
            buf[at] = (char)0xc3; /* a lead byte: valid only if followed by a continuation */
            cr_assert(!valid(buf, len), "len %zu at %zu", len, at);
            if (at + 1 < len) {
                buf[at + 1] = (char)0xa9;
                cr_assert(valid(buf, len), "len %zu at %zu", len, at);
                buf[at + 1] = 'a';
            }
            buf[at] = 'a';
        }
    }
}

/* Independent reference: decode one sequence by its bit pattern, then apply
 * RFC 3629's rules on the code point (shortest form, no surrogates, range). */
static bool ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

Test(ws_util, utf8_matches_reference_on_all_short_sequences)
{
    uint8_t s[4];
    for (uint32_t v = 0; v < (1u << 24); v++) {
        s[0] = (uint8_t)(v >> 16), s[1] = (uint8_t)(v >> 8), s[2] = (uint8_t)v;
        if (stp_ws_utf8_valid(s, 3) != ref_valid(s, 3))
            cr_assert_fail("3 bytes %06x", v);
        if (v < (1u << 16) && stp_ws_utf8_valid(s + 1, 2) != ref_valid(s + 1, 2))
            cr_assert_fail("2 bytes %04x", v & 0xffff);
    }
    /* Four-byte sequences: every lead byte from 0xf0, the other bytes around
     * the continuation boundaries. */
    static const uint8_t edge[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    for (uint32_t lead = 0xf0; lead <= 0xff; lead++)
        for (size_t a = 0; a < sizeof(edge); a++)
            for (size_t b = 0; b < sizeof(edge); b++)
                for (size_t c = 0; c < sizeof(edge); c++) {
                    s[0] = (uint8_t)lead, s[1] = edge[a], s[2] = edge[b], s[3] = edge[c];
                    cr_assert_eq(stp_ws_utf8_valid(s, 4), ref_valid(s, 4), "%02x %02x %02x %02x",
                                 s[0], s[1], s[2], s[3]);
                }
}

Test(ws_util, utf8_matches_reference_on_random_text)
{
    srand(1234);
    uint8_t buf[64];
    static const uint8_t pool[] = {'a',  'Z',  0x00, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0,
                                   0xe2, 0xed, 0xef, 0xf0, 0xf3, 0xf4, 0xf5, 0xa0, 0x90, 0x8f};
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)rand() % sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = rand() % 3 ? (uint8_t)('a' + rand() % 26) : pool[rand() % sizeof(pool)];
        cr_assert_eq(stp_ws_utf8_valid(buf, n), ref_valid(buf, n), "round %d", round);
    }
}

/*
 * Unit tests of the WebSocket engine after the upgrade: masked frames
 * decoded, fragmentation, several messages per feed, a stream split at every
 * byte, ping -> pong bytes, the close handshake and each close code the
 * engine sends (1000, 1002, 1007, 1008, 1009), server frames the caller
 * sends through the engine.
 */
#include "test_ws_harness.h"

#include <stdlib.h>

/* Feed a whole buffer of client frames; return stp_ws_feed's result. */
static int feed_buf(struct harness *h, const struct stp_buf *b)
{
    return h_feed(h, b->data, b->len);
}

/* The engine's output is exactly one close frame with this code. */
static void expect_close(struct harness *h, int rc, uint16_t code, bool by_peer)
{
    cr_assert_eq(rc, STP_ECLOSED);
    cr_assert_eq(stp_ws_state(h->ws), STP_WS_DONE);
    cr_assert_eq(h->closed, 1);
    cr_assert_eq(h->close_code, code);
    cr_assert_eq(h->close_by_peer, by_peer);
    cr_assert_eq(stp_ws_close_code(h->ws), code);
    cr_assert(h->out.len >= 4, "output %zu bytes", h->out.len);
    const uint8_t *o = (const uint8_t *)h->out.data;
    cr_assert_eq(o[0], 0x88);
    cr_assert_eq(o[1], h->out.len - 2, "close frame length");
    cr_assert_eq((o[2] << 8) | o[3], code, "code %d", (o[2] << 8) | o[3]);
    /* Nothing more is accepted. */
    cr_assert_eq(h_feed_str(h, "\x81\x80\0\0\0\0"), STP_ECLOSED);
    cr_assert_eq(stp_ws_send(h->ws, STP_WS_OP_TEXT, "x", 1), STP_ECLOSED);
}

Test(ws_frames, rfc6455_masked_hello)
{
    /* RFC 6455 section 5.7: a single-frame masked text message "Hello". */
    static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(h_feed(&h, frame, sizeof(frame)), 0);
    cr_assert_eq(h.nmsgs, 1);
    cr_assert_eq(h.msg_len[0], 5);
    cr_assert_eq(memcmp(h.msgs.data, "Hello", 5), 0);
    cr_assert(!h.msg_binary[0]);
    cr_assert_eq(h.out.len, 0);
    h_fini(&h);
}

Test(ws_frames, fragmented_text_reassembled)
{
    /* RFC 6455 section 5.7, masked: "Hel" then "lo". */
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_TEXT, false, "Hel", 3);
    h_frame(&b, STP_WS_OP_CONT, true, "lo", 2);
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 1);
    cr_assert_eq(h.msg_len[0], 5);
    cr_assert_eq(memcmp(h.msgs.data, "Hello", 5), 0);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, control_frames_between_fragments)
{
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_BINARY, false, "SEND\n", 5);
    h_frame(&b, STP_WS_OP_PING, true, "p1", 2);
    h_frame(&b, STP_WS_OP_CONT, false, "", 0);
    h_frame(&b, STP_WS_OP_PONG, true, "ignored", 7);
    h_frame(&b, STP_WS_OP_CONT, false, "destination:/q\n\n", 16);
    h_frame(&b, STP_WS_OP_PING, true, "", 0);
    h_frame(&b, STP_WS_OP_CONT, true, "body\0", 5);
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 1);
    cr_assert(h.msg_binary[0]);
    cr_assert_eq(h.msg_len[0], 26);
    cr_assert_eq(memcmp(h.msgs.data, "SEND\ndestination:/q\n\nbody\0", 26), 0);
    h_expect_out(&h, "\x8a\x02p1\x8a\x00", 6);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, several_messages_in_one_feed)
{
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_TEXT, true, "one", 3);
    h_frame(&b, STP_WS_OP_BINARY, true, "two!", 4);
    h_frame(&b, STP_WS_OP_TEXT, true, "", 0);
    h_frame(&b, STP_WS_OP_TEXT, true, "\n", 1); /* a heart-beat */
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 4);
    cr_assert_eq(h.msg_len[0], 3);
    cr_assert_eq(h.msg_len[1], 4);
    cr_assert_eq(h.msg_len[2], 0);
    cr_assert_eq(h.msg_len[3], 1);
    cr_assert(!h.msg_binary[0] && h.msg_binary[1] && !h.msg_binary[2]);
    cr_assert_eq(memcmp(h.msgs.data, "onetwo!\n", 8), 0);
    h_fini(&h);
    stp_buf_free(&b);
}

/* A stream with every length encoding, fragments and a ping. */
static void mixed_stream(struct stp_buf *b, struct stp_buf *want)
{
    uint8_t big[70000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)('a' + i % 26);
    h_frame(b, STP_WS_OP_TEXT, true, "SEND\n\nx\0", 8);
    stp_buf_append(want, "SEND\n\nx\0", 8);
    h_frame(b, STP_WS_OP_BINARY, true, big, 300); /* 16-bit length */
    stp_buf_append(want, big, 300);
    h_frame(b, STP_WS_OP_TEXT, false, big, 100);
    h_frame(b, STP_WS_OP_PING, true, "ping", 4);
    h_frame(b, STP_WS_OP_CONT, true, big + 100, 200);
    stp_buf_append(want, big, 300);
    h_frame(b, STP_WS_OP_BINARY, true, big, sizeof(big)); /* 64-bit length */
    stp_buf_append(want, big, sizeof(big));
}

static void check_mixed(struct harness *h, const struct stp_buf *want, const char *what, size_t at)
{
    cr_assert_eq(h->nmsgs, 4, "%s %zu", what, at);
    cr_assert_eq(h->msg_len[0], 8);
    cr_assert_eq(h->msg_len[1], 300);
    cr_assert_eq(h->msg_len[2], 300);
    cr_assert_eq(h->msg_len[3], 70000);
    cr_assert_eq(h->msgs.len, want->len);
    cr_assert_eq(memcmp(h->msgs.data, want->data, want->len), 0, "%s %zu", what, at);
    h_expect_out(h, "\x8a\x04ping", 6);
}

Test(ws_frames, stream_split_at_every_byte)
{
    struct stp_buf b = STP_BUF_INIT, want = STP_BUF_INIT;
    mixed_stream(&b, &want);
    /* Every cut inside the frames before the big one, and around the big
     * one's header; then a few inside its payload. */
    size_t big_start = b.len - 70000 - 14;
    for (size_t cut = 0; cut <= b.len; cut++) {
        if (cut > big_start + 20 && cut < b.len - 5 && cut % 4099 != 0)
            continue;
        struct harness h;
        h_open(&h, 1 << 20);
        cr_assert_eq(h_feed(&h, b.data, cut), 0);
        cr_assert_eq(h_feed(&h, b.data + cut, b.len - cut), 0);
        check_mixed(&h, &want, "cut", cut);
        h_fini(&h);
    }
    stp_buf_free(&b);
    stp_buf_free(&want);
}

Test(ws_frames, stream_one_byte_at_a_time_and_random_chunks)
{
    struct stp_buf b = STP_BUF_INIT, want = STP_BUF_INIT;
    mixed_stream(&b, &want);
    struct harness h;
    h_open(&h, 1 << 20);
    for (size_t i = 0; i < b.len; i++)
        cr_assert_eq(h_feed(&h, b.data + i, 1), 0);
    check_mixed(&h, &want, "bytewise", 0);
    h_fini(&h);

    srand(7);
    for (int round = 0; round < 50; round++) {
        h_open(&h, 1 << 20);
        size_t off = 0;
        while (off < b.len) {
            size_t n = 1 + (size_t)rand() % 9000;
            if (n > b.len - off)
                n = b.len - off;
            cr_assert_eq(h_feed(&h, b.data + off, n), 0);
            off += n;
        }
        check_mixed(&h, &want, "round", (size_t)round);
        h_fini(&h);
    }
    stp_buf_free(&b);
    stp_buf_free(&want);
}

Test(ws_frames, ping_answered_with_exact_pong)
{
    /* RFC 6455 section 5.7: ping "Hello" -> unmasked pong "Hello". */
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_PING, true, "Hello", 5);
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(feed_buf(&h, &b), 0);
    h_expect_out(&h, "\x8a\x05Hello", 7);
    cr_assert_eq(h.nmsgs, 0);
    /* A 125-byte ping (the most a control frame holds). */
    char p125[125];
    memset(p125, 'z', sizeof(p125));
    stp_buf_reset(&b);
    stp_buf_reset(&h.out);
    h_frame(&b, STP_WS_OP_PING, true, p125, 125);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.out.len, 127);
    cr_assert_eq(memcmp(h.out.data, "\x8a\x7d", 2), 0);
    cr_assert_eq(memcmp(h.out.data + 2, p125, 125), 0);
    h_fini(&h);
    stp_buf_free(&b);
}

static void peer_close_case(const void *payload, size_t n, uint16_t reply, bool by_peer)
{
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_CLOSE, true, payload, n);
    h_frame(&b, STP_WS_OP_TEXT, true, "after", 5); /* never delivered */
    struct harness h;
    h_open(&h, 1 << 20);
    int rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 0);
    uint8_t want[4] = {0x88, 0x02, (uint8_t)(reply >> 8), (uint8_t)reply};
    if (by_peer)
        h_expect_out(&h, want, 4); /* the echo carries no reason */
    expect_close(&h, rc, reply, by_peer);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, peer_close_echoed)
{
    peer_close_case("\x03\xe8", 2, 1000, true);
    peer_close_case("\x03\xe8"
                    "bye",
                    5, 1000, true);
    peer_close_case("\x03\xe9", 2, 1001, true);
    peer_close_case("\x0f\xa0", 2, 4000, true);
    peer_close_case("", 0, 1000, true); /* no code: answered 1000 */
}

Test(ws_frames, bad_peer_close_1002_or_1007)
{
    peer_close_case("\x03", 1, 1002, false);             /* one byte */
    peer_close_case("\x03\xed", 2, 1002, false);         /* 1005 may not be sent */
    peer_close_case("\x03\xee", 2, 1002, false);         /* 1006 */
    peer_close_case("\x03\xe7", 2, 1002, false);         /* 999 */
    peer_close_case("\x07\xd0", 2, 1002, false);         /* 2000 */
    peer_close_case("\x13\x88", 2, 1002, false);         /* 5000 */
    peer_close_case("\x03\xe8\xc3\x28", 4, 1007, false); /* reason not UTF-8 */
}

Test(ws_frames, caller_close_1000_and_1008)
{
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_POLICY, "policy"), 0);
    h_drain(&h);
    h_expect_out(&h, "\x88\x08\x03\xf0policy", 10);
    expect_close(&h, STP_ECLOSED, 1008, false);
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_NORMAL, NULL), STP_ECLOSED);
    cr_assert_eq(h.closed, 1);
    h_fini(&h);

    h_open(&h, 1 << 20);
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_NORMAL, NULL), 0);
    h_drain(&h);
    h_expect_out(&h, "\x88\x02\x03\xe8", 4);
    expect_close(&h, STP_ECLOSED, 1000, false);
    h_fini(&h);

    /* A long reason is cut to fit the 125-byte control frame. */
    char reason[300];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    h_open(&h, 1 << 20);
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_POLICY, reason), 0);
    h_drain(&h);
    cr_assert_eq(h.out.len, 127);
    expect_close(&h, STP_ECLOSED, 1008, false);
    h_fini(&h);
}

Test(ws_frames, close_from_inside_on_message_stops_delivery)
{
    struct stp_buf b = STP_BUF_INIT;
    for (int i = 0; i < 5; i++)
        h_frame(&b, STP_WS_OP_TEXT, true, "m", 1);
    struct harness h;
    h_open(&h, 1 << 20);
    h.close_after = 2;
    int rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 2);
    expect_close(&h, rc, 1008, false);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, oversize_message_1009)
{
    char big[201];
    memset(big, 'x', sizeof(big));
    struct harness h;

    /* Exactly the limit passes. */
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_TEXT, true, big, 100);
    h_open(&h, 100);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 1);
    h_fini(&h);

    /* One frame over it. */
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_BINARY, true, big, 101);
    h_open(&h, 100);
    int rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 0);
    expect_close(&h, rc, 1009, false);
    h_fini(&h);

    /* Fragments that add up to more. */
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, false, big, 60);
    h_frame(&b, STP_WS_OP_CONT, false, big, 40);
    h_frame(&b, STP_WS_OP_CONT, true, big, 1);
    h_open(&h, 100);
    rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 0);
    expect_close(&h, rc, 1009, false);
    h_fini(&h);

    /* Decided from the header: a 2^40-byte claim with a few payload bytes. */
    stp_buf_reset(&b);
    uint8_t hdr[14];
    size_t hl = stp_ws_client_frame_header(hdr, STP_WS_OP_BINARY, true, 1ULL << 40, h_mask);
    stp_buf_append(&b, hdr, hl);
    stp_buf_append(&b, "abcd", 4);
    h_open(&h, 4 << 20);
    rc = feed_buf(&h, &b);
    expect_close(&h, rc, 1009, false);
    h_fini(&h);
    stp_buf_free(&b);
}

/* stp_ws_set_max_message: a smaller bound until the caller raises it (the
 * broker's 64 KiB before CONNECTED), and a lowered bound below a message
 * already partly buffered still refuses its next fragment. */
Test(ws_frames, max_message_changed_between_messages)
{
    char big[301];
    memset(big, 'y', sizeof(big));
    struct harness h;
    struct stp_buf b = STP_BUF_INIT;
    h_open(&h, 1000);
    stp_ws_set_max_message(h.ws, 100);
    h_frame(&b, STP_WS_OP_TEXT, true, big, 100);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 1);
    stp_ws_set_max_message(h.ws, 300);
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, true, big, 300);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 2);
    stp_ws_set_max_message(h.ws, 100);
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, true, big, 101);
    int rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 2);
    expect_close(&h, rc, 1009, false);
    h_fini(&h);

    /* Lowered under what a fragmented message already holds. */
    h_open(&h, 1000);
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, false, big, 200);
    cr_assert_eq(feed_buf(&h, &b), 0);
    stp_ws_set_max_message(h.ws, 100);
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_CONT, true, big, 1);
    rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 0);
    expect_close(&h, rc, 1009, false);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, invalid_utf8_text_1007_binary_fine)
{
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_BINARY, true, "\xc3\x28", 2);
    h_frame(&b, STP_WS_OP_TEXT, true, "ok", 2);
    h_frame(&b, STP_WS_OP_TEXT, true, "bad \xed\xa0\x80", 7); /* a surrogate */
    h_frame(&b, STP_WS_OP_TEXT, true, "never", 5);
    struct harness h;
    h_open(&h, 1 << 20);
    int rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 2);
    cr_assert(h.msg_binary[0]);
    cr_assert_eq(memcmp(h.msgs.data, "\xc3\x28ok", 4), 0);
    expect_close(&h, rc, 1007, false);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, utf8_character_split_across_fragments)
{
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_TEXT, false, "caf\xc3", 4);
    h_frame(&b, STP_WS_OP_CONT, false, "\xa9 \xe2\x82", 4);
    h_frame(&b, STP_WS_OP_CONT, true, "\xac", 1);
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(feed_buf(&h, &b), 0);
    cr_assert_eq(h.nmsgs, 1);
    cr_assert_eq(h.msg_len[0], 9);
    cr_assert_eq(memcmp(h.msgs.data, "caf\xc3\xa9 \xe2\x82\xac", 9), 0);
    h_fini(&h);

    /* A message ending inside a character is invalid. */
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, false, "caf", 3);
    h_frame(&b, STP_WS_OP_CONT, true, "\xc3", 1);
    h_open(&h, 1 << 20);
    int rc = feed_buf(&h, &b);
    cr_assert_eq(h.nmsgs, 0);
    expect_close(&h, rc, 1007, false);
    h_fini(&h);
    stp_buf_free(&b);
}

Test(ws_frames, unmasked_client_frame_1002)
{
    struct harness h;
    h_open(&h, 1 << 20);
    /* RFC 6455 section 5.7's unmasked "Hello": fine from a server, not from a client. */
    int rc = h_feed(&h, "\x81\x05Hello", 7);
    cr_assert_eq(h.nmsgs, 0);
    expect_close(&h, rc, 1002, false);
    h_fini(&h);
}

static void protocol_error_case(const struct stp_buf *b, size_t delivered)
{
    struct harness h;
    h_open(&h, 1 << 20);
    int rc = feed_buf(&h, b);
    cr_assert_eq(h.nmsgs, delivered);
    expect_close(&h, rc, 1002, false);
    h_fini(&h);
}

Test(ws_frames, protocol_errors_1002)
{
    struct stp_buf b = STP_BUF_INIT;
    uint8_t raw[16];

    /* Continuation with no message started. */
    h_frame(&b, STP_WS_OP_CONT, true, "x", 1);
    protocol_error_case(&b, 0);

    /* A new data message while one is still fragmented. */
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, false, "a", 1);
    h_frame(&b, STP_WS_OP_TEXT, true, "b", 1);
    protocol_error_case(&b, 0);

    /* Reserved opcodes, data and control. */
    for (int op = 3; op <= 0xf; op++) {
        if (op >= STP_WS_OP_CLOSE && op <= STP_WS_OP_PONG)
            continue;
        stp_buf_reset(&b);
        h_frame(&b, STP_WS_OP_TEXT, true, "ok", 2);
        h_frame(&b, op, true, "x", 1);
        protocol_error_case(&b, 1);
    }

    /* RSV1 set (no extension was negotiated). */
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_TEXT, true, "x", 1);
    b.data[0] |= 0x40;
    protocol_error_case(&b, 0);

    /* A fragmented ping. */
    stp_buf_reset(&b);
    h_frame(&b, STP_WS_OP_PING, false, "x", 1);
    protocol_error_case(&b, 0);

    /* A control frame over 125 bytes (16-bit length form). */
    stp_buf_reset(&b);
    char p126[126] = {0};
    h_frame(&b, STP_WS_OP_PING, true, p126, 126);
    protocol_error_case(&b, 0);

    /* A non-minimal length: 5 bytes written in the 16-bit form. */
    stp_buf_reset(&b);
    memcpy(raw, "\x81\xfe\x00\x05\x00\x00\x00\x00hello", 13);
    stp_buf_append(&b, raw, 13);
    protocol_error_case(&b, 0);

    /* A 64-bit length with the top bit set. */
    stp_buf_reset(&b);
    memcpy(raw, "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00x", 15);
    stp_buf_append(&b, raw, 15);
    protocol_error_case(&b, 0);
    stp_buf_free(&b);
}

Test(ws_frames, large_message_in_pieces_delivered_whole)
{
    size_t n = 1 << 20;
    uint8_t *payload = malloc(n);
    cr_assert_not_null(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_BINARY, true, payload, n);
    struct harness h;
    h_open(&h, n);
    for (size_t off = 0; off < b.len; off += 65536) {
        size_t len = b.len - off < 65536 ? b.len - off : 65536;
        cr_assert_eq(h_feed(&h, b.data + off, len), 0);
    }
    cr_assert_eq(h.nmsgs, 1);
    cr_assert_eq(h.msg_len[0], n);
    cr_assert_eq(memcmp(h.msgs.data, payload, n), 0);
    h_fini(&h);
    stp_buf_free(&b);
    free(payload);
}

Test(ws_frames, caller_sends_server_frames)
{
    struct harness h;
    h_open(&h, 1 << 20);
    cr_assert_eq(stp_ws_send(h.ws, STP_WS_OP_TEXT, "\n", 1), 0); /* a heart-beat */
    cr_assert_eq(stp_ws_send(h.ws, STP_WS_OP_BINARY, "\x00\x01", 2), 0);
    char big[126] = {0};
    cr_assert_eq(stp_ws_send(h.ws, STP_WS_OP_PING, big, 126), STP_EINVAL);
    h_drain(&h);
    h_expect_out(&h, "\x81\x01\n\x82\x02\x00\x01", 7);
    h_fini(&h);

    /* Not before the upgrade. */
    h_init(&h, 1 << 20);
    cr_assert_eq(stp_ws_send(h.ws, STP_WS_OP_TEXT, "x", 1), STP_ECLOSED);
    h_fini(&h);
}

Test(ws_frames, random_frames_never_crash)
{
    srand(99);
    for (int round = 0; round < 3000; round++) {
        struct harness h;
        h_open(&h, 1000);
        uint8_t junk[300];
        size_t n = (size_t)rand() % sizeof(junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rand();
        if (n > 1 && round % 2)
            junk[1] |= 0x80; /* masked, to get past the first check */
        int rc = h_feed(&h, junk, n);
        cr_assert(rc == 0 || rc == STP_ECLOSED);
        if (rc == STP_ECLOSED)
            cr_assert_eq(h.closed, 1);
        h_fini(&h);
    }
}

Test(ws_frames, close_frame_is_the_last_output)
{
    /* Request, a STOMP frame, a ping and the peer's close in one feed: the
     * 101 comes first, then the pong, then the close reply, and nothing
     * after it even when the caller asks for more. */
    struct stp_buf b = STP_BUF_INIT;
    stp_buf_append_str(&b, H_REQUEST);
    h_frame(&b, STP_WS_OP_TEXT, true, "CONNECT\n\n\0", 10);
    h_frame(&b, STP_WS_OP_PING, true, "p", 1);
    h_frame(&b, STP_WS_OP_CLOSE, true, "\x03\xe8", 2);
    h_frame(&b, STP_WS_OP_PING, true, "q", 1);
    struct harness h;
    h_init(&h, 1 << 20);
    cr_assert_eq(h_feed(&h, b.data, b.len), STP_ECLOSED);
    cr_assert_eq(h.nmsgs, 1);
    size_t l101 = strlen(H_101);
    cr_assert_eq(h.out.len, l101 + 3 + 4);
    cr_assert_eq(memcmp(h.out.data, H_101, l101), 0);
    cr_assert_eq(memcmp(h.out.data + l101, "\x8a\x01p\x88\x02\x03\xe8", 7), 0);
    cr_assert_eq(stp_ws_send(h.ws, STP_WS_OP_TEXT, "late", 4), STP_ECLOSED);
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_NORMAL, NULL), STP_ECLOSED);
    h_drain(&h);
    cr_assert_eq(h.out.len, l101 + 3 + 4);
    h_fini(&h);
    stp_buf_free(&b);
}

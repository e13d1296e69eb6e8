/*
 * 12_ws_frames.c - STOMP over WebSocket frames against a real broker, with the
 * harness's raw WebSocket client: masked text and binary client frames,
 * fragmentation, several STOMP frames per message and one STOMP frame over
 * several messages (split at every byte), ping/pong, the close codes (1000
 * echoed, 1002, 1007, 1009, ERROR then close), text vs binary server frames
 * (and --ws-frame binary), heart-beats as "\n" frames, and destinations
 * shared between TCP and WebSocket clients.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

TestSuite(ws_frames, .init = h_init, .fini = h_fini, .timeout = 30);

enum { OP_CONT = 0, OP_TEXT = 1, OP_BIN = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* head + body (blen bytes, may hold NULs) + NUL into out; returns the length. */
static size_t with_body(char *out, size_t cap, const char *head, const void *body, size_t blen)
{
    size_t hl = strlen(head);
    cr_assert(hl + blen + 1 <= cap);
    memcpy(out, head, hl);
    memcpy(out + hl, body, blen);
    out[hl + blen] = '\0';
    return hl + blen + 1;
}

static struct h_frame *expect_ws_msg(struct h_ws *w, const char *body, int opcode)
{
    struct h_frame *f = h_ws_expect(w, "MESSAGE", H_WAIT);
    cr_assert(f->body_len == strlen(body) && memcmp(f->body, body, f->body_len) == 0,
              "expected MESSAGE '%s', got %s", body, h_show(f));
    if (opcode)
        cr_assert(w->last_opcode == opcode, "MESSAGE '%s' came in opcode %d, expected %d", body,
                  w->last_opcode, opcode);
    return f;
}

Test(ws_frames, masked_text_and_binary_client_frames)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "mask");
    struct h_ws *sub = h_ws_client(port, "1.2");
    h_ws_subscribe(sub, dest, "s1", NULL);
    struct h_ws *pub = h_ws_client(port, "1.2");
    h_ws_sendf(pub, "SEND\ndestination:%s\n\ntext-frame", dest);
    const char *f = h_fmt("SEND\ndestination:%s\n\nbinary-frame", dest);
    h_ws_send_frame(pub, OP_BIN, true, f, strlen(f) + 1);
    expect_ws_msg(sub, "text-frame", OP_TEXT);
    expect_ws_msg(sub, "binary-frame", OP_TEXT);
    h_broker_stop_ok(b);
}

Test(ws_frames, fragmented_message_with_ping_between)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "frag");
    struct h_ws *sub = h_ws_client(port, "1.2");
    h_ws_subscribe(sub, dest, "s1", NULL);
    struct h_ws *pub = h_ws_client(port, "1.2");
    const char *frame = h_fmt("SEND\ndestination:%s\n\nthree fragments, caf\xc3\xa9", dest);
    size_t n = strlen(frame) + 1, a = 7, c = n - 3; /* the last cut splits the é */
    h_ws_send_frame(pub, OP_TEXT, false, frame, a);
    h_ws_send_frame(pub, OP_PING, true, "mid", 3);
    h_ws_send_frame(pub, OP_CONT, false, frame + a, c - a);
    h_ws_send_frame(pub, OP_CONT, true, frame + c, n - c);
    expect_ws_msg(sub, "three fragments, caf\xc3\xa9", OP_TEXT);
    struct h_wsframe wf;
    cr_assert(h_ws_read_frame(pub, H_WAIT, &wf) == 1, "no pong for the ping between fragments");
    cr_assert(wf.opcode == OP_PONG && wf.len == 3 && memcmp(wf.payload, "mid", 3) == 0,
              "expected pong 'mid', got opcode %d len %zu", wf.opcode, wf.len);
    /* Many small fragments of a binary message. */
    frame = h_fmt("SEND\ndestination:%s\n\nsixteen-byte-frags-of-a-binary-message", dest);
    n = strlen(frame) + 1;
    for (size_t off = 0; off < n; off += 16) {
        size_t len = n - off < 16 ? n - off : 16;
        h_ws_send_frame(pub, off == 0 ? OP_BIN : OP_CONT, off + len == n, frame + off, len);
    }
    expect_ws_msg(sub, "sixteen-byte-frags-of-a-binary-message", OP_TEXT);
    h_broker_stop_ok(b);
}

Test(ws_frames, several_stomp_frames_in_one_message)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "multi");
    struct h_ws *w = h_ws_client(port, "1.2");
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "SUBSCRIBE\ndestination:%s\nid:1\nreceipt:sub\n\n", dest);
    buf[n++] = '\0';
    for (int i = 0; i < 3; i++) {
        n += snprintf(buf + n, sizeof buf - (size_t)n, "SEND\ndestination:%s\n\nm%d", dest, i);
        buf[n++] = '\0';
        buf[n++] = '\n'; /* an EOL between frames too */
    }
    h_ws_send_frame(w, OP_TEXT, true, buf, (size_t)n);
    struct h_frame *f = h_ws_expect(w, "RECEIPT", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "receipt-id"), "sub");
    expect_ws_msg(w, "m0", OP_TEXT);
    expect_ws_msg(w, "m1", OP_TEXT);
    expect_ws_msg(w, "m2", OP_TEXT);
    h_broker_stop_ok(b);
}

Test(ws_frames, one_stomp_frame_over_several_messages)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "split");
    struct h_ws *sub = h_ws_client(port, "1.2");
    h_ws_subscribe(sub, dest, "s1", NULL);
    struct h_ws *pub = h_ws_client(port, "1.2");
    const char *frame =
        h_fmt("SEND\ndestination:%s\ncontent-type:text/plain\n\nin three messages", dest);
    size_t n = strlen(frame) + 1;
    h_ws_send_frame(pub, OP_TEXT, true, frame, 5);
    h_sleep_ms(50);
    h_ws_send_frame(pub, OP_TEXT, true, frame + 5, 20);
    h_sleep_ms(50);
    h_ws_send_frame(pub, OP_BIN, true, frame + 25, n - 25);
    expect_ws_msg(sub, "in three messages", OP_TEXT);
    h_broker_stop_ok(b);
}

/* Every split point k of a SEND frame: the two parts as two separate binary
 * messages, and as two fragments of one text message (the body has a
 * two-byte character, so some cuts fall inside it). */
Test(ws_frames, split_at_every_byte)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "bytes");
    struct h_ws *sub = h_ws_client(port, "1.2");
    h_ws_subscribe(sub, dest, "s1", NULL);
    struct h_ws *pub = h_ws_client(port, "1.2");
    const char *frame0 =
        h_fmt("SEND\ndestination:%s\ncontent-type:text/plain\n\n\xc3\xa9-000-m", dest);
    size_t n = strlen(frame0) + 1;
    for (size_t k = 1; k < n; k++) {
        for (int variant = 0; variant < 2; variant++) {
            char *frame = strdup(frame0);
            char *num = strstr(frame, "-000-");
            num[1] = (char)('0' + k / 100);
            num[2] = (char)('0' + k / 10 % 10);
            num[3] = (char)('0' + k % 10);
            num[5] = variant ? 'f' : 'm';
            if (variant == 0) {
                h_ws_send_frame(pub, OP_BIN, true, frame, k);
                h_ws_send_frame(pub, OP_BIN, true, frame + k, n - k);
            } else {
                h_ws_send_frame(pub, OP_TEXT, false, frame, k);
                h_ws_send_frame(pub, OP_CONT, true, frame + k, n - k);
            }
            free(frame);
        }
    }
    for (size_t k = 1; k < n; k++) {
        for (int variant = 0; variant < 2; variant++) {
            const char *want = h_fmt("\xc3\xa9-%03zu-%c", k, variant ? 'f' : 'm');
            expect_ws_msg(sub, want, OP_TEXT);
        }
    }
    /* Still open and well: a receipt. */
    h_ws_sendz(pub, "DISCONNECT\nreceipt:bye\n\n");
    struct h_frame *f = h_ws_expect(pub, "RECEIPT", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "receipt-id"), "bye");
    h_broker_stop_ok(b);
}

Test(ws_frames, ping_gets_pong_with_same_payload)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_dial(port); /* pings work before CONNECT too */
    static const char bin[] = "\x00\x01\xff\xfe binary";
    char longest[125];
    for (size_t i = 0; i < sizeof longest; i++)
        longest[i] = (char)('a' + i % 26);
    const char *payloads[] = {"", "hello-123", bin, longest};
    size_t lens[] = {0, 9, sizeof bin - 1, sizeof longest};
    for (size_t i = 0; i < 4; i++) {
        h_ws_send_frame(w, OP_PING, true, payloads[i], lens[i]);
        struct h_wsframe wf;
        cr_assert(h_ws_read_frame(w, H_WAIT, &wf) == 1, "no pong for ping %zu", i);
        cr_assert(wf.opcode == OP_PONG && wf.fin, "ping %zu: expected a pong, got opcode %d", i,
                  wf.opcode);
        cr_assert(wf.len == lens[i] && memcmp(wf.payload, payloads[i], lens[i]) == 0,
                  "ping %zu: pong payload differs (%zu bytes, expected %zu)", i, wf.len, lens[i]);
    }
    /* A pong from the client is ignored; the session goes on. */
    h_ws_send_frame(w, OP_PONG, true, "unsolicited", 11);
    h_ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\n\n");
    h_ws_expect(w, "CONNECTED", H_WAIT);
    h_broker_stop_ok(b);
}

static void close_payload(uint8_t out[2], int code)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
}

Test(ws_frames, client_close_is_echoed)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    int codes[] = {1000, 1001, 3000, 4999};
    for (size_t i = 0; i < 4; i++) {
        struct h_ws *w = h_ws_client(port, "1.2");
        uint8_t p[16];
        close_payload(p, codes[i]);
        memcpy(p + 2, "bye", 3);
        h_ws_send_frame(w, OP_CLOSE, true, p, 5);
        int code = h_ws_expect_close(w, H_WAIT);
        cr_assert(code == codes[i], "client close %d: server answered %d", codes[i], code);
        cr_assert(h_ws_wait_eof(w, 3000), "close %d: TCP not closed after the close handshake",
                  codes[i]);
    }
    /* A close without a code is answered with 1000. */
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_send_frame(w, OP_CLOSE, true, "", 0);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1000, "empty client close: server answered %d", code);
    /* An invalid code (1005 must never be sent) is a protocol error. */
    w = h_ws_client(port, "1.2");
    uint8_t p[2];
    close_payload(p, 1005);
    h_ws_send_frame(w, OP_CLOSE, true, p, 2);
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1002, "client close 1005: server answered %d", code);
    h_broker_stop_ok(b);
}

Test(ws_frames, unmasked_client_frame_is_1002)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_client(port, "1.2");
    const char *f = "SEND\ndestination:/topic/x\n\nunmasked";
    int r = h_ws_send_frame_ex(w, OP_TEXT, true, false, f, strlen(f) + 1);
    cr_assert(r == 0);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1002, "unmasked frame: expected close 1002, got %d", code);
    cr_assert(h_ws_wait_eof(w, 3000), "not closed after 1002");
    /* Before CONNECT too. */
    w = h_ws_dial(port);
    r = h_ws_send_frame_ex(w, OP_PING, true, false, "x", 1);
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1002, "unmasked ping: expected close 1002, got %d", code);
    /* A reserved opcode as well. */
    w = h_ws_client(port, "1.2");
    h_ws_send_frame(w, 3, true, "x", 1);
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1002, "opcode 3: expected close 1002, got %d", code);
    h_broker_stop_ok(b);
}

Test(ws_frames, invalid_utf8_text_is_1007)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_client(port, "1.2");
    const char *f = "SEND\ndestination:/topic/x\n\nbad \xff\xfe utf-8";
    h_ws_send_frame(w, OP_TEXT, true, f, strlen(f) + 1);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1007, "invalid UTF-8 text: expected close 1007, got %d", code);
    cr_assert(h_ws_wait_eof(w, 3000), "not closed after 1007");
    /* A text message ending inside a character (split into fragments). */
    w = h_ws_client(port, "1.2");
    h_ws_send_frame(w, OP_TEXT, false, "SEND\ndestination:/topic/x\n\n\xc3", 29);
    h_ws_send_frame(w, OP_CONT, true, "", 0);
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1007, "truncated character: expected close 1007, got %d", code);
    /* The same bytes in a binary frame are fine (STOMP bodies are bytes). */
    const char *dest = h_dest("topic", "utf");
    w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, dest, "s", NULL);
    char sf[256];
    size_t sl = with_body(sf, sizeof sf, h_fmt("SEND\ndestination:%s\ncontent-length:4\n\n", dest),
                          "\xff\xfe\x00\x01", 4);
    h_ws_send_frame(w, OP_BIN, true, sf, sl);
    struct h_frame *m = h_ws_expect(w, "MESSAGE", H_WAIT);
    cr_assert(m->body_len == 4 && memcmp(m->body, "\xff\xfe\x00\x01", 4) == 0, "%s", h_show(m));
    cr_assert(w->last_opcode == OP_BIN, "a non-UTF-8 body came in opcode %d", w->last_opcode);
    h_broker_stop_ok(b);
}

Test(ws_frames, message_over_max_frame_size_is_1009)
{
    struct h_broker *b = H_START_WS(2, "--max-frame-size", "4096");
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "big");
    struct h_ws *sub = h_ws_client(port, "1.2");
    h_ws_subscribe(sub, dest, "s", NULL);
    /* Under the limit: delivered. */
    char body[8192];
    memset(body, 'x', sizeof body);
    body[3000] = '\0';
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_sendf(w, "SEND\ndestination:%s\n\n%s", dest, body);
    struct h_frame *m = h_ws_expect(sub, "MESSAGE", H_WAIT);
    cr_assert(m->body_len == 3000, "%s", h_show(m));
    /* One frame over it. */
    body[3000] = 'x';
    body[6000] = '\0';
    h_ws_sendf(w, "SEND\ndestination:%s\n\n%s", dest, body);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1009, "a 6 KB message (max 4096): expected close 1009, got %d", code);
    cr_assert(h_ws_wait_eof(w, 3000), "not closed after 1009");
    /* Small fragments adding up past it. */
    w = h_ws_client(port, "1.2");
    const char *head = h_fmt("SEND\ndestination:%s\n\n", dest);
    h_ws_send_frame(w, OP_TEXT, false, head, strlen(head));
    for (int i = 0; i < 5 && w->close_code < 0; i++) {
        if (h_ws_send_frame_ex(w, OP_CONT, false, true, body, 1000) != 0)
            break;
    }
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1009, "fragments over 4096: expected close 1009, got %d", code);
    /* The subscriber saw nothing of them. */
    cr_assert(h_ws_read(sub, 300) == NULL, "the subscriber got a message from a refused frame");
    cr_assert(sub->close_code < 0);
    h_broker_stop_ok(b);
}

Test(ws_frames, stomp_error_then_close_frame)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_sendz(w, "BOGUS\nreceipt:r1\n\n");
    struct h_frame *f = h_ws_expect(w, "ERROR", H_WAIT);
    cr_assert(h_hdr(f, "message") != NULL, "ERROR without message: %s", h_show(f));
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1000 || code == 1002 || code == 1008, "close after a STOMP ERROR: code %d",
              code);
    cr_assert(h_ws_wait_eof(w, 3000), "not closed after the ERROR");
    /* A frame before CONNECT too. */
    w = h_ws_dial(port);
    h_ws_sendz(w, "SEND\ndestination:/topic/x\n\nearly");
    f = h_ws_expect(w, "ERROR", H_WAIT);
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code > 0, "no close code after the ERROR");
    h_broker_stop_ok(b);
}

Test(ws_frames, text_for_utf8_binary_otherwise)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "kind");
    struct h_ws *w = h_ws_client(port, "1.2");
    cr_assert(w->last_opcode == OP_TEXT, "CONNECTED came in opcode %d", w->last_opcode);
    h_ws_subscribe(w, dest, "s", NULL);
    struct h_conn *tcp = h_client(b, "1.2");
    h_publish(tcp, dest, "plain ascii", false);
    expect_ws_msg(w, "plain ascii", OP_TEXT);
    h_publish(tcp, dest, "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", false);
    expect_ws_msg(w, "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", OP_TEXT);
    h_sendf(tcp, "SEND\ndestination:%s\ncontent-length:3\n\n\x80\x81\x82", dest);
    expect_ws_msg(w, "\x80\x81\x82", OP_BIN);
    /* Overlong encoding and a surrogate are not UTF-8 either. */
    h_sendf(tcp, "SEND\ndestination:%s\ncontent-length:2\n\n\xc0\xaf", dest);
    expect_ws_msg(w, "\xc0\xaf", OP_BIN);
    h_sendf(tcp, "SEND\ndestination:%s\ncontent-length:3\n\n\xed\xa0\x80", dest);
    expect_ws_msg(w, "\xed\xa0\x80", OP_BIN);
    /* A body with a NUL is valid UTF-8: text. */
    char nb[256];
    h_send(tcp, nb,
           with_body(nb, sizeof nb, h_fmt("SEND\ndestination:%s\ncontent-length:3\n\n", dest),
                     "a\0b", 3));
    struct h_frame *m = h_ws_expect(w, "MESSAGE", H_WAIT);
    cr_assert(m->body_len == 3 && memcmp(m->body, "a\0b", 3) == 0, "%s", h_show(m));
    cr_assert(w->last_opcode == OP_TEXT, "a NUL body came in opcode %d", w->last_opcode);
    h_broker_stop_ok(b);
}

Test(ws_frames, ws_frame_binary_makes_every_frame_binary)
{
    struct h_broker *b = H_START_WS(2, "--ws-frame", "binary");
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "bin");
    struct h_ws *w = h_ws_client(port, "1.2");
    cr_assert(w->last_opcode == OP_BIN, "CONNECTED came in opcode %d", w->last_opcode);
    h_ws_subscribe(w, dest, "s", NULL);
    cr_assert(w->last_opcode == OP_BIN, "RECEIPT came in opcode %d", w->last_opcode);
    struct h_conn *tcp = h_client(b, "1.2");
    h_publish(tcp, dest, "ascii but binary", false);
    expect_ws_msg(w, "ascii but binary", OP_BIN);
    cr_assert(w->text_msgs == 0, "%llu text messages with --ws-frame binary",
              (unsigned long long)w->text_msgs);
    h_broker_stop_ok(b);
}

Test(ws_frames, server_heartbeats_are_eol_frames)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_dial(port);
    h_ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,200\n\n");
    struct h_frame *f = h_ws_expect(w, "CONNECTED", H_WAIT);
    const char *hb = h_hdr(f, "heart-beat");
    cr_assert(hb != NULL, "no heart-beat in CONNECTED: %s", h_show(f));
    int sx = -1, sy = -1;
    cr_assert(sscanf(hb, "%d,%d", &sx, &sy) == 2 && sx > 0 && sx <= 200, "heart-beat:0,200 got %s",
              hb);
    uint64_t t0 = h_now_ms();
    int beats = 0;
    while (h_now_ms() < t0 + 1200) {
        struct h_wsframe wf;
        int r = h_ws_read_frame(w, 100, &wf);
        cr_assert(r >= 0, "closed while waiting for heart-beats");
        if (r == 0)
            continue;
        cr_assert(wf.opcode == OP_TEXT || wf.opcode == OP_BIN, "opcode %d", wf.opcode);
        cr_assert(wf.fin && wf.len == 1 && wf.payload[0] == '\n',
                  "expected a heart-beat frame \"\\n\", got %zu bytes", wf.len);
        beats++;
    }
    cr_assert(beats >= 3 && beats <= 14, "%d heart-beat frames in 1.2 s at %d ms", beats, sx);
    h_broker_stop_ok(b);
}

Test(ws_frames, client_heartbeats_keep_the_connection)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_dial(port);
    h_ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:200,0\n\n");
    h_ws_expect(w, "CONNECTED", H_WAIT);
    for (int i = 0; i < 8; i++) {
        h_sleep_ms(150);
        h_ws_send_frame(w, OP_TEXT, true, "\n", 1);
    }
    h_ws_sendz(w, "SUBSCRIBE\ndestination:/topic/hb\nid:1\nreceipt:alive\n\n");
    h_ws_expect(w, "RECEIPT", H_WAIT);
    /* Then silence: closed for missing heart-beats. */
    cr_assert(h_ws_wait_eof(w, 3000), "no close after the client's heart-beats stopped");
    h_broker_stop_ok(b);
}

Test(ws_frames, tcp_and_websocket_share_destinations)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *topic = h_dest("topic", "shared");
    struct h_ws *ws_sub = h_ws_client(port, "1.2");
    h_ws_subscribe(ws_sub, topic, "w", NULL);
    struct h_conn *tcp_sub = h_client(b, "1.2");
    h_subscribe(tcp_sub, topic, "t", NULL, "");
    struct h_conn *tcp_pub = h_client(b, "1.2");
    struct h_ws *ws_pub = h_ws_client(port, "1.1");
    h_publish(tcp_pub, topic, "from tcp", true);
    expect_ws_msg(ws_sub, "from tcp", OP_TEXT);
    h_expect_msg(tcp_sub, "from tcp");
    h_ws_sendf(ws_pub, "SEND\ndestination:%s\nreceipt:p\n\nfrom ws", topic);
    h_ws_expect(ws_pub, "RECEIPT", H_WAIT);
    expect_ws_msg(ws_sub, "from ws", OP_TEXT);
    h_expect_msg(tcp_sub, "from ws");
    /* A queue: WS producer, TCP consumer with client acks, and back. */
    const char *q = h_dest("queue", "shared");
    h_ws_sendf(ws_pub, "SEND\ndestination:%s\n\nq-from-ws", q);
    struct h_conn *tcp_cons = h_client(b, "1.2");
    h_subscribe(tcp_cons, q, "c", "client-individual", "");
    struct h_frame *m = h_expect_msg(tcp_cons, "q-from-ws");
    h_ack(tcp_cons, m, NULL, true);
    h_unsubscribe(tcp_cons, "c");
    struct h_ws *ws_cons = h_ws_client(port, "1.2");
    h_ws_subscribe(ws_cons, q, "c", "client-individual");
    h_publish(tcp_pub, q, "q-from-tcp", true);
    m = expect_ws_msg(ws_cons, "q-from-tcp", OP_TEXT);
    h_ws_sendf(ws_cons, "ACK\nid:%s\nreceipt:a\n\n", h_hdr(m, "ack"));
    struct h_frame *r = h_ws_expect(ws_cons, "RECEIPT", H_WAIT);
    cr_assert_str_eq(h_hdr(r, "receipt-id"), "a");
    h_broker_stop_ok(b);
}

/* Send raw bytes (a hand-made frame) on a fresh CONNECTed client and expect
 * the close code `want`. */
static void raw_frame_closes(int port, const char *what, const uint8_t *bytes, size_t n, int want)
{
    struct h_ws *w = h_ws_client(port, "1.2");
    h_send(w->raw, bytes, n);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == want, "%s: expected close %d, got %d", what, want, code);
    cr_assert(h_ws_wait_eof(w, 3000), "%s: not closed after the close frame", what);
}

Test(ws_frames, rfc6455_violations_are_1002)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    /* Masked with a zero key, so the payload bytes are as written. */
    const uint8_t rsv1[] = {0xc1, 0x81, 0, 0, 0, 0, '\n'};
    raw_frame_closes(port, "RSV1 set", rsv1, sizeof rsv1, 1002);
    const uint8_t rsv3[] = {0x91, 0x81, 0, 0, 0, 0, '\n'};
    raw_frame_closes(port, "RSV3 set", rsv3, sizeof rsv3, 1002);
    const uint8_t op11[] = {0x8b, 0x80, 0, 0, 0, 0};
    raw_frame_closes(port, "opcode 0xb", op11, sizeof op11, 1002);
    const uint8_t cont[] = {0x80, 0x81, 0, 0, 0, 0, '\n'};
    raw_frame_closes(port, "continuation without a message", cont, sizeof cont, 1002);
    const uint8_t twice[] = {0x01, 0x81, 0, 0, 0, 0, '\n', 0x81, 0x81, 0, 0, 0, 0, '\n'};
    raw_frame_closes(port, "a new text frame inside a fragmented one", twice, sizeof twice, 1002);
    const uint8_t fragping[] = {0x09, 0x81, 0, 0, 0, 0, 'x'};
    raw_frame_closes(port, "a fragmented ping", fragping, sizeof fragping, 1002);
    uint8_t bigping[4 + 4 + 126] = {0x89, 0xfe, 0, 126, 0, 0, 0, 0};
    raw_frame_closes(port, "a ping of 126 bytes", bigping, sizeof bigping, 1002);
    const uint8_t nonmin16[] = {0x81, 0xfe, 0, 1, 0, 0, 0, 0, '\n'};
    raw_frame_closes(port, "1 byte in a 16-bit length", nonmin16, sizeof nonmin16, 1002);
    const uint8_t nonmin64[] = {0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, '\n'};
    raw_frame_closes(port, "1 byte in a 64-bit length", nonmin64, sizeof nonmin64, 1002);
    const uint8_t msb64[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct h_ws *w = h_ws_client(port, "1.2");
    h_send(w->raw, msb64, sizeof msb64);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1002 || code == 1009, "64-bit length with the top bit set: close %d", code);
    /* A close frame with a 1-byte payload, and one with a reason that is not UTF-8. */
    const uint8_t close1[] = {0x88, 0x81, 0, 0, 0, 0, 0x03};
    raw_frame_closes(port, "a 1-byte close payload", close1, sizeof close1, 1002);
    const uint8_t badreason[] = {0x88, 0x84, 0, 0, 0, 0, 0x03, 0xe8, 0xff, 0xfe};
    raw_frame_closes(port, "a close reason that is not UTF-8", badreason, sizeof badreason, 1007);
    h_broker_stop_ok(b);
}

Test(ws_frames, disconnect_receipt_then_close_1000)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_sendz(w, "DISCONNECT\nreceipt:bye\n\n");
    struct h_frame *f = h_ws_expect(w, "RECEIPT", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "receipt-id"), "bye");
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1000, "close after DISCONNECT: %d", code);
    cr_assert(h_ws_wait_eof(w, 3000), "not closed after DISCONNECT");
    h_broker_stop_ok(b);
}

Test(ws_frames, shutdown_sends_close_frames)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w1 = h_ws_client(port, "1.2");
    struct h_ws *w2 = h_ws_dial(port); /* upgraded, no CONNECT yet */
    int rc = h_broker_stop_sig(b, SIGTERM, 5000);
    cr_assert(rc == 0, "broker exit %d on SIGTERM with WebSocket clients", rc);
    /* 1001 "going away": the server is shutting down (RFC 6455 7.4.1). */
    int code = h_ws_expect_close(w1, H_WAIT);
    cr_assert(code == 1001, "close on shutdown: %d", code);
    code = h_ws_expect_close(w2, H_WAIT);
    cr_assert(code == 1001, "close on shutdown before CONNECT: %d", code);
}

Test(ws_frames, max_frame_size_boundary)
{
    struct h_broker *b = H_START_WS(2, "--max-frame-size", "1024");
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "edge");
    struct h_ws *sub = h_ws_client(port, "1.2");
    h_ws_subscribe(sub, dest, "s", NULL);
    struct h_ws *w = h_ws_client(port, "1.2");
    const char *head = h_fmt("SEND\ndestination:%s\n\n", dest);
    size_t hl = strlen(head);
    char frame[2048];
    memcpy(frame, head, hl);
    /* A message of exactly 1024 bytes (one STOMP frame with its NUL). */
    memset(frame + hl, 'e', 1024 - hl - 1);
    frame[1023] = '\0';
    h_ws_send_frame(w, OP_TEXT, true, frame, 1024);
    struct h_frame *m = h_ws_expect(sub, "MESSAGE", H_WAIT);
    cr_assert(m->body_len == 1024 - hl - 1, "%s", h_show(m));
    /* 1025 bytes: one too many. */
    memset(frame + hl, 'f', 1025 - hl - 1);
    frame[1024] = '\0';
    h_ws_send_frame(w, OP_TEXT, true, frame, 1025);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1009, "a 1025-byte message (max 1024): close %d", code);
    /* A STOMP frame over the limit split into small messages: refused by the
     * STOMP parser (ERROR), never delivered. */
    w = h_ws_client(port, "1.2");
    memset(frame + hl, 'g', 1500);
    frame[hl + 1500] = '\0';
    size_t n = hl + 1501;
    for (size_t off = 0; off < n && w->close_code < 0; off += 500) {
        size_t len = n - off < 500 ? n - off : 500;
        if (h_ws_send_frame_ex(w, OP_TEXT, true, true, frame + off, len) != 0)
            break;
    }
    struct h_frame *e = h_ws_read(w, H_WAIT);
    cr_assert(e != NULL && strcmp(e->cmd, "ERROR") == 0,
              "a 1.5 KB STOMP frame in 500-byte messages (max 1024): got %s", h_show(e));
    cr_assert(h_ws_expect_close(w, H_WAIT) > 0);
    cr_assert(h_ws_read(sub, 300) == NULL, "the oversized frame was delivered");
    h_broker_stop_ok(b);
}

Test(ws_frames, non_utf8_headers_make_a_binary_frame)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "hdr");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, dest, "s", NULL);
    struct h_conn *tcp = h_client(b, "1.2");
    /* UTF-8 body, but a header value with bytes that are not UTF-8: the whole
     * frame is not UTF-8, so it must travel as a binary message (the harness
     * asserts every text message is UTF-8). */
    h_sendf(tcp, "SEND\ndestination:%s\nx-raw:caf\xe9\n\nplain body", dest);
    struct h_frame *m = h_ws_expect(w, "MESSAGE", H_WAIT);
    cr_assert_str_eq(m->body, "plain body");
    cr_assert_str_eq(h_hdr(m, "x-raw"), "caf\xe9");
    cr_assert(w->last_opcode == OP_BIN, "a MESSAGE with a Latin-1 header came in opcode %d",
              w->last_opcode);
    /* And a valid UTF-8 header keeps it text. */
    h_sendf(tcp, "SEND\ndestination:%s\nx-raw:caf\xc3\xa9\n\nplain body", dest);
    m = h_ws_expect(w, "MESSAGE", H_WAIT);
    cr_assert(w->last_opcode == OP_TEXT, "opcode %d", w->last_opcode);
    /* An ERROR about bytes that are not UTF-8 is still a valid message. */
    const char bad[] = "SEND\ndestination:/topic/x\n\xff\xfe-no-colon\n\nx";
    h_ws_send_frame(w, OP_BIN, true, bad, sizeof bad);
    struct h_frame *e = h_ws_expect(w, "ERROR", H_WAIT);
    cr_assert(h_hdr(e, "message") != NULL);
    h_broker_stop_ok(b);
}

Test(ws_frames, slow_websocket_subscriber_is_disconnected)
{
    struct h_broker *b = H_START_WS(2, "--max-pending-output", "256KiB");
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "slow");
    /* A subscriber that stops reading (its socket buffers fill, then the
     * broker's output queue: a few MB on loopback). Its receive buffer stays
     * normal so that, once cut, it can read the rest quickly (a tiny one
     * makes TCP trickle the backlog at a few tens of KB/s). */
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, dest, "s", NULL);
    struct h_conn *pub = h_client(b, "1.2");
    char body[16385];
    memset(body, 's', 16384);
    body[16384] = '\0';
    const char *before = h_http_get(port, "/metrics");
    double slow0 = h_metric(before, "stampede_slow_consumer_disconnects_total");
    double slow1 = slow0;
    for (int i = 0; i < 4000 && slow1 == slow0; i++) {
        h_publish(pub, dest, body, (i % 50) == 49);
        if (i % 50 == 49)
            slow1 =
                h_metric(h_http_get(port, "/metrics"), "stampede_slow_consumer_disconnects_total");
    }
    cr_assert(slow1 == slow0 + 1,
              "slow_consumer_disconnects %g -> %g after up to 64 MB to a stalled "
              "WebSocket subscriber (max pending 256 KiB)",
              slow0, slow1);
    /* Read now: the backlog, the ERROR, then close code 1008 (policy
     * violation), not 1000 (a normal end). */
    uint64_t until = h_now_ms() + 20000;
    struct h_frame *f, *last = NULL;
    while (w->close_code < 0 && h_now_ms() < until && (f = h_ws_read(w, 5000)) != NULL)
        last = f;
    cr_assert(last && strcmp(last->cmd, "ERROR") == 0, "last frame %s",
              last ? h_show(last) : "none");
    cr_assert_str_eq(h_hdr(last, "message"), "slow consumer");
    cr_assert_eq(w->close_code, 1008, "close code %d", w->close_code);
    /* The publisher is unaffected. */
    h_publish(pub, dest, "after", true);
    h_broker_stop_ok(b);
}

/* Bodies whose MESSAGE frames cross the 125/126 and 65535/65536 payload
 * lengths, where the server's frame header grows from 2 to 4 to 10 bytes. */
Test(ws_frames, payload_lengths_across_header_sizes)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "len");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, dest, "s", NULL);
    struct h_conn *pub = h_client(b, "1.2");
    static char body[70000];
    size_t sizes[600], n = 0;
    for (size_t s = 0; s <= 160; s++)
        sizes[n++] = s;
    for (size_t s = 65535 - 260; s <= 65536 + 8; s++)
        sizes[n++] = s;
    for (size_t i = 0; i < n; i++) {
        memset(body, 'a' + (int)(i % 26), sizes[i]);
        body[sizes[i]] = '\0';
        h_publish(pub, dest, body, false);
        struct h_frame *m = h_ws_expect(w, "MESSAGE", H_WAIT);
        cr_assert(m->body_len == sizes[i], "body of %zu bytes came as %zu", sizes[i], m->body_len);
        cr_assert(sizes[i] == 0 || (m->body[0] == body[0] && m->body[sizes[i] - 1] == body[0]),
                  "body of %zu bytes differs", sizes[i]);
    }
    h_broker_stop_ok(b);
}

/* A subscriber that lets a backlog build up (so the broker's writes are
 * partial) and pings all the time: every pong must come whole
 * between data frames, every MESSAGE intact and in order. */
Test(ws_frames, pongs_never_land_inside_data_frames)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "interleave");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, dest, "s", NULL);
    struct h_conn *pub = h_client(b, "1.2");
    enum { N = 150 }; /* 1.35 MB queued before the first read: partial writes */
    static char body[9001];
    for (int i = 0; i < N; i++) {
        memset(body, 'A' + i % 26, 9000);
        snprintf(body, 12, "%05d:", i);
        body[6] = 'x';
        h_publish(pub, dest, body, false);
    }
    uint64_t pings = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            char p[16];
            int pl = snprintf(p, sizeof p, "p%d", i);
            h_ws_send_frame(w, OP_PING, true, p, (size_t)pl);
            pings++;
        }
        struct h_frame *m = h_ws_expect(w, "MESSAGE", 5000);
        char want[8];
        snprintf(want, sizeof want, "%05d:", i);
        cr_assert(m->body_len == 9000 && memcmp(m->body, want, 6) == 0,
                  "message %d: %zu bytes starting %.6s", i, m->body_len, m->body);
        cr_assert(m->body[8999] == 'A' + i % 26, "message %d: tail differs", i);
    }
    /* The remaining pongs. */
    uint64_t deadline = h_now_ms() + H_WAIT;
    while (w->pongs < pings && h_now_ms() < deadline) {
        struct h_wsframe wf;
        if (h_ws_read_frame(w, 100, &wf) == 1 && wf.opcode == OP_PONG)
            w->pongs++;
    }
    cr_assert(w->pongs == pings, "%llu pongs for %llu pings", (unsigned long long)w->pongs,
              (unsigned long long)pings);
    h_broker_stop_ok(b);
}

Test(ws_frames, fan_out_to_websocket_subscribers_in_order)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "fan");
    enum { S = 4, N = 1000 };
    struct h_ws *subs[S];
    for (int i = 0; i < S; i++) {
        subs[i] = h_ws_client(port, i % 2 ? "1.1" : "1.2");
        h_ws_subscribe(subs[i], dest, "s", NULL);
    }
    struct h_ws *pub = h_ws_client(port, "1.2");
    /* Many SENDs per WebSocket message, 50 messages of 20 frames. */
    for (int k = 0; k < N / 20; k++) {
        char buf[4096];
        size_t n = 0;
        for (int j = 0; j < 20; j++) {
            n += (size_t)snprintf(buf + n, sizeof buf - n, "SEND\ndestination:%s\n\nm%d", dest,
                                  k * 20 + j);
            buf[n++] = '\0';
        }
        h_ws_send_frame(pub, OP_TEXT, true, buf, n);
    }
    for (int i = 0; i < N; i++) {
        for (int s = 0; s < S; s++) {
            struct h_frame *m = h_ws_expect(subs[s], "MESSAGE", H_WAIT);
            const char *want = h_fmt("m%d", i);
            cr_assert(strcmp(m->body, want) == 0, "subscriber %d: expected %s, got %s", s, want,
                      h_show(m));
        }
    }
    h_broker_stop_ok(b);
}

/*
 * fuzz_ws.c - libFuzzer target for the WebSocket engine (src/ws): request
 * heads, client answers and frames, fed in growing pieces. The first byte
 * picks the mode: 'W' = server after a valid upgrade (frames only),
 * 'C' = client engine (answer + frames), anything else = server from the
 * request head. Proposed for tests/fuzz/ (owned by the codec's author).
 */
#include "stampede/error.h"
#include "stampede/ws.h"

#include <stddef.h>
#include <stdint.h>

static struct stp_ws *cur;
static int nmsg;
static volatile uint8_t sink; /* keeps the reads of each message */

static void on_http(void *ud, enum stp_ws_endpoint which)
{
    (void)ud, (void)which;
    stp_ws_http_reply(cur, 200, "text/plain", "ok", 2);
}

static void on_message(void *ud, const uint8_t *p, size_t n, bool binary)
{
    (void)ud, (void)binary;
    for (size_t i = 0; i < n; i++)
        sink ^= p[i];
    if (++nmsg == 50)
        stp_ws_close(cur, STP_WS_CLOSE_POLICY, "enough");
}

static const struct stp_ws_ops ops = {.on_http = on_http, .on_message = on_message};

static char *origins[] = {"http://a"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char req[] =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    struct stp_ws_config cfg = {.path = "/ws",
                                .max_message = 3000,
                                .allowed_origins = origins,
                                .nallowed_origins = size & 1};
    static const struct stp_ws_client_config ccfg = {
        .host = "h", .path = "/ws", .max_message = 3000};
    nmsg = 0;
    if (size && data[0] == 'C') {
        cur = stp_ws_client_new(&ccfg, &ops, NULL);
        data++, size--;
    } else {
        cur = stp_ws_new(&cfg, &ops, NULL);
        if (size && data[0] == 'W') {
            stp_ws_feed(cur, (const uint8_t *)req, sizeof(req) - 1);
            data++, size--;
        }
    }
    size_t off = 0, step = 1;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        int rc = stp_ws_feed(cur, data + off, n);
        size_t olen;
        stp_ws_out(cur, &olen);
        stp_ws_out_consume(cur, olen);
        if (rc < 0)
            break;
        off += n;
        step = step * 3 + 1;
    }
    stp_ws_free(&cur);
    return 0;
}

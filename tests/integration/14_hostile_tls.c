/*
 * 14_hostile_tls.c - the hostile-client suite on a stomp+ssl:// listener
 * (issue 9): TLS records that are not a handshake, malformed or oversize
 * records, a ClientHello the broker cannot take, each with its exact answer
 * (a close without a byte, or one fatal alert); ClientHellos split at every
 * byte; floods of ClientHellos that never go on, and of ClientHellos reset
 * at once; STOMP errors inside a finished TLS session.
 *
 * After every case the bystanders (a TLS client and the plain ones of
 * 14_hostile_common.h, connected before it) get the next marker and nothing
 * else, and a new TLS client can still connect.
 */
#include "14_hostile_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

TestSuite(hostile_tls, .init = h_init, .fini = h_fini, .timeout = 90);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define LOGIN_TIMEOUT_MS 1500

struct env {
    struct h_broker *b;
    int tport;
    struct hk_by by;
    struct h_conn *tsub; /* 1.2 over TLS, subscribed to HK_TOPIC */
    const char *tag;
};

static struct env start(int workers)
{
    struct env e;
    e.b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", workers,
                       ARGS("--login-timeout", "1500ms"));
    e.tport = h_broker_port_of(e.b, "stomp+ssl://");
    e.by = hk_by_start(e.b);
    e.tsub = h_tls_client(e.tport, "1.2");
    h_subscribe(e.tsub, HK_TOPIC, "tls", NULL, NULL);
    e.tag = h_fmt("%d worker%s", workers, workers > 1 ? "s" : "");
    return e;
}

static void check(struct env *e, const char *after)
{
    hk_by_check(&e->by, after);
    const char *want = h_fmt("marker-%u", e->by.seq);
    struct h_frame *f = h_read(e->tsub, H_WAIT);
    cr_assert(f != NULL && strcmp(f->cmd, "MESSAGE") == 0 && strcmp(f->body, want) == 0,
              "after %s: the TLS bystander expected %s, got %s", after, want, h_show(f));
}

/* Read what the broker sends on c until it closes (asserted, within ms):
 * the first cap bytes go to buf; returns how many were kept. */
static size_t read_to_close(struct h_conn *c, int ms, uint8_t *buf, size_t cap, const char *what)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    size_t got = 0;
    for (;;) {
        uint64_t now = h_now_ms();
        cr_assert(now < deadline, "%s: not closed within %d ms (%zu bytes so far)", what, ms, got);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            continue;
        uint8_t tmp[4096];
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n > 0) {
            size_t k = (size_t)n < cap - got ? (size_t)n : cap - got;
            memcpy(buf + got, tmp, k);
            got += k;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        return got; /* EOF or reset */
    }
}

/* The bytes are the server's first flight: a handshake record (TLS 1.2)
 * starting with ServerHello and ending with ServerHelloDone. */
static void assert_server_hello(const uint8_t *p, size_t n, const char *what)
{
    cr_assert(n > 9 && p[0] == 0x16 && p[1] == 3 && p[2] == 3 && p[5] == 2,
              "%s: expected a ServerHello record, got %zu bytes starting %02x %02x %02x .. %02x",
              what, n, n > 0 ? p[0] : 0, n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 5 ? p[5] : 0);
    cr_assert(n >= 4 && memcmp(p + n - 4, "\x0e\x00\x00\x00", 4) == 0,
              "%s: the flight does not end with ServerHelloDone", what);
}

/* ===================================================================== */
/* Bad records on the TLS port                                            */
/* ===================================================================== */

enum tls_answer { SILENT, SERVER_HELLO, ALERT_PROTOCOL_VERSION };

struct tls_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    enum tls_answer want;
};

#define B(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static const struct tls_case records[] = {
    {"application data before the handshake", B(0x17, 3, 3, 0, 5, 'h', 'e', 'l', 'l', 'o'), SILENT},
    {"an alert before the handshake", B(0x15, 3, 3, 0, 2, 2, 40), SILENT},
    {"ChangeCipherSpec first", B(0x14, 3, 3, 0, 1, 1), SILENT},
    {"a heartbeat record (heartbleed)", B(0x18, 3, 3, 0, 3, 1, 0x40, 0), SILENT},
    {"record type 0", B(0, 3, 3, 0, 1, 0), SILENT},
    {"record version 3.9", B(0x16, 3, 9, 0, 4, 1, 0, 0, 0), SILENT},
    {"an SSLv2 ClientHello", B(0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0x15, 0, 0, 0, 0x10), SILENT},
    {"a 64 KiB record length", B(0x16, 3, 3, 0xff, 0xff, 'x', 'x', 'x'), SILENT},
    {"a record of 2^14 + 2049 bytes", B(0x16, 3, 3, 0x48, 0x01, 'x'), SILENT},
    {"a handshake longer than its record", B(0x16, 3, 1, 0, 10, 1, 0, 1, 0xf4, 3, 3, 0, 0, 0, 0, 0),
     SILENT},
    {"empty handshake records", B(0x16, 3, 3, 0, 0, 0x16, 3, 3, 0, 0, 0x16, 3, 3, 0, 0), SILENT},
    {"a ClientHello of zeros", B(0x16, 3, 3, 0, 8, 1, 0, 0, 4, 0, 0, 0, 0), SILENT},
    {"STOMP on the TLS port", B('C', 'O', 'N', 'N', 'E', 'C', 'T', '\n', '\n', 0), SILENT},
    {"HTTP on the TLS port",
     B('G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n', '\r',
       '\n'),
     SILENT},
};

static void run_record(struct env *e, const char *name, const uint8_t *bytes, size_t len,
                       enum tls_answer want, bool split)
{
    const char *label = h_fmt("[%s%s] %s", e->tag, split ? ", split at every byte" : "", name);
    struct h_conn *c = h_dial_port(e->tport, 0);
    for (size_t i = 0; i < len; i += split ? 1 : len) {
        if (h_send_raw(c, bytes + i, split ? 1 : len) < 0)
            break;
        if (split)
            usleep(300);
    }
    static uint8_t got[65536];
    /* A ServerHello is followed by the close at the login timeout. */
    size_t n = read_to_close(c, LOGIN_TIMEOUT_MS + 3000, got, sizeof got, label);
    switch (want) {
    case SILENT:
        cr_assert(n == 0, "%s: expected a close without a byte, got %zu bytes (%02x ...)", label, n,
                  got[0]);
        break;
    case SERVER_HELLO:
        assert_server_hello(got, n, label);
        break;
    case ALERT_PROTOCOL_VERSION:
        /* One fatal protocol_version alert: 15 03 0x 00 02 02 46. */
        cr_assert(n == 7 && got[0] == 0x15 && got[1] == 3 && got[3] == 0 && got[4] == 2 &&
                      got[5] == 2 && got[6] == 70,
                  "%s: expected a fatal protocol_version alert, got %zu bytes (%02x %02x ..)",
                  label, n, got[0], got[5]);
        break;
    }
    h_close(c);
    check(e, label);
}

static void bad_records(int workers)
{
    struct env e = start(workers);
    for (size_t i = 0; i < HK_N(records); i++) {
        run_record(&e, records[i].name, records[i].bytes, records[i].len, records[i].want, false);
        if (i < 4)
            run_record(&e, records[i].name, records[i].bytes, records[i].len, records[i].want,
                       true);
    }
    char hello[4096];
    size_t n = h_tls_client_hello(hello, sizeof hello);
    cr_assert(n > 11 && hello[9] == 3 && hello[10] == 3, "not a TLS 1.2 ClientHello");
    run_record(&e, "a ClientHello", (uint8_t *)hello, n, SERVER_HELLO, false);
    run_record(&e, "a ClientHello", (uint8_t *)hello, n, SERVER_HELLO, true);
    hello[10] = 1; /* client_version TLS 1.0 */
    run_record(&e, "a ClientHello for TLS 1.0 only", (uint8_t *)hello, n, ALERT_PROTOCOL_VERSION,
               false);
    h_disconnect(h_tls_client(e.tport, "1.2"));
    h_broker_stop_ok(e.b);
}

Test(hostile_tls, bad_records_1_worker)
{
    bad_records(1);
}

Test(hostile_tls, bad_records_2_workers)
{
    bad_records(2);
}

/* ===================================================================== */
/* ClientHello floods                                                     */
/* ===================================================================== */

/* 60 clients send a ClientHello and never go on: each gets its ServerHello
 * flight and is closed at the login timeout; meanwhile the bystanders and a
 * new TLS client are served as usual. */
Test(hostile_tls, client_hello_flood)
{
    struct env e = start(2);
    char hello[4096];
    size_t n = h_tls_client_hello(hello, sizeof hello);
    enum { N = 60 };
    struct h_conn *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = h_dial_port(e.tport, 0);
        h_send(c[i], hello, n);
    }
    check(&e, "60 ClientHellos");
    /* The new client's handshake waits behind the 60 the broker is doing
     * (each costs an ECDHE and a signature: ~1 s in all under ASan), within
     * h_tls_client's 3 s deadline. */
    struct h_conn *fresh = h_tls_client(e.tport, "1.1");
    h_publish(fresh, HK_QUEUE, "from a TLS client during the flood", false);
    h_disconnect(fresh);
    struct h_frame *f = h_expect_msg(e.by.sub, "from a TLS client during the flood");
    cr_assert_str_eq(h_hdr(f, "subscription"), "q");
    static uint8_t got[65536];
    for (int i = 0; i < N; i++) {
        const char *what = h_fmt("ClientHello %d of the flood", i);
        size_t k = read_to_close(c[i], LOGIN_TIMEOUT_MS + 3000, got, sizeof got, what);
        assert_server_hello(got, k, what);
    }
    check(&e, "60 ClientHellos closed");
    h_broker_stop_ok(e.b);
}

/* 300 ClientHellos, each reset at once (before, while or after the broker
 * answers). */
Test(hostile_tls, client_hello_and_reset_flood)
{
    struct env e = start(2);
    char hello[4096];
    size_t n = h_tls_client_hello(hello, sizeof hello);
    for (int i = 0; i < 300; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert(fd >= 0);
        struct h_conn *c = h_conn_wrap_fd(fd);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e.tport)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        cr_assert(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 3000);
        (void)h_send_raw(c, hello, i % 3 == 0 ? n / 2 : n);
        if (i % 3 == 2)
            h_sleep_ms(1);
        h_reset(c);
        if (i % 50 == 49)
            check(&e, h_fmt("%d ClientHellos reset", i + 1));
    }
    h_disconnect(h_tls_client(e.tport, "1.2"));
    h_broker_stop_ok(e.b);
}

/* ===================================================================== */
/* STOMP errors inside TLS                                                */
/* ===================================================================== */

static const struct hk_case stomp_cases[] = {
    {"SEND before CONNECT",
     NULL,
     Z("SEND\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("Illegal command")}},
    {"garbage before CONNECT",
     NULL,
     NZ("\x16\x03\x01 not a second handshake"),
     {ERR("Bad command")}},
    {"NUL in a CONNECT header",
     NULL,
     Z("CONNECT\naccept-version:1.2\nx:\0\n\n"),
     {ERR("malformed header line")}},
    {"CONNECT and SEND in one write",
     NULL,
     Z("CONNECT\naccept-version:1.2\n\n\0SEND\ndestination:/topic/acc\nreceipt:p\n\nx"),
     {CONN("1.2"), RCPT("p")}},
    {"SEND without destination", "1.2", Z("SEND\n\nforged"), {ERR("Missing destination")}},
    {"bad escape",
     "1.2",
     Z("SEND\ndestination:" HK_TOPIC "\nx:\\q\n\nforged"),
     {ERR("undefined escape sequence in header")}},
    {"content-length one short",
     "1.1",
     Z("SEND\ndestination:" HK_TOPIC "\ncontent-length:1\n\nab"),
     {ERR("frame body not terminated by NUL")}},
    {"unknown command",
     "1.0",
     Z("PUBLISH\ndestination:" HK_TOPIC "\n\nforged"),
     {ERR("Bad command")}},
    {"a frame after DISCONNECT",
     "1.2",
     Z("DISCONNECT\nreceipt:d\n\n\0SEND\ndestination:" HK_TOPIC "\n\nforged"),
     {RCPT("d"), CLOSED}},
};

Test(hostile_tls, stomp_errors_inside_tls)
{
    struct env e = start(2);
    for (size_t i = 0; i < HK_N(stomp_cases); i++) {
        const struct hk_case *k = &stomp_cases[i];
        const char *label = h_fmt("[TLS] %s (%s)", k->name, k->ver ? k->ver : "before CONNECT");
        struct h_conn *c = k->ver ? h_tls_client(e.tport, k->ver) : h_tls_dial(e.tport, NULL, NULL);
        cr_assert(c != NULL, "%s: no TLS handshake", label);
        size_t n;
        char *bytes = hk_with_probe(k, &n);
        (void)h_send_raw(c, bytes, n);
        free(bytes);
        (void)hk_check_answers(c, hk_tcp_read, &c->version, k, label);
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(c, 3000, &more), "%s: not closed (%s)", label,
                  more ? h_show(more) : "still open");
        h_close(c);
        check(&e, label);
    }
    h_broker_stop_ok(e.b);
}

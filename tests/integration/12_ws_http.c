/*
 * 12_ws_http.c - GET /healthz and GET /metrics on the ws:// listener against a
 * real broker: the JSON of /healthz parsed (status, version = the project
 * version from $ITEST_VERSION, workers = --workers, uptime, connections = the
 * connections the test holds open) and the Prometheus text of /metrics parsed
 * and compared with the traffic the test sent (frames, messages published,
 * delivered, dropped, acked, nacked, redelivered, bytes, failed logins,
 * connections by transport, queue depth and consumers, per-worker series).
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(ws_http, .init = h_init, .fini = h_fini, .timeout = 30);

/* ---- a small strict JSON reader for one flat object ---- */

struct jfield {
    char key[64];
    bool is_string;
    char str[128];
    double num;
};

static const char *jws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A JSON string (no escapes other than \" \\ \/ needed here); returns the
 * position after it or NULL. */
static const char *jstring(const char *p, char *out, size_t cap)
{
    if (*p != '"')
        return NULL;
    size_t n = 0;
    for (p++; *p != '"'; p++) {
        if (*p == '\0' || (unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p != '"' && *p != '\\' && *p != '/')
                return NULL;
        }
        if (n + 1 < cap)
            out[n++] = *p;
    }
    out[n] = '\0';
    return p + 1;
}

/* Parse {"k": "s" | number, ...} into fields; asserts it is well-formed. */
static size_t parse_flat_json(const char *text, struct jfield *f, size_t max)
{
    const char *p = jws(text);
    cr_assert(*p == '{', "not a JSON object: %s", text);
    p = jws(p + 1);
    size_t n = 0;
    while (*p != '}') {
        cr_assert(n < max, "too many fields: %s", text);
        p = jstring(p, f[n].key, sizeof f[n].key);
        cr_assert(p != NULL, "bad key in %s", text);
        p = jws(p);
        cr_assert(*p == ':', "no ':' after key %s in %s", f[n].key, text);
        p = jws(p + 1);
        if (*p == '"') {
            f[n].is_string = true;
            p = jstring(p, f[n].str, sizeof f[n].str);
            cr_assert(p != NULL, "bad string for %s in %s", f[n].key, text);
        } else {
            char *end;
            f[n].is_string = false;
            cr_assert(*p == '-' || isdigit((unsigned char)*p), "bad value for %s in %s", f[n].key,
                      text);
            f[n].num = strtod(p, &end);
            p = end;
        }
        n++;
        p = jws(p);
        if (*p == ',') {
            p = jws(p + 1);
            cr_assert(*p == '"', "trailing comma in %s", text);
        } else {
            cr_assert(*p == '}', "expected ',' or '}' in %s", text);
        }
    }
    cr_assert(*jws(p + 1) == '\0', "bytes after the JSON object: %s", text);
    return n;
}

static const struct jfield *jget(const struct jfield *f, size_t n, const char *key, bool string)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0) {
            cr_assert(f[i].is_string == string, "%s is not a %s", key,
                      string ? "string" : "number");
            return &f[i];
        }
    cr_assert_fail("no \"%s\" in /healthz", key);
    return NULL;
}

struct health {
    const char *status, *version;
    double uptime, workers, connections;
};

static struct health healthz(int port)
{
    const char *body = h_http_get(port, "/healthz");
    struct jfield f[16];
    size_t n = parse_flat_json(body, f, 16);
    struct health h;
    h.status = h_fmt("%s", jget(f, n, "status", true)->str);
    h.version = h_fmt("%s", jget(f, n, "version", true)->str);
    h.uptime = jget(f, n, "uptime_seconds", false)->num;
    h.workers = jget(f, n, "workers", false)->num;
    h.connections = jget(f, n, "connections", false)->num;
    return h;
}

/* /healthz until connections == want or 2 s pass (a request that just ended
 * may still be counted for a moment). */
static struct health healthz_conns(int port, double want)
{
    uint64_t deadline = h_now_ms() + 2000;
    struct health h;
    while ((h = healthz(port)).connections != want && h_now_ms() < deadline)
        h_sleep_ms(20);
    return h;
}

Test(ws_http, healthz_json)
{
    struct h_broker *b = H_START_WS(3, "--user", "u:p");
    int port = h_listener_port(b, "ws");
    /* The answer's head. */
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int st = 0;
    bool closed = false;
    const char *resp = h_http_exchange(port, req, strlen(req), 3000, &st, &closed);
    cr_assert(st == 200 && closed, "GET /healthz: %s", resp);
    const char *ct = h_http_header(resp, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "-");

    struct health h = healthz_conns(port, 1);
    cr_assert_str_eq(h.status, "ok");
    const char *want_version = getenv("ITEST_VERSION");
    cr_assert(want_version != NULL, "ITEST_VERSION is not set (run through meson test)");
    cr_assert_str_eq(h.version, want_version, "version %s, project %s", h.version, want_version);
    cr_assert(h.workers == 3, "workers %g with --workers 3", h.workers);
    cr_assert(h.uptime >= 0 && h.uptime < 60 && h.uptime == (double)(long)h.uptime,
              "uptime_seconds %g", h.uptime);
    /* connections counts open client connections; the /healthz request is one. */
    cr_assert(h.connections == 1, "connections %g with only the /healthz request", h.connections);
    struct h_conn *t1 = h_client_login(b, "1.2", "u", "p");
    struct h_conn *t2 = h_dial(b); /* not logged in yet: still a connection */
    struct h_ws *w1 = h_ws_dial(port);
    struct h_ws *w2 = h_ws_dial(port);
    h_ws_sendz(w2, "CONNECT\naccept-version:1.2\nhost:/\nlogin:u\npasscode:p\n\n");
    h_ws_expect(w2, "CONNECTED", H_WAIT);
    h = healthz_conns(port, 5);
    cr_assert(h.connections == 5, "connections %g with 4 open + the request", h.connections);
    h_close(t1);
    h_close(t2);
    h_close(w1->raw);
    h = healthz_conns(port, 2);
    cr_assert(h.connections == 2, "connections %g after closing 3 of 4", h.connections);
    (void)w2;
    h_broker_stop_ok(b);
}

Test(ws_http, uptime_advances)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct health h0 = healthz(port);
    h_sleep_ms(2100);
    struct health h1 = healthz(port);
    cr_assert(h1.uptime >= h0.uptime + 1 && h1.uptime <= h0.uptime + 4,
              "uptime %g then %g after 2.1 s", h0.uptime, h1.uptime);
    h_broker_stop_ok(b);
}

/* ---- /metrics ---- */

static const char *metrics(int port)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    int st = 0;
    bool closed = false;
    const char *resp = h_http_exchange(port, req, strlen(req), 3000, &st, &closed);
    cr_assert(st == 200 && closed, "GET /metrics: %.300s", resp);
    const char *ct = h_http_header(resp, "Content-Type");
    cr_assert(ct && strncmp(ct, "text/plain", 10) == 0 && strstr(ct, "0.0.4") != NULL,
              "/metrics Content-Type %s", ct ? ct : "-");
    const char *body = strstr(resp, "\r\n\r\n");
    const char *cl = h_http_header(resp, "Content-Length");
    cr_assert(body && cl && (size_t)atol(cl) == strlen(body + 4), "/metrics Content-Length %s",
              cl ? cl : "-");
    return body + 4;
}

/* Every line is a comment (# HELP/# TYPE) or "name{labels} value" with a
 * number; every sample's family has a TYPE line before it. */
static void check_exposition(const char *text)
{
    cr_assert(text[0] != '\0' && text[strlen(text) - 1] == '\n', "/metrics not newline-ended");
    char typed[128][96];
    size_t ntyped = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        cr_assert(eol != NULL);
        const char *line = h_fmt("%.*s", (int)(eol - p), p);
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96], type[32];
            cr_assert(sscanf(line + 7, "%95s %31s", name, type) == 2, "bad TYPE line: %s", line);
            cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0,
                      "unknown type in %s", line);
            if (ntyped < 128)
                strcpy(typed[ntyped++], name);
        } else if (strncmp(line, "# HELP ", 7) != 0) {
            size_t nl = strcspn(line, "{ ");
            cr_assert(nl > 0, "bad sample line: '%s'", line);
            bool known = false;
            for (size_t i = 0; i < ntyped; i++)
                known |= strlen(typed[i]) == nl && strncmp(typed[i], line, nl) == 0;
            cr_assert(known, "sample without a TYPE before it: %s", line);
            const char *v = strrchr(line, ' ');
            cr_assert(v != NULL, "no value: %s", line);
            char *end;
            strtod(v + 1, &end);
            cr_assert(*end == '\0' && end > v + 1, "bad value in: %s", line);
            if (line[nl] == '{')
                cr_assert(strchr(line, '}') != NULL && strchr(line, '}') < v, "bad labels: %s",
                          line);
        }
        p = eol + 1;
    }
}

static double metric0(const char *text, const char *series)
{
    double v = h_metric(text, series);
    return v < 0 ? 0 : v;
}

/* Poll /metrics until series == want or 3 s pass; returns the last text.
 * (Counters fed by other workers, and the previous request's connection,
 * may need a moment.) */
static const char *settle_text(int port, const char *series, double want)
{
    uint64_t deadline = h_now_ms() + 3000;
    for (;;) {
        const char *m = metrics(port);
        if (metric0(m, series) == want || h_now_ms() >= deadline)
            return m;
        h_sleep_ms(20);
    }
}

/* The same, returning the series' last value. */
static double settle(int port, const char *series, double want)
{
    return metric0(settle_text(port, series, want), series);
}

#define SEND_IN "stampede_frames_total{direction=\"in\",command=\"SEND\"}"
#define MSG_OUT "stampede_frames_total{direction=\"out\",command=\"MESSAGE\"}"

Test(ws_http, metrics_format_and_per_worker_series)
{
    struct h_broker *b = H_START_WS(3, "--user", "u:p");
    int port = h_listener_port(b, "ws");
    const char *m = metrics(port);
    check_exposition(m);
    const char *names[] = {
        "stampede_messages_published_total",
        "stampede_messages_delivered_total",
        "stampede_messages_acked_total",
        "stampede_messages_nacked_total",
        "stampede_messages_redelivered_total",
        "stampede_messages_dropped_total",
        "stampede_bytes_received_total",
        "stampede_bytes_sent_total",
        "stampede_slow_consumer_disconnects_total",
        "stampede_failed_logins_total",
        "stampede_connections{transport=\"tcp\"}",
        "stampede_connections{transport=\"ws\"}",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert(h_metric(m, names[i]) >= 0, "no %s in /metrics:\n%s", names[i], m);
    for (int w = 0; w < 3; w++) {
        const char *lag = h_fmt("stampede_worker_loop_lag_seconds{worker=\"%d\"}", w);
        const char *mb = h_fmt("stampede_worker_mailbox_depth{worker=\"%d\"}", w);
        cr_assert(h_metric(m, lag) >= 0 && h_metric(m, lag) < 1, "%s: %g", lag, h_metric(m, lag));
        cr_assert(h_metric(m, mb) >= 0, "no %s", mb);
    }
    cr_assert(h_metric(m, "stampede_worker_loop_lag_seconds{worker=\"3\"}") < 0,
              "a fourth worker's series with --workers 3");
    /* A failed login counts once per refused CONNECT; a good one does not. */
    double f0 = h_metric(m, "stampede_failed_logins_total");
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", "u", "wrong", NULL, false);
    cr_assert(f && strcmp(f->cmd, "ERROR") == 0, "bad passcode got %s", h_show(f));
    struct h_ws *w = h_ws_dial(port);
    h_ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\nlogin:nobody\npasscode:p\n\n");
    h_ws_expect(w, "ERROR", H_WAIT);
    h_client_login(b, "1.2", "u", "p");
    double f1 = settle(port, "stampede_failed_logins_total", f0 + 2);
    cr_assert(f1 == f0 + 2, "failed_logins_total %g -> %g after 2 refused CONNECTs", f0, f1);
    h_broker_stop_ok(b);
}

Test(ws_http, connections_by_transport)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *tcp = "stampede_connections{transport=\"tcp\"}";
    const char *ws = "stampede_connections{transport=\"ws\"}";
    const char *m = settle_text(port, ws, 1);
    cr_assert(h_metric(m, tcp) == 0 && h_metric(m, ws) == 1, "idle: tcp %g ws %g (the request)",
              h_metric(m, tcp), h_metric(m, ws));
    struct h_conn *t[2];
    struct h_ws *w[3];
    for (int i = 0; i < 2; i++)
        t[i] = h_client(b, "1.2");
    for (int i = 0; i < 3; i++)
        w[i] = h_ws_client(port, "1.2");
    m = settle_text(port, ws, 4);
    cr_assert(h_metric(m, tcp) == 2 && h_metric(m, ws) == 4,
              "2 TCP + 3 WebSocket clients: tcp %g ws %g (ws counts the request)", h_metric(m, tcp),
              h_metric(m, ws));
    cr_assert(h_metric(m, "stampede_connections{transport=\"tls\"}") == 0);
    cr_assert(h_metric(m, "stampede_connections{transport=\"wss\"}") == 0);
    for (int i = 0; i < 2; i++)
        h_close(t[i]);
    h_close(w[0]->raw);
    h_close(w[1]->raw);
    double v = settle(port, tcp, 0);
    cr_assert(v == 0, "tcp %g after closing both", v);
    v = settle(port, ws, 2);
    cr_assert(v == 2, "ws %g after closing 2 of 3 (+ the request)", v);
    h_ws_sendz(w[2], "DISCONNECT\nreceipt:d\n\n");
    h_ws_expect(w[2], "RECEIPT", H_WAIT);
    v = settle(port, ws, 1);
    cr_assert(v == 1, "ws %g after DISCONNECT", v);
    h_broker_stop_ok(b);
}

#define QMSG(q) h_fmt("stampede_queue_messages{queue=\"%s\"}", (q))
#define QCONS(q) h_fmt("stampede_queue_consumers{queue=\"%s\"}", (q))

Test(ws_http, queue_depth_and_consumers)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *q = h_dest("queue", "depth");
    enum { K = 9 };
    struct h_ws *pub = h_ws_client(port, "1.2");
    for (int i = 0; i < K; i++)
        h_ws_sendf(pub, "SEND\ndestination:%s\n%s\nq%d", q, i == K - 1 ? "receipt:k\n" : "", i);
    h_ws_expect(pub, "RECEIPT", H_WAIT);
    /* Refreshed once a second by each worker: within ~1 s, plus slack for a
     * loaded CI machine whose timers fire late (the bound still fails if the
     * gauge is not refreshed by the 1 s timer). */
    uint64_t t0 = h_now_ms();
    double d = settle(port, QMSG(q), K);
    cr_assert(d == K, "%s = %g, expected %d", QMSG(q), d, K);
    cr_assert(h_now_ms() - t0 <= 2500, "queue depth took %llu ms to show",
              (unsigned long long)(h_now_ms() - t0));
    cr_assert(metric0(metrics(port), QCONS(q)) == 0, "consumers of an unconsumed queue");
    /* A consumer with client acks takes 2 and acks them: 7 left, 1 consumer. */
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:2\n");
    struct h_frame *m0 = h_expect_msg(c, "q0");
    struct h_frame *m1 = h_expect_msg(c, "q1");
    h_ack(c, m0, NULL, true);
    h_ack(c, m1, NULL, true);
    h_unsubscribe(c, "s");
    struct h_conn *c2 = h_client(b, "1.2");
    h_sendf(c2,
            "SUBSCRIBE\ndestination:%s\nid:s\nack:client-individual\nprefetch-count:1\n"
            "receipt:r\n\n",
            q);
    double cons = settle(port, QCONS(q), 1);
    cr_assert(cons == 1, "%s = %g with one consumer", QCONS(q), cons);
    /* Ready messages: K - 2 acked - 1 in flight to c2 (the gauge counts ready ones). */
    d = settle(port, QMSG(q), K - 3);
    cr_assert(d == K - 3 || d == K - 2, "%s = %g after 2 acked and 1 in flight", QMSG(q), d);
    h_broker_stop_ok(b);
}

Test(ws_http, ack_nack_redelivery_counters)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *q = h_dest("queue", "acks");
    const char *m = metrics(port);
    double a0 = metric0(m, "stampede_messages_acked_total");
    double n0 = metric0(m, "stampede_messages_nacked_total");
    double r0 = metric0(m, "stampede_messages_redelivered_total");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, q, "s", "client-individual");
    struct h_conn *pub = h_client(b, "1.2");
    h_publish(pub, q, "one", true);
    h_publish(pub, q, "two", true);
    h_publish(pub, q, "three", true);
    struct h_frame *f[3];
    for (int i = 0; i < 3; i++)
        f[i] = h_ws_expect(w, "MESSAGE", H_WAIT);
    h_ws_sendf(w, "ACK\nid:%s\n\n", h_hdr(f[0], "ack"));
    h_ws_sendf(w, "ACK\nid:%s\n\n", h_hdr(f[1], "ack"));
    h_ws_sendf(w, "NACK\nid:%s\nreceipt:n\n\n", h_hdr(f[2], "ack"));
    /* The nacked message comes again (to the only consumer), before or after
     * the NACK's RECEIPT. */
    struct h_frame *again = NULL;
    bool receipt = false;
    for (int i = 0; i < 2; i++) {
        struct h_frame *x = h_ws_read(w, H_WAIT);
        cr_assert(x != NULL, "expected RECEIPT and the redelivery");
        if (strcmp(x->cmd, "RECEIPT") == 0)
            receipt = true;
        else if (strcmp(x->cmd, "MESSAGE") == 0)
            again = x;
    }
    cr_assert(receipt && again != NULL, "no RECEIPT or no redelivery after NACK");
    cr_assert_str_eq(again->body, "three", "%s", h_show(again));
    cr_assert_str_eq(h_hdr(again, "redelivered") ? h_hdr(again, "redelivered") : "", "true", "%s",
                     h_show(again));
    h_ws_sendf(w, "ACK\nid:%s\nreceipt:a\n\n", h_hdr(again, "ack"));
    h_ws_expect(w, "RECEIPT", H_WAIT);
    double a1 = settle(port, "stampede_messages_acked_total", a0 + 3);
    cr_assert(a1 == a0 + 3, "acked_total %g -> %g after 3 ACKs", a0, a1);
    double n1 = settle(port, "stampede_messages_nacked_total", n0 + 1);
    cr_assert(n1 == n0 + 1, "nacked_total %g -> %g after 1 NACK", n0, n1);
    double r1 = settle(port, "stampede_messages_redelivered_total", r0 + 1);
    cr_assert(r1 == r0 + 1, "redelivered_total %g -> %g after 1 redelivery", r0, r1);
    h_broker_stop_ok(b);
}

Test(ws_http, bytes_sent_and_frames_in_by_command)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *m0 = metrics(port), *m = m0;
    double out0 = metric0(m, "stampede_bytes_sent_total");
    double c0 = metric0(m, "stampede_frames_total{direction=\"in\",command=\"CONNECT\"}");
    double s0 = metric0(m, "stampede_frames_total{direction=\"in\",command=\"SUBSCRIBE\"}");
    double r0 = metric0(m, "stampede_frames_total{direction=\"out\",command=\"RECEIPT\"}");
    const char *dest = h_dest("topic", "bytes");
    struct h_ws *w = h_ws_client(port, "1.2");
    h_ws_subscribe(w, dest, "s", NULL);
    struct h_conn *c = h_client(b, "1.0");
    h_subscribe(c, dest, "t", NULL, "");
    char big[20001];
    memset(big, 'z', 20000);
    big[20000] = '\0';
    h_publish(c, dest, big, false);
    h_ws_expect(w, "MESSAGE", H_WAIT);
    h_expect(c, "MESSAGE", H_WAIT);
    uint64_t deadline = h_now_ms() + 2000;
    do
        m = metrics(port);
    while (metric0(m, "stampede_bytes_sent_total") < out0 + 40000 && h_now_ms() < deadline);
    double out1 = metric0(m, "stampede_bytes_sent_total");
    cr_assert(out1 >= out0 + 40000, "bytes_sent %g -> %g after two 20000-byte MESSAGEs", out0,
              out1);
    /* The first /metrics answer may count too (its bytes are sent after the snapshot). */
    double slack = 3000 + (double)strlen(m0) + 200;
    cr_assert(out1 <= out0 + 40000 + slack, "bytes_sent %g -> %g: more than the frames sent", out0,
              out1);
    double c1 = metric0(m, "stampede_frames_total{direction=\"in\",command=\"CONNECT\"}");
    double s1 = metric0(m, "stampede_frames_total{direction=\"in\",command=\"SUBSCRIBE\"}");
    double r1 = metric0(m, "stampede_frames_total{direction=\"out\",command=\"RECEIPT\"}");
    cr_assert(c1 == c0 + 2 && s1 == s0 + 2 && r1 == r0 + 2,
              "CONNECT %g->%g SUBSCRIBE %g->%g RECEIPT %g->%g, expected +2 each", c0, c1, s0, s1,
              r0, r1);
    h_broker_stop_ok(b);
}

Test(ws_http, topic_counters_match_traffic)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *dest = h_dest("topic", "count");
    enum { N = 7, M = 3 };
    struct h_ws *s1 = h_ws_client(port, "1.2");
    struct h_ws *s2 = h_ws_client(port, "1.1");
    h_ws_subscribe(s1, dest, "a", NULL);
    h_ws_subscribe(s2, dest, "b", NULL);
    struct h_conn *s3 = h_client(b, "1.2");
    h_subscribe(s3, dest, "c", NULL, "");
    struct h_conn *pub = h_client(b, "1.2");
    const char *m0 = metrics(port);
    double pub0 = metric0(m0, "stampede_messages_published_total");
    double del0 = metric0(m0, "stampede_messages_delivered_total");
    double send0 = metric0(m0, SEND_IN), out0 = metric0(m0, MSG_OUT);
    double drop0 = metric0(m0, "stampede_messages_dropped_total");
    double bin0 = metric0(m0, "stampede_bytes_received_total");
    size_t sent = 0;
    for (int i = 0; i < N; i++) {
        const char *body = h_fmt("m%d", i);
        h_publish(pub, dest, body, false);
        sent +=
            strlen(h_fmt("SEND\ndestination:%s\ncontent-type:text/plain\n\n%s", dest, body)) + 1;
    }
    for (int i = 0; i < N; i++) {
        const char *body = h_fmt("m%d", i);
        struct h_frame *f = h_ws_expect(s1, "MESSAGE", H_WAIT);
        cr_assert(strcmp(f->body, body) == 0, "%s", h_show(f));
        f = h_ws_expect(s2, "MESSAGE", H_WAIT);
        cr_assert(strcmp(f->body, body) == 0, "%s", h_show(f));
        h_expect_msg(s3, body);
    }
    double pub1 = settle(port, "stampede_messages_published_total", pub0 + N);
    cr_assert(pub1 == pub0 + N, "published_total %g -> %g after %d SENDs", pub0, pub1, N);
    double del1 = settle(port, "stampede_messages_delivered_total", del0 + N * M);
    cr_assert(del1 == del0 + N * M, "delivered_total %g -> %g, expected +%d", del0, del1, N * M);
    double send1 = settle(port, SEND_IN, send0 + N);
    cr_assert(send1 == send0 + N, "frames in SEND %g -> %g, expected +%d", send0, send1, N);
    double out1 = settle(port, MSG_OUT, out0 + N * M);
    cr_assert(out1 == out0 + N * M, "frames out MESSAGE %g -> %g, expected +%d", out0, out1, N * M);
    const char *m1 = metrics(port);
    cr_assert(metric0(m1, "stampede_messages_dropped_total") == drop0, "dropped moved");
    double bin1 = metric0(m1, "stampede_bytes_received_total");
    cr_assert(bin1 >= bin0 + (double)sent, "bytes_received %g -> %g after %zu bytes of SEND", bin0,
              bin1, sent);
    /* A topic without subscribers: dropped. */
    const char *nobody = h_dest("topic", "nobody");
    for (int i = 0; i < 4; i++)
        h_publish(pub, nobody, "lost", false);
    h_publish(pub, nobody, "lost", true);
    double drop1 = settle(port, "stampede_messages_dropped_total", drop0 + 5);
    cr_assert(drop1 == drop0 + 5, "dropped_total %g -> %g after 5 SENDs to nobody", drop0, drop1);
    h_broker_stop_ok(b);
}

Test(ws_http, queue_label_values_are_escaped)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_conn *c = h_client(b, "1.2");
    /* Destination /queue/q"x\y:z (1.2 header escapes on the wire). A name
     * with a newline no longer exists: control bytes in destination names
     * are refused (issue 9), see 14_hostile_limits.c. */
    const char *rid = h_rid(c);
    h_sendf(c, "SEND\ndestination:/queue/q\"x\\\\y\\cz-%d\nreceipt:%s\n\nbody", (int)getpid(), rid);
    h_expect_receipt(c, rid);
    const char *series =
        h_fmt("stampede_queue_messages{queue=\"/queue/q\\\"x\\\\y:z-%d\"}", (int)getpid());
    double d = settle(port, series, 1);
    cr_assert(d == 1, "%s = %g; /metrics:\n%s", series, d, metrics(port));
    check_exposition(metrics(port));
    h_broker_stop_ok(b);
}

Test(ws_http, queue_series_are_bounded)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_conn *c = h_client(b, "1.2");
    enum { Q = 130, DEEP = 4 };
    const char *deep[DEEP];
    for (int i = 0; i < Q; i++) {
        const char *q = h_dest("queue", "many");
        int n = i < DEEP ? 6 : 1;
        if (i < DEEP)
            deep[i] = q;
        for (int k = 0; k < n; k++)
            h_publish(c, q, "x", false);
    }
    h_publish(c, h_dest("topic", "fence"), "x", true);
    /* Each worker publishes its own snapshot once a second, at its own
     * phase: wait for every deep queue, not only for one worker's. */
    const char *m = NULL;
    for (int i = 0; i < DEEP; i++)
        m = settle_text(port, QMSG(deep[i]), 6);
    size_t series = 0, consumers = 0;
    for (const char *p = m; (p = strstr(p, "\nstampede_queue_messages{")) != NULL; p++)
        series++;
    for (const char *p = m; (p = strstr(p, "\nstampede_queue_consumers{")) != NULL; p++)
        consumers++;
    cr_assert(series > 0 && series <= 2 * 50,
              "%zu queue series with 2 workers (at most 50 each) for %d queues", series, Q);
    cr_assert(consumers == series, "%zu consumers series, %zu messages series", consumers, series);
    for (int i = 0; i < DEEP; i++)
        cr_assert(h_metric(m, QMSG(deep[i])) == 6, "deep queue %s: %g", deep[i],
                  h_metric(m, QMSG(deep[i])));
    h_broker_stop_ok(b);
}

Test(ws_http, upgraded_but_no_connect_hits_the_login_timeout)
{
    struct h_broker *b = H_START_WS(2, "--login-timeout", "400ms");
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_dial(port);
    uint64_t t0 = h_now_ms();
    struct h_frame *f = h_ws_read(w, 3000);
    cr_assert(f != NULL && strcmp(f->cmd, "ERROR") == 0, "no CONNECT: expected ERROR, got %s",
              f ? h_show(f) : "nothing");
    int code = h_ws_expect_close(w, H_WAIT);
    uint64_t dt = h_now_ms() - t0;
    cr_assert(code > 0, "close code %d", code);
    cr_assert(dt >= 300 && dt <= 2000, "closed after %llu ms (login timeout 400 ms)",
              (unsigned long long)dt);
    double conns = settle(port, "stampede_connections{transport=\"ws\"}", 1);
    cr_assert(conns == 1, "ws connections %g after the timeout (+ the request)", conns);
    h_broker_stop_ok(b);
}

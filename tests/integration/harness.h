/*
 * harness.h - what the integration suites use to drive a real build/stampede.
 *
 * Owns: starting the broker (path in $STAMPEDE_TEST_BROKER, else $STAMPEDE_BIN) on 127.0.0.1 port 0
 * with stderr going to a log file (so the broker never blocks on a full pipe), finding its bound
 * port from the "listening on stomp://HOST:PORT" log line, stopping it with SIGTERM; raw TCP
 * clients with a small independent STOMP frame reader (the suites speak bytes, so they test the
 * broker and not the project's codec).
 *
 * Thread contract: single-threaded, used from one criterion test process. Every
 * wait has a deadline and every loop is bounded, so a broken broker fails a test
 * instead of hanging it. Brokers, connections and frames are remembered in a
 * per-process registry and released by h_fini() (the suites' .fini), which also
 * kills any broker still running.
 *
 * Assertions: helpers named h_expect_* and the ones documented "asserts" fail the
 * current criterion test with a message saying what was expected and what came.
 */
#ifndef STAMPEDE_ITEST_HARNESS_H
#define STAMPEDE_ITEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_MAX_LISTENERS 8

/* Default timeout for one expected frame, in ms. */
#define H_WAIT 3000

struct h_broker {
    pid_t pid;
    char log_path[128];
    int nports;
    int ports[H_MAX_LISTENERS]; /* from the "listening on" lines, in log order */
    int port;                   /* ports[0] */
    bool exited;
    int status; /* waitpid status once exited */
};

struct h_frame {
    char *cmd;
    size_t nheaders;
    char **names;  /* decoded (1.1/1.2 escapes) */
    char **values; /* decoded */
    char *body;    /* body_len bytes plus a NUL for convenience */
    size_t body_len;
};

struct h_conn {
    int fd;
    int version; /* 10, 11, 12 once CONNECTED (escape decoding); 0 before */
    char *buf;
    size_t off, len, cap;
    int closed;             /* 0 open, 1 EOF, 2 reset/error */
    uint64_t eols;          /* heart-beat EOLs seen between frames */
    uint64_t eol_times[64]; /* monotonic ms of the last 64 EOLs, ring */
    unsigned receipt_seq;
    /* MESSAGEs that arrived while a helper waited for a RECEIPT (a queue may
     * dispatch before the SUBSCRIBE's RECEIPT goes out): h_read returns these
     * first, in arrival order. */
    struct h_frame *stash[256];
    size_t nstash;
};

/* Suite fixtures: .init = h_init (ignores SIGPIPE, checks $STAMPEDE_BIN),
 * .fini = h_fini (kills leftover brokers, frees everything). */
void h_init(void);
void h_fini(void);
/* Register a cleanup that h_fini runs first (latest registered first), once;
 * registering the same function again does nothing. At most 8. Used by the
 * harness's other files (nats_harness.c) to end their processes. */
void h_at_fini(void (*fn)(void));

uint64_t h_now_ms(void);
void h_sleep_ms(unsigned ms);
const char *h_bin(void);

/* Start the broker with --listen stomp://127.0.0.1:0 --workers `workers` (no
 * --workers flag when workers <= 0) and the
 * extra arguments (NULL-terminated, may be NULL); `env` is a NULL-terminated
 * list of "NAME=value" added to its environment (may be NULL). When `listen` is
 * false no --listen flag is given (the env must provide one). Asserts the broker
 * came up and logged its listener(s). */
struct h_broker *h_broker_start_ex(int workers, bool listen, const char *const *args,
                                   const char *const *env);
#define H_START(...) h_broker_start_ex(2, true, (const char *const[]){__VA_ARGS__, NULL}, NULL)
#define H_START0() h_broker_start_ex(2, true, NULL, NULL)
#define H_START_W(w, ...)                                                                          \
    h_broker_start_ex((w), true, (const char *const[]){__VA_ARGS__, NULL}, NULL)

/* SIGTERM (or `sig`), wait up to timeout_ms; returns the exit code (0..255),
 * -1 killed by a signal, -2 did not exit in time (then SIGKILLed). */
int h_broker_stop_sig(struct h_broker *b, int sig, int timeout_ms);
/* Stops with SIGTERM and asserts exit status 0 within 5 s. */
void h_broker_stop_ok(struct h_broker *b);
bool h_broker_alive(struct h_broker *b);
/* The broker's log so far (registry-owned string). */
const char *h_broker_log(struct h_broker *b);

/* Run `stampede args...` to completion (timeout_ms), capture stdout/stderr.
 * Returns the exit code, -1 signal, -2 timeout. Strings are registry-owned. */
int h_run(const char *const *args, const char *const *env, int timeout_ms, char **out, char **err);
/* fork + exec argv[0] with stdin /dev/null, stdout/stderr to out_fd/err_fd,
 * SIGKILLed when the test process dies, STAMPEDE_* variables removed and env
 * ("NAME=value", may be NULL) added. Returns the child's pid. */
pid_t h_spawn(const char *const *argv, const char *const *env, int out_fd, int err_fd);

/* --- raw connections --- */

/* TCP connect to 127.0.0.1:port within 3 s; asserts. rcvbuf > 0 sets SO_RCVBUF first. */
struct h_conn *h_dial_port(int port, int rcvbuf);
/* Connections dialled from now on come from this loopback address
 * ("127.x.y.z"; NULL: the default, 127.0.0.1): each address has its own
 * failed-login backoff and per-address connection count in the broker. */
void h_set_source(const char *ip);
struct h_conn *h_dial(struct h_broker *b);
void h_close(struct h_conn *c);
/* Close with SO_LINGER 0: the peer sees a reset. */
void h_reset(struct h_conn *c);

/* Send bytes within 3 s. Returns 0 or -errno (no assertion: use in tests where the
 * broker may close the connection while we write). */
int h_send_raw(struct h_conn *c, const void *data, size_t len);
/* Asserting versions. h_sendz sends the string plus its terminating NUL (a frame). */
void h_send(struct h_conn *c, const void *data, size_t len);
void h_sendz(struct h_conn *c, const char *frame);
/* printf-style frame, sent with its trailing NUL. */
void h_sendf(struct h_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read one frame within timeout_ms, skipping heart-beat EOLs. NULL on timeout or
 * when the connection closed (c->closed says which). Asserts the bytes are a
 * well-formed frame. */
struct h_frame *h_read(struct h_conn *c, int timeout_ms);
const char *h_hdr(const struct h_frame *f, const char *name);
size_t h_hdr_count(const struct h_frame *f, const char *name);
/* One-line rendering of a frame for messages (registry-owned). */
const char *h_show(const struct h_frame *f);

/* Asserting readers. */
struct h_frame *h_expect(struct h_conn *c, const char *cmd, int timeout_ms);
/* A MESSAGE whose body equals `body`. */
struct h_frame *h_expect_msg(struct h_conn *c, const char *body);
/* A RECEIPT with receipt-id `id`; MESSAGEs before it are kept for h_read. */
void h_expect_receipt(struct h_conn *c, const char *id);
/* An ERROR (with a message header, receipt-id == receipt_id when non-NULL),
 * then the connection closes within 3 s with nothing else in between. */
struct h_frame *h_expect_error(struct h_conn *c, const char *receipt_id);
/* The same, and the ERROR's message header is exactly `message`. */
struct h_frame *h_expect_error_msg(struct h_conn *c, const char *receipt_id, const char *message);
/* Nothing but heart-beats for ms, and still open. */
void h_expect_silence(struct h_conn *c, int ms);
/* True when the connection closes (EOF or reset) within ms with no frame on the
 * way (heart-beats are fine). On a frame, false and *got (if non-NULL) is set. */
bool h_wait_closed(struct h_conn *c, int ms, struct h_frame **got);

/* --- STOMP-level helpers --- */

/* Send CONNECT (or STOMP when use_stomp) with host:/ and the optional
 * accept-version / login / passcode / heart-beat headers (NULL = omitted), and
 * return the reply (CONNECTED, ERROR or NULL on timeout/close). Sets c->version
 * from a CONNECTED. */
struct h_frame *h_stomp_connect(struct h_conn *c, const char *accept_version, const char *login,
                                const char *passcode, const char *heart_beat, bool use_stomp);
/* Dial + CONNECT with accept-version `version` ("1.0" sends no accept-version),
 * asserts CONNECTED with that version. */
struct h_conn *h_client(struct h_broker *b, const char *version);
struct h_conn *h_client_login(struct h_broker *b, const char *version, const char *login,
                              const char *passcode);

/* A fresh receipt id for this connection ("r1", "r2", ...); registry-owned. */
const char *h_rid(struct h_conn *c);
/* SUBSCRIBE with a receipt and wait for it. `extra` is "" or header lines each
 * ending in "\n" (e.g. "prefetch-count:1\n"). ack NULL = no ack header. */
void h_subscribe(struct h_conn *c, const char *dest, const char *id, const char *ack,
                 const char *extra);
void h_unsubscribe(struct h_conn *c, const char *id);
/* SEND body (text) to dest; with_receipt waits for the RECEIPT. */
void h_publish(struct h_conn *c, const char *dest, const char *body, bool with_receipt);
/* ACK the MESSAGE f the way c's version wants (1.2 id=ack, 1.1
 * message-id+subscription, 1.0 message-id); txn may be NULL; with_receipt waits. */
void h_ack(struct h_conn *c, const struct h_frame *f, const char *txn, bool with_receipt);
void h_nack(struct h_conn *c, const struct h_frame *f, const char *txn, bool with_receipt);
/* A new 1.2 client round-trips a message on a new queue, then disconnects:
 * the broker still serves others after whatever a test did to it. */
void h_bystander_ok(struct h_broker *b);
/* The same on a new topic: for a cluster node, whose queues are kept in
 * JetStream (a node whose NATS is away still serves its local topics while
 * its queues refuse SENDs). */
void h_bystander_topic_ok(struct h_broker *b);
/* DISCONNECT with a receipt: asserts RECEIPT then close. */
void h_disconnect(struct h_conn *c);

/* A unique destination name for this test process: "/topic/<tag>-<pid>-<n>". */
const char *h_dest(const char *kind, const char *tag);

/* Registry-owned printf. */
const char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- added for the TLS suites (13_tls_*.c) --- */

/* Port of the first "listening on <scheme>HOST:PORT" line whose URL starts with
 * `scheme` (e.g. "stomp+ssl://", "wss://"), waiting up to 3 s for it; IPv6
 * hosts in brackets; asserts there is one. */
int h_broker_port_of(struct h_broker *b, const char *scheme);
/* Wrap an already connected stream socket (blocking or not) as a registry-owned
 * connection; the harness makes it non-blocking and closes it in h_fini(). */
struct h_conn *h_conn_wrap_fd(int fd);
/* Run `/bin/sh -c cmd` (stdin /dev/null) to completion within timeout_ms, with
 * stdout and stderr captured together into *out (registry-owned, may be NULL).
 * Returns the exit code, -1 signal, -2 timeout (then killed). */
int h_sh(const char *cmd, int timeout_ms, char **out);

/*
 * TLS clients, defined in 13_tls_harness.c (link it, the TLS engine and mbedTLS
 * into the suite). Certificates are generated once per test executable (a
 * criterion PRE_ALL hook runs the openssl command line into a fresh temporary
 * directory, removed at POST_ALL); h_tls_path() names a file there:
 *   ca1.crt ca2.crt                 two CAs (ECDSA P-256)
 *   srv_rsa.{crt,key}               server, RSA 2048, signed by CA 1
 *   srv_ec.{crt,key}                server, ECDSA P-256, signed by CA 1
 *   srv_b.{crt,key}                 a second ECDSA server pair (CN=stampede-b)
 *   srv_ec_enc.key pw.txt           srv_ec.key encrypted, its passphrase file
 *   good.{crt,key}                  client "good-client", signed by CA 1
 *   other.{crt,key}                 client "other-client", signed by CA 2
 * Server certificates name CN=stampede-rsa / stampede-ec / stampede-b with
 * subjectAltName DNS:localhost and IP:127.0.0.1.
 *
 * h_tls_dial() connects and runs the client side of TLS in a forked relay
 * process (the project's TLS engine in client mode): the returned connection
 * is the plaintext end of a socketpair, so every raw helper above (h_send,
 * h_read, h_stomp_connect, h_wait_closed, ...) works on it unchanged. Closing
 * it makes the relay send close_notify and close the TCP connection; the
 * broker closing the TCP connection (or sending close_notify) shows as EOF.
 */
const char *h_tls_path(const char *name);

struct h_tls_opts {
    const char *ca;          /* verify the server against this CA file; NULL: no check */
    const char *server_name; /* SNI (and the checked name with ca) */
    const char *cert, *key;  /* client certificate and key paths, or NULL */
    const char *ciphers;     /* narrow the client's suites, or NULL */
};

struct h_tls_result {
    bool ok;           /* handshake completed */
    char suite[96];    /* negotiated suite (mbedTLS form) */
    char subject[256]; /* server certificate subject ("CN=stampede-ec") */
    char err[256];     /* why the handshake failed */
};

/* Handshake within 3 s. The connection, or NULL with res->err set (also
 * when the broker closed the connection during the handshake). res may be NULL. */
struct h_conn *h_tls_dial(int port, const struct h_tls_opts *o, struct h_tls_result *res);
/* h_tls_dial without options + CONNECT accept-version `version`; asserts CONNECTED. */
struct h_conn *h_tls_client(int port, const char *version);
/* A ClientHello record as the engine's client sends it into buf; its length. */
size_t h_tls_client_hello(char *buf, size_t cap);
/* Start a broker with --listen stomp://127.0.0.1:0 (ports[0]) plus the TLS
 * listener URL `tls_url` (e.g. "stomp+ssl://127.0.0.1:0"), --tls-cert/--tls-key
 * of the pair `pair` ("srv_ec" -> srv_ec.crt + srv_ec.key) and the extra
 * arguments (NULL-terminated, may be NULL). 1 worker when workers <= 0. */
struct h_broker *h_tls_broker(const char *tls_url, const char *pair, int workers,
                              const char *const *extra);

/* ===================================================================== */
/* WebSocket and HTTP on a ws:// listener (added for the 12_ws_* suites).  */
/*                                                                       */
/* The client side is written here from RFC 6455, independent of src/ws: */
/* its own SHA-1/base64 for Sec-WebSocket-Accept, its own frame reader.  */
/* ===================================================================== */

/* Start like H_START_W(workers, ...) with an extra --listen
 * ws://127.0.0.1:0/ws after the stomp:// one (b->port stays the TCP port);
 * waits for the ws:// "listening on" line. `args` may be NULL. */
struct h_broker *h_broker_start_ws(int workers, const char *const *args);
#define H_START_WS(w, ...) h_broker_start_ws((w), (const char *const[]){__VA_ARGS__, NULL})
#define H_START_WS0() h_broker_start_ws(2, NULL)
/* h_broker_port_of with a bare scheme ("ws", "wss", "stomp", "stomp+ssl"). */
int h_listener_port(struct h_broker *b, const char *scheme);

/* Sec-WebSocket-Accept for key (28 chars + NUL), computed by the harness. */
void h_ws_accept_for(const char *key, char out[29]);

/* One HTTP exchange on a fresh connection: send `req` (len bytes), read until
 * the server closes (or timeout_ms). Returns the whole answer (registry-owned,
 * "" when nothing came); *status is the status code (0 when none), *closed
 * whether the server closed within the time. */
const char *h_http_exchange(int port, const void *req, size_t len, int timeout_ms, int *status,
                            bool *closed);
/* GET path (HTTP/1.1, Connection: close); asserts status 200 and returns the
 * body (registry-owned). */
const char *h_http_get(int port, const char *path);
/* Value of header `name` (case-insensitive) in an HTTP answer head, or NULL
 * (registry-owned). */
const char *h_http_header(const char *resp, const char *name);

/* A raw WebSocket frame read from the server. */
struct h_wsframe {
    bool fin;
    int rsv; /* the three RSV bits */
    int opcode;
    bool masked;
    uint8_t *payload; /* registry-owned, len bytes plus a NUL */
    size_t len;
};

struct h_ws {
    struct h_conn *raw; /* the socket; bytes after the 101 answer */
    struct h_conn *st;  /* STOMP bytes unwrapped from data messages (no socket) */
    int status;         /* HTTP status of the upgrade answer */
    const char *head;   /* the answer head (registry-owned) */
    int last_opcode;    /* opcode of the data message that ended last (1 text, 2 binary) */
    int msg_opcode;     /* opcode of the message being reassembled, 0 between */
    size_t msg_len;     /* bytes of that message so far */
    int close_code;     /* -1 no close frame yet; 0 close frame without code */
    uint64_t text_msgs, binary_msgs, pings, pongs;
    uint8_t last_pong[126];
    size_t last_pong_len;
};

/* Send an upgrade request for `path` with Sec-WebSocket-Protocol `protocols`
 * (NULL: no header) and `extra` header lines (each ending "\r\n"; NULL none),
 * and read the answer head. No assertion on the status: see w->status. On a
 * 101, asserts Upgrade/Connection/Sec-WebSocket-Accept are right. */
struct h_ws *h_ws_upgrade(int port, const char *path, const char *protocols, const char *extra);
/* h_ws_upgrade(port, "/ws", "v12.stomp,v11.stomp,v10.stomp", NULL), asserts 101. */
struct h_ws *h_ws_dial(int port);

/* Send one client frame: FIN as given, first byte's RSV bits 0, masked with a
 * random key when `mask`. Returns 0 or -errno (no assertion). */
int h_ws_send_frame_ex(struct h_ws *w, int opcode, bool fin, bool mask, const void *p, size_t n);
/* Asserting, masked. */
void h_ws_send_frame(struct h_ws *w, int opcode, bool fin, const void *p, size_t n);
/* A STOMP frame (plus its NUL) as one masked text message. */
void h_ws_sendz(struct h_ws *w, const char *frame);
void h_ws_sendf(struct h_ws *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read one raw frame within timeout_ms: 1 read, 0 timeout, -1 closed first.
 * Asserts the server's frame is not masked. */
int h_ws_read_frame(struct h_ws *w, int timeout_ms, struct h_wsframe *out);
/* Read one STOMP frame carried in data messages (reassembling fragments and
 * splitting messages into STOMP frames), skipping heart-beat EOLs. Pings and
 * pongs are counted, a close frame sets w->close_code and ends the read
 * (NULL). NULL on timeout or close. */
struct h_frame *h_ws_read(struct h_ws *w, int timeout_ms);
struct h_frame *h_ws_expect(struct h_ws *w, const char *cmd, int timeout_ms);
/* Read until the server's close frame (frames before it are discarded and
 * data messages parsed as STOMP); asserts it arrives within timeout_ms and
 * returns its code (0 when it has none). */
int h_ws_expect_close(struct h_ws *w, int timeout_ms);
/* True when the TCP connection ends (EOF/reset) within ms; bytes are discarded. */
bool h_ws_wait_eof(struct h_ws *w, int ms);

/* Dial the ws:// port, upgrade, CONNECT with accept-version `version`;
 * asserts CONNECTED with that version. */
struct h_ws *h_ws_client(int port, const char *version);
/* SUBSCRIBE with a receipt over WebSocket; waits for the RECEIPT. */
void h_ws_subscribe(struct h_ws *w, const char *dest, const char *id, const char *ack);

/* Value of the Prometheus sample `series` (name plus labels exactly as the
 * broker prints them, e.g. stampede_frames_total{direction="in",command="SEND"})
 * in a /metrics text; -1 when absent. */
double h_metric(const char *text, const char *series);

#endif
